"""The read-only half of batches (``hq/batches/writes.py``): reading rows from CSV,
checking each row, finding possible duplicates and previewing updates.

Nothing here writes; the same checks run at review time and again inside the
execute transaction, so what a person reviewed is what gets executed.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path
from typing import Any

from hq.db import HQDatabase
from hq.imports.sources import sniff_delimiter
from lanehub.domain.address_columns import ADDRESS_COLUMNS, checked_address_columns, split_address_columns
from lanehub.domain.entity import FALSE_WORDS, PAYMENT_STATUSES, TRUE_WORDS, ValidationError, digits, normalize_text
from lanehub.domain.extra_fields import PREFIX, checked_extras, declared, split_extras
from lanehub.domain.model import checked_customer_write, display_name
from lanehub.domain.ownership import refuse_owned
from lanehub.domain.references import rate_errors, rate_problem
from lanehub.runtime.text_files import decode_upload

# The customer fields a new-customers batch takes (CSV columns, keyed-in rows).
NEW_CUSTOMER_COLUMNS = (
    "first_name", "last_name", "email", "phone", "mobile", "tax_id", "street", "city",
    "postcode", "country", "contact", "notes", "rate", "payment_status", "no_paper",
)
# A customer-updates batch does one of these to every row: action -> the customer field it sets.
ACTIONS = {"set_rate": "rate", "set_payment_status": "payment_status", "deactivate": "active"}
UPDATE_COLUMNS = ("code",)


def columns_of(kind: str, conn: sqlite3.Connection) -> tuple[str, ...]:
    """The fields a row of a batch of ``kind`` has (new customers: with the
    declared extra fields, as extra.NAME)."""
    if kind != "new_customers":
        return UPDATE_COLUMNS
    return NEW_CUSTOMER_COLUMNS + tuple(PREFIX + name for name in declared(conn)) + ADDRESS_COLUMNS


# --- reading rows ---------------------------------------------------------------------

def read_text(source: str | Path | bytes) -> str:
    """A CSV's text from a path, uploaded bytes or the text itself (a str with a
    line break is text; without one it is a file name)."""
    if isinstance(source, bytes):
        return decode_upload(source, "the file")
    if isinstance(source, str) and "\n" in source:
        return source.lstrip("\ufeff")
    return decode_upload(Path(source).read_bytes(), Path(source).name)  # UTF-8, UTF-16, Windows-1252... (lanehub.runtime.text_files)


def csv_rows(text: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV whose header names only ``columns``; an unknown column or a
    line with more cells than the header refuses the whole file, naming them."""
    reader = csv.DictReader(io.StringIO(text), delimiter=sniff_delimiter(text.split("\n", 1)[0]))
    header = [name.strip() for name in reader.fieldnames or ()]
    unknown = [name for name in header if name not in columns]
    if not header or unknown:
        problem = f"unknown column(s) {', '.join(unknown)}" if unknown else "no header line"
        raise ValidationError({"columns": f"{problem}; a batch of this kind takes {', '.join(columns)}"})
    reader.fieldnames = header
    rows = []
    for raw in reader:
        if None in raw:
            raise ValidationError({"columns": f"line {reader.line_num} has more cells than the header"})
        if any((value or "").strip() for value in raw.values()):  # blank lines are not rows
            rows.append({name: (value or "").strip() for name, value in raw.items()})
    return rows


def code_rows(text: str) -> list[dict[str, str]]:
    """Customer codes: a CSV with a ``code`` column (other columns ignored: a
    report exported from elsewhere), or one code per line."""
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if "code" in [cell.strip().lower() for cell in first.split(",")]:
        reader = csv.DictReader(io.StringIO(text.lstrip()))
        reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or ()]
        return [{"code": (row.get("code") or "").strip()} for row in reader if (row.get("code") or "").strip()]
    return [{"code": line.strip()} for line in text.splitlines() if line.strip()]


def unknown_fields(fields: dict[str, Any], columns: tuple[str, ...]) -> None:
    unknown = sorted(set(fields) - set(columns))
    if unknown:
        raise ValidationError({name: f"is not a field of this batch ({', '.join(columns)})" for name in unknown})


# --- new customers ------------------------------------------------------------------------

def customer_fields(raw: dict[str, str]) -> dict[str, Any]:
    """A row's text as customer fields: empty cells are left out (the defaults
    apply), no_paper becomes a bool when it is a yes/no word."""
    fields: dict[str, Any] = {name: value for name, value in raw.items() if str(value).strip() != ""}
    flag = str(fields.get("no_paper", "")).strip().lower()
    if flag in TRUE_WORDS or flag in FALSE_WORDS:
        fields["no_paper"] = flag in TRUE_WORDS
    return fields


def check_new_customer(db: HQDatabase, raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(the normalized fields, {field: error}) of one new-customers row."""
    fields = customer_fields(raw)
    errors: dict[str, str] = {}
    try:  # address.KIND.LINE: the customer's preferred address of that kind (lanehub.domain.address_columns)
        addresses = checked_address_columns(fields)
    except ValidationError as exc:
        addresses, errors = {}, dict(exc.errors)
    fields, extra = split_extras(split_address_columns(fields)[0])
    try:
        extra = checked_extras(db.conn, extra)
    except ValidationError as exc:
        errors |= exc.errors
    try:
        fields = checked_customer_write(fields, db.codes, new=True)
    except ValidationError as exc:
        errors |= exc.errors
    fields |= {PREFIX + name: value for name, value in extra.items()} | addresses
    if "rate" not in errors:
        errors |= rate_errors(db.conn, fields)
    return fields, errors


def _match_keys(fields: dict[str, Any]) -> tuple[str, str, set[str]]:
    name = normalize_text(f"{fields.get('first_name', '')} {fields.get('last_name', '')}")
    email = str(fields.get("email") or "").strip().casefold()
    phones = {digits(str(fields.get(name) or "")) for name in ("phone", "mobile")} - {""}
    return name, email, phones


def _reasons(email: str, phones: set[str], other_email: str, other_phones: set[str]) -> str:
    """Why two people with the same normalized name look like one (hq/duplicates.py's rule)."""
    reasons = []
    if email and email == other_email:
        reasons.append("same name and e-mail")
    if phones & other_phones:
        reasons.append("same name and phone")
    return "; ".join(reasons)


def similar_customers(conn: sqlite3.Connection, fields: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Active customers who may be the person ``fields`` describe: same
    normalized name plus the same e-mail or phone. [(customer id, code, reason)]."""
    name, email, phones = _match_keys(fields)
    if not name or not (email or phones):
        return []
    rows = conn.execute(
        "SELECT id, code, email_key, phone_key, mobile_key FROM customers WHERE name_key = ? AND active = 1 "
        "ORDER BY code", (name,)).fetchall()
    found = []
    for row in rows:
        reason = _reasons(email, phones, row["email_key"], {row["phone_key"], row["mobile_key"]} - {""})
        if reason:
            found.append((row["id"], row["code"], reason))
    return found


def in_batch_duplicates(rows: list[tuple[int, dict[str, Any]]]) -> dict[int, list[tuple[int, str]]]:
    """{row_no: [(earlier row_no, reason)]}: a row that looks like an earlier row of
    the same batch is flagged; the earlier one is not (it is the first occurrence)."""
    seen: dict[str, list[tuple[int, str, set[str]]]] = {}
    flagged: dict[int, list[tuple[int, str]]] = {}
    for row_no, fields in rows:
        name, email, phones = _match_keys(fields)
        if not name:
            continue
        for other_no, other_email, other_phones in seen.get(name, []):
            reason = _reasons(email, phones, other_email, other_phones)
            if reason:
                flagged.setdefault(row_no, []).append((other_no, reason))
        seen.setdefault(name, []).append((row_no, email, phones))
    return flagged


# --- customer updates ---------------------------------------------------------------------

def checked_target(conn: sqlite3.Connection, action: str, value: str | None) -> str:
    """The normalized value a customer-updates batch sets; ValidationError if it cannot."""
    if action not in ACTIONS:
        raise ValidationError({"action": f"must be one of {', '.join(ACTIONS)}"})
    value = (value or "").strip()
    if action == "set_rate":
        value = "" if value == "-" else value.upper()  # "-" as in `rates assign -`: no rate
        if rate_problem(conn, value):
            raise ValidationError({"value": rate_problem(conn, value)})
    elif action == "set_payment_status":
        value = value.lower()
        if value not in PAYMENT_STATUSES:
            raise ValidationError({"value": f"must be one of {', '.join(PAYMENT_STATUSES)}"})
    else:
        value = ""  # deactivate takes no value
    return value


def update_fields(action: str, value: str) -> dict[str, Any]:
    """The customer fields an update batch writes to each of its customers."""
    return {ACTIONS[action]: False if action == "deactivate" else value}


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value not in (None, "") else "(none)"


def check_update(db: HQDatabase, action: str, value: str, raw: dict[str, str]) -> tuple[dict | None, dict, dict]:
    """(the customer, the preview, {field: error}) of one customer-updates row: a dry
    run of what ``update_customer`` would check and change."""
    ref = str(raw.get("code", "")).strip()
    record = db.find_customer(ref) if ref else None
    if record is None:
        return None, {}, {"code": f"no customer {ref}" if ref else "is required"}
    field = ACTIONS[action]
    preview = {"code": record["code"], "name": display_name(record), "field": field,
               "current": shown(record.get(field)), "new": shown(update_fields(action, value)[field])}
    try:
        fields = checked_customer_write(update_fields(action, value), db.codes, new=False)
        refuse_owned(db.conn, "customer", record, fields)  # an external system's fields: a row error
    except ValidationError as exc:
        return record, preview, dict(exc.errors)
    if rate_errors(db.conn, fields):
        return record, preview, rate_errors(db.conn, fields)
    return record, preview, {}
