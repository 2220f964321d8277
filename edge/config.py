"""edge.toml: the keys of DESIGN section 3 plus the edge's sync tuning."""

from __future__ import annotations

from core.config import STORE_ID, Config, Key, broker_keys, load

SCHEMA = {
    "store": {
        "id": STORE_ID,
        "db": Key(str, "edge.db", path=True),
        # Ask HQ for a new block of customer codes when fewer than this are left.
        "code_low_water": Key(int, 20, minimum=0),
        # Resend an unacknowledged change after this many seconds.
        "outbox_retry": Key(float, 5.0, minimum=0.5),
        # What the receipt header says.
        "name": Key(str, ""),
        "address": Key(str, ""),
        "tax_id": Key(str, ""),
        "receipt_footer": Key(str, "Thank you for your visit"),
        "currency": Key(str, "EUR"),
        # Refuse to attach customers whose payment status is "defaulter".
        "block_defaulters": Key(bool, False),
        "receipt_shows_customer": Key(bool, True),
        # The printer device id of every lane (topic .../lane/{lane}/printer/{printer}/job).
        "printer": Key(str, "printer"),
        # Resend a receipt the printer has not reported printed after this many seconds.
        "print_retry": Key(float, 30.0, minimum=1),
        # A coupon while HQ cannot be reached: refuse it, or accept it (HQ flags a double redemption).
        "coupon_offline": Key(str, "deny", choices=("deny", "allow")),
    },
    "broker": broker_keys(),
    "hq": broker_keys(),
    "web": {"host": Key(str, "127.0.0.1"), "port": Key(int, 8801, minimum=0), "secure_cookies": Key(bool, False)},
    "log": {"level": Key(str, "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))},
}


def load_config(path) -> Config:
    return load(path, SCHEMA)
