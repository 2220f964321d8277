"""Checked references: a value that names another record (a customer's rate, a
store, a product's SKU, a user's roles) must name one that exists.

Every message is one plain line that reads after the field's name, as the
pages show it next to the field ("Rate BOGUS is not a rate ...") and the CLI
prints it ("error: rate BOGUS is not a rate ..."); it names the value given
and, when only the letter case differs, the record meant.

Rates and products are replicated records, so the rate and SKU checks take the
site database's connection and work the same at HQ and in a store.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable

from lanehub.domain.entity import ValidationError

# A store's or user's list of choices is shown in a message up to this many names.
SHOWN_CHOICES = 8


def did_you_mean(value: str, candidates: Iterable[str]) -> str:
    """' (did you mean X?)' when a candidate differs from ``value`` only in letter case."""
    folded = value.casefold()
    for candidate in candidates:
        if candidate != value and candidate.casefold() == folded:
            return f" (did you mean {candidate}?)"
    return ""


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_CHOICES])
    return shown + (f" and {len(names) - SHOWN_CHOICES} more" if len(names) > SHOWN_CHOICES else "")


# --- rates -----------------------------------------------------------------------------

def rate_codes(conn: sqlite3.Connection) -> list[str]:
    """Every rate code on this site, disabled ones too (a customer may keep one)."""
    return [row[0] for row in conn.execute("SELECT code FROM rates WHERE coalesce(code, '') != '' ORDER BY code")]


def rate_choices(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(code, what a form shows) of every rate, for a <select> that also offers none."""
    out = []
    for code, name, status in conn.execute(
            "SELECT code, coalesce(name, ''), coalesce(status, '') FROM rates WHERE coalesce(code, '') != '' ORDER BY code"):
        shown = f"{code} — {name}" if name else code
        out.append((code, shown + (" (disabled)" if status == "disabled" else "")))
    return out


def rate_problem(conn: sqlite3.Connection, code: Any) -> str:
    """Why ``code`` cannot be a customer's rate, or "" (an existing code, or empty: no rate)."""
    code = str(code or "").strip().upper()
    if not code:
        return ""
    codes = rate_codes(conn)
    if code in codes:
        return ""
    choices = f"rates: {_listed(codes)}; or none" if codes else "there are no rates yet; leave it empty"
    return f"{code} is not a rate ({choices})"


def rate_errors(conn: sqlite3.Connection, fields: dict[str, Any], name: str = "rate") -> dict[str, str]:
    """{"rate": why} when ``fields`` sets a rate that does not exist; {} otherwise."""
    if name not in fields:
        return {}
    problem = rate_problem(conn, fields[name])
    return {name: problem} if problem else {}


def refuse_unknown_rate(conn: sqlite3.Connection, fields: dict[str, Any]) -> None:
    """Raise ``ValidationError`` (on "rate") when ``fields`` names a rate that does not exist.
    The sites' create_customer and write_customer_update call it, so every entry that
    writes a customer (pages, API, CLI, the lane) is covered; imports and batches also
    call it while checking their rows, before anything is written."""
    errors = rate_errors(conn, fields)
    if errors:
        raise ValidationError(errors)


# --- products --------------------------------------------------------------------------

def product_problem(conn: sqlite3.Connection, sku: str, *, active_only: bool = True) -> str:
    """Why ``sku`` names no (active) product, naming the SKU meant when only the case differs."""
    where = "WHERE active = 1 AND " if active_only else "WHERE "
    kind = "an active product" if active_only else "a product"
    similar = [row[0] for row in conn.execute(f"SELECT sku FROM products {where} lower(sku) = lower(?) ORDER BY sku",
                                              (sku,))]
    return f"{sku} is not {kind}{did_you_mean(sku, similar)}"


# --- stores and roles ------------------------------------------------------------------

def store_problem(store: str, stores: Iterable[str]) -> str:
    """Why ``store`` is not one of ``stores`` (HQ's registered stores), or ""."""
    stores = list(stores)
    if store in stores:
        return ""
    known = f"registered: {_listed(stores)}" if stores else "no store is registered yet"
    return f"{store} is not a registered store{did_you_mean(store, stores) or f' ({known})'}"


def role_problem(roles: Iterable[str], known: Iterable[str]) -> str:
    """Why some of ``roles`` are no role of ``known`` (built-in and custom), or ""."""
    known = sorted(known)
    unknown = [r for r in roles if r not in known]
    if not unknown:
        return ""
    hint = "".join(did_you_mean(r, known) for r in unknown[:1])
    what = f"{unknown[0]} is not a role" if len(unknown) == 1 else f"{', '.join(unknown)} are not roles"
    return f"{what}{hint or ''} (roles: {', '.join(known)})"
