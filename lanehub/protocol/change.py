"""The change record and per-field last-writer-wins clocks (docs/protocol.md).

A change is ``{id, entity, key, origin, hlc, by, fields}``; downstream HQ adds
``seq``. Each replicated record keeps, per field, the stamp of the change that
last won it: ``"<hlc>|<origin>"``. The hlc part is fixed-width, so comparing
these strings compares (hlc, origin) pairs: last writer wins, ties by origin.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from lanehub.domain.model import ENTITIES, UUID_RE
from lanehub.protocol import hlc as hlc_mod
from lanehub.protocol.envelope import PayloadError

NEVER = ""  # the stamp of a field no change has set: loses to every change


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Change:
    id: str
    entity: str
    key: str
    origin: str
    hlc: str
    by: str
    fields: dict[str, Any]
    seq: int | None = None

    @property
    def stamp(self) -> str:
        return f"{self.hlc}|{self.origin}"

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy was most of HQ's time per change in a
        # catch-up page (docs/benchmarks.md); the values are JSON values already.
        data: dict[str, Any] = {"id": self.id, "entity": self.entity, "key": self.key, "origin": self.origin, "hlc": self.hlc,
                "by": self.by, "fields": dict(self.fields)}
        if self.seq is not None:
            data["seq"] = self.seq
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    def with_seq(self, seq: int) -> "Change":
        return Change(self.id, self.entity, self.key, self.origin, self.hlc, self.by, self.fields, seq)

    @classmethod
    def from_dict(cls, data: Any) -> "Change":
        if not isinstance(data, dict):
            raise PayloadError("change is not an object")
        missing = [k for k in ("id", "entity", "key", "origin", "hlc", "by", "fields") if k not in data]
        if missing:
            raise PayloadError(f"change is missing {', '.join(missing)}")
        for name in ("id", "entity", "key", "origin", "hlc", "by"):
            if not isinstance(data[name], str):
                raise PayloadError(f"change field {name!r} must be a string")
        if not UUID_RE.match(data["id"]):
            raise PayloadError(f"change id {data['id']!r} is not a UUID")
        if not UUID_RE.match(data["key"]):
            raise PayloadError(f"change key {data['key']!r} is not a UUID")
        if data["entity"] not in ENTITIES:
            raise PayloadError(f"unknown entity {data['entity']!r}")
        try:
            hlc_mod.parse_stamp(data["hlc"])
        except ValueError as exc:
            raise PayloadError(str(exc)) from None
        if not isinstance(data["fields"], dict) or not data["fields"]:
            raise PayloadError("change 'fields' must be a non-empty object")
        seq = data.get("seq")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1):
            raise PayloadError("change 'seq' must be a positive integer")
        return cls(data["id"], data["entity"], data["key"], data["origin"], data["hlc"], data["by"], dict(data["fields"]), seq)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Change":
        return cls.from_dict(json.loads(text))


@dataclass
class FieldClocks:
    """The winning stamp of every field of one record, stored compactly.

    Stored as JSON ``{"*": most common stamp, field: stamp, ...}``: a record
    created by one change and never edited costs one stamp, not one per field.
    """

    stamps: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, text: str | None, fields: tuple[str, ...]) -> "FieldClocks":
        stored = json.loads(text) if text else {}
        default = stored.get("*", NEVER)
        return cls({name: stored.get(name, default) for name in fields})

    def dump(self) -> str:
        if not self.stamps:
            return "{}"
        counts: dict[str, int] = {}
        for stamp in self.stamps.values():
            counts[stamp] = counts.get(stamp, 0) + 1
        common = max(counts, key=counts.__getitem__)  # the first of equals, as Counter.most_common
        out = {"*": common}
        out.update({name: stamp for name, stamp in self.stamps.items() if stamp != common})
        return json.dumps(out, separators=(",", ":"), sort_keys=True)

    def wins(self, name: str, stamp: str) -> bool:
        return stamp > self.stamps.get(name, NEVER)
