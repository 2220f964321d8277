"""Which printer prints a lane's receipts (docs/protocol.md, "Receipt routing").

A lane's receipt goes, in this order, to:

1. the lane's own printer in edge.toml (``[lane.L1] printer = "P1"``);
2. the printer bridge whose retained status names that lane (``kind = printer``,
   ``lane = L1``): the store's device registry, ``device_status`` rows kept from
   those statuses; an online one before an offline one, then by device id, so the
   choice is the same every time;
3. the store's fallback printer (``[store] printer``).

A lane with none of these keeps its receipts (status pending, no printer) until
one is configured or a printer bridge for the lane comes online; nothing is sent
to a printer nobody runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lanehub.protocol.hlc import now_iso
from lanehub.protocol.lane import Receipt, ReceiptStore
from lanehub.runtime.config import Config


@dataclass(frozen=True)
class PrinterRoutes:
    """What edge.toml says about printers: per-lane overrides and the store's fallback."""

    lanes: dict[str, str] = field(default_factory=dict)
    fallback: str = ""

    @classmethod
    def from_config(cls, config: Config) -> "PrinterRoutes":
        lanes = {lane: table["printer"] for lane, table in config.get("lane", {}).items() if table.get("printer")}
        return cls(lanes=lanes, fallback=config["store"].get("printer", ""))


def printers(conn) -> list[dict]:
    """The store's printers as their bridges last reported them."""
    return [dict(r) for r in conn.execute(
        "SELECT device, lane, state, detail FROM device_status WHERE kind = 'printer' ORDER BY device")]


def printer_for(conn, routes: PrinterRoutes, lane: str) -> str:
    """The device id that prints ``lane``'s receipts, or "" when the lane has none."""
    if routes.lanes.get(lane):
        return routes.lanes[lane]
    row = conn.execute(
        "SELECT device FROM device_status WHERE kind = 'printer' AND lane = ? "
        "ORDER BY state = 'online' DESC, device LIMIT 1", (lane,)).fetchone()
    if row:
        return row[0]
    return routes.fallback


def is_known_printer(conn, device: str) -> bool:
    """Whether a printer bridge with this device id has ever reported."""
    return conn.execute("SELECT 1 FROM device_status WHERE device = ? AND kind = 'printer'", (device,)).fetchone() is not None


def test_receipt(store: ReceiptStore, lane: str, device: str, by: str) -> Receipt:
    """A receipt that says which printer printed it, for the store page's test print."""
    return Receipt(
        store=store, ticket="TEST", lane=lane, closed_at=now_iso(), subtotal="0.00", total="0.00",
        barcode=f"TEST-{device}",
        footer=f"Test print on printer {device} (lane {lane or '-'}), asked for by {by} at "
               f"{time.strftime('%Y-%m-%d %H:%M')}.",
    )
