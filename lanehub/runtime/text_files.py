"""The text of a CSV someone uploaded or named on the command line, whatever
program saved it: every importer and batch reads its file through
``decode_upload`` (docs/web.md "Upload encodings", docs/decisions.md D37).

What is read, and how:

- a byte-order mark decides: UTF-8 (Excel's "CSV UTF-8"), UTF-16 (Excel's
  "Unicode text") or UTF-32, decoded exactly, the mark dropped;
- otherwise text that is valid UTF-8 is UTF-8 (the common case, and cheap);
- otherwise UTF-16 without a mark, when charset-normalizer reads it as such;
- otherwise the Western European code pages our stores' files come in:
  Windows-1252 (Excel's plain "CSV" on a Western Windows; it covers every
  printable Latin-1 character) or, failing that, DOS code page 850 (old POS
  exports). charset-normalizer judges whether the text reads as text in them;
- anything else is refused with one line naming the file and what it looks
  like (Japanese, Cyrillic..., or binary data), asking for UTF-8.

Detection is not run over the whole Unicode zoo on purpose: on a short file
(a header and three names) charset-normalizer's unrestricted guess for a
Latin-1 "Peña" is as often Central European or Baltic, which would import
"Peńa" without a word. A fixed list that can only mean Western text is
predictable; the guess is used only to say what a refused file looks like.
"""

from __future__ import annotations

import codecs

# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)
# Tried in this order; on equal mess the first wins (a Latin-1 "Müller" also reads,
# wrongly, as "M³ller" in cp850, with no more mess: cp1252 is far more common).
WESTERN = ("cp1252", "cp850")
UNMARKED_UTF16 = ("utf_16_le", "utf_16_be")
# charset-normalizer's "mess" (0: reads like text) above which a reading is refused. Its
# default, 0.2, let Japanese Shift-JIS through as cp850 line noise (0.17); Western text
# in its own code page measures 0-0.05.
MAX_MESS = 0.1
NAMES = {"cp1252": "Windows-1252 (Western European)", "cp850": "DOS code page 850 (Western European)",
         "utf_16_le": "UTF-16 little-endian", "utf_16_be": "UTF-16 big-endian"}


class UploadEncodingError(ValueError):
    """The file is not text in an encoding lanehub reads; the message is one line
    starting with the file's name."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        super().__init__(f"{name}: {reason}")


def decode_upload(data: bytes, name: str) -> str:
    """The text of ``data`` (a file called ``name``), or ``UploadEncodingError``."""
    return decode_with_encoding(data, name)[0]


def decode_with_encoding(data: bytes, name: str) -> tuple[str, str]:
    """(text, the encoding it was read in, as people call it)."""
    for mark, codec, label in BYTE_ORDER_MARKS:
        if data.startswith(mark):
            try:
                return data[len(mark):].decode(codec), label
            except UnicodeDecodeError as exc:
                raise UploadEncodingError(name, f"starts with a {label} byte-order mark but byte {exc.start + len(mark)} "
                                                f"is not {label}: save it as UTF-8 and try again") from None
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    candidates = UNMARKED_UTF16 if b"\x00" in data else WESTERN
    found = _read_as(data, candidates)
    if found is not None:
        return found
    raise UploadEncodingError(name, f"is not UTF-8 text and does not read as Western European text either; "
                                    f"it looks like {looks_like(data)}: save it as UTF-8 (Excel: Save As, "
                                    f"\"CSV UTF-8\") and try again")


def _read_as(data: bytes, encodings: tuple[str, ...]) -> tuple[str, str] | None:
    """The least messy reading among ``encodings`` that decodes every byte."""
    from charset_normalizer import from_bytes

    readings = []
    for match in from_bytes(data, cp_isolation=list(encodings), threshold=MAX_MESS):
        if match.encoding not in encodings or match.chaos > MAX_MESS:
            continue
        try:
            text = data.decode(match.encoding)  # strict: charset-normalizer samples, this checks every byte
        except UnicodeDecodeError:
            continue
        readings.append((match.chaos, encodings.index(match.encoding), text, match.encoding))
    if not readings:
        return None
    _, _, text, encoding = min(readings, key=lambda reading: reading[:2])
    return text, NAMES[encoding]


def looks_like(data: bytes) -> str:
    """What charset-normalizer, free to guess any encoding, makes of the bytes."""
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        return "binary data, not text"
    language = f"{best.language} text" if best.language and best.language != "Unknown" else "text"
    return f"{language} in {best.encoding}"
