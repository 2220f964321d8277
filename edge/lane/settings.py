"""A store's lane settings: what edge.toml gives, and what the store page may override."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from lanehub.domain.barcodes import ScaleLayout, parse_layouts
from lanehub.protocol.lane import ReceiptStore


@dataclass(frozen=True)
class LaneSettings:
    store: str
    currency: str = "EUR"
    block_defaulters: bool = False
    receipt_shows_customer: bool = True
    receipt_invoice_address: bool = False
    printer: str = "printer"
    name: str = ""
    address: str = ""
    tax_id: str = ""
    footer: str = ""
    coupon_offline: str = "deny"
    variable_measure: tuple[str, ...] = ()  # scale label layouts, as [store] variable_measure has them
    max_ticket_lines: int = 1000  # lines a ticket may hold (a full state's size is bounded by it)

    @classmethod
    def from_config(cls, config) -> "LaneSettings":
        """The settings edge.toml gives (a loaded edge config: every key has its value or
        its default); the store page overrides some of them (``apply_settings``)."""
        cfg = config["store"]
        return cls(store=cfg["id"], currency=cfg["currency"], block_defaulters=cfg["block_defaulters"],
                   receipt_shows_customer=cfg["receipt_shows_customer"],
                   receipt_invoice_address=cfg["receipt_invoice_address"], printer=cfg["printer"],
                   name=cfg["name"], address=cfg["address"], tax_id=cfg["tax_id"], footer=cfg["receipt_footer"],
                   coupon_offline=cfg["coupon_offline"], variable_measure=tuple(cfg["variable_measure"]),
                   max_ticket_lines=cfg["max_ticket_lines"])

    @cached_property
    def scale_layouts(self) -> tuple[ScaleLayout, ...]:
        """``variable_measure`` read once (edge.toml was checked when it was loaded)."""
        return parse_layouts(self.variable_measure)

    @property
    def receipt_store(self) -> ReceiptStore:
        """The receipt's header."""
        return ReceiptStore(id=self.store, name=self.name, address=self.address, tax_id=self.tax_id)


# Settings a store admin may change on the store page (edge.toml gives the defaults).
EDITABLE_SETTINGS = {"block_defaulters": bool, "receipt_shows_customer": bool, "receipt_invoice_address": bool,
                     "coupon_offline": str}


def stored_settings(conn) -> dict[str, str]:
    return {row[0]: row[1] for row in conn.execute("SELECT key, value FROM settings")}


def apply_settings(base: LaneSettings, stored: dict[str, str]) -> LaneSettings:
    changes: dict[str, Any] = {}
    for key, kind in EDITABLE_SETTINGS.items():
        if key in stored:
            changes[key] = stored[key] == "true" if kind is bool else stored[key]
    return replace(base, **changes) if changes else base
