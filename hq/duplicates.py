"""Possible duplicates: same normalized name plus the same phone or e-mail.

Two stores that sign up the same person while offline make two records with
two codes (docs/protocol.md); HQ flags the pair for a person to review and
merge, it never merges on its own.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone


def flag_duplicates(conn: sqlite3.Connection, key: str) -> list[str]:
    """Flag every active customer that looks like ``key``; returns the other ids."""
    me = conn.execute(
        "SELECT id, name_key, email_key, phone_key, mobile_key, active FROM customers WHERE id = ?", (key,)
    ).fetchone()
    if me is None or not me["active"] or not me["name_key"]:
        return []
    phones = [p for p in (me["phone_key"], me["mobile_key"]) if p]
    if not me["email_key"] and not phones:
        return []  # no e-mail, no phone: nothing to be the same as
    # Found by e-mail and phone (indexed), then the name checked: a common name shared by
    # thousands of customers costs nothing, only those who share a contact are read.
    contact, args = [], []
    if me["email_key"]:
        contact.append("email_key = ?")
        args.append(me["email_key"])
    for column in ("phone_key", "mobile_key"):
        if phones:
            contact.append(f"{column} IN ({', '.join('?' * len(phones))})")
            args += phones
    rows = conn.execute(
        f"SELECT id, email_key, phone_key, mobile_key FROM customers WHERE ({' OR '.join(contact)}) "
        "AND name_key = ? AND id != ? AND active = 1",
        (*args, me["name_key"], key),
    ).fetchall()
    flagged = []
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for row in rows:
        reasons = []
        if me["email_key"] and row["email_key"] == me["email_key"]:
            reasons.append("same name and e-mail")
        if phones and {row["phone_key"], row["mobile_key"]} & set(phones):
            reasons.append("same name and phone")
        if not reasons:
            continue
        a, b = sorted((key, row["id"]))
        conn.execute(
            "INSERT OR IGNORE INTO possible_duplicates (a, b, reason, flagged_at) VALUES (?, ?, ?, ?)",
            (a, b, "; ".join(reasons), stamp),
        )
        flagged.append(row["id"])
    return flagged
