"""Who changed what and when, read from HQ's change log (the audit on a
record's page, at HQ and, asked over sync/req, at a store)."""

from __future__ import annotations

from datetime import datetime, timezone

from lanehub.protocol.hlc import stamp_ms

BOOKKEEPING = ("created_at", "created_by", "updated_at", "updated_by")


def change_history(db, entity: str, key: str, limit: int = 200) -> list[dict]:
    """A record's changes, newest first; bookkeeping fields and a create's empty
    defaults are left out (they say nothing to a reader)."""
    out = []
    changes = db.changes_for(entity, key)
    first = changes[0].seq if changes else None
    for change in reversed(changes[-limit:]):
        when = datetime.fromtimestamp(stamp_ms(change.hlc) / 1000, timezone.utc).isoformat(timespec="seconds")
        # Only the create's empty values are defaults; a later empty value is a field cleared.
        shown = {k: v for k, v in change.fields.items()
                 if k not in BOOKKEEPING and not (change.seq == first and v in ("", None))}
        out.append({"when": when, "seq": change.seq, "origin": change.origin, "by": change.by, "fields": shown})
    return out
