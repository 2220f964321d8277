"""edge.toml: the keys of docs/configuration.md plus the edge's sync tuning."""

from __future__ import annotations

import re
from email.utils import parseaddr

from lanehub.domain.barcodes import parse_layouts
from lanehub.protocol.lane import MAX_TICKET_LINES
from lanehub.protocol.topics import ID_RE
from lanehub.runtime.config import STORE_ID, Config, ConfigError, Key, Schema, Tables, broker_keys, load

ID_RE_OR_EMPTY = re.compile(rf"^(?:{ID_RE.pattern.strip('^$')})?$")  # a device id, or "" for none

def _at_most_max_lines(value: int) -> None:
    if value > MAX_TICKET_LINES:
        raise ValueError(f"must be at most {MAX_TICKET_LINES:,} (a ticket's whole state must fit in one message), "
                         f"got {value:,}")


SCHEMA: Schema = {
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
        # Print the customer's invoice address (their preferred billing address, else
        # their main one) under their name: for stores that hand out invoices.
        "receipt_invoice_address": Key(bool, False),
        # The store's fallback receipt printer (a device id), for a lane that has no
        # printer of its own; "" = none. A lane's own printer is [lane.ID] printer, else
        # the printer bridge whose retained status names that lane (docs/protocol.md).
        "printer": Key(str, "", pattern=ID_RE_OR_EMPTY, help="printer must be a device id (letters, digits, '_', '.', '-')"),
        # Resend a receipt the printer has not reported printed after this many seconds.
        "print_retry": Key(float, 30.0, minimum=1),
        # A coupon while HQ cannot be reached: refuse it, or accept it (HQ flags a double redemption).
        "coupon_offline": Key(str, "deny", choices=("deny", "allow")),
        # Scale label layouts for restricted-circulation EAN-13 (prefixes 02, 20-29), e.g.
        # "20PPPPPWWWWWC" (lanehub.domain.barcodes). None by default: what those prefixes mean is
        # local, and a wrong guess would misread the store's own in-store codes.
        "variable_measure": Key(list, [], check=parse_layouts),
        # An e-mail receipt while [mail] is not configured: print it, or keep it queued unsent.
        "email_fallback": Key(str, "print", choices=("print", "keep")),
        # Lines one ticket may hold; a scan beyond is refused (warning ticket_full). Bounds
        # the whole ticket state a lane reads (lanehub.protocol.lane.MAX_TICKET_LINES at most).
        "max_ticket_lines": Key(int, 1000, minimum=1, check=_at_most_max_lines),
    },
    # Per-lane overrides: [lane.L1] printer = "P1" sends lane L1's receipts to P1.
    "lane": Tables({
        "printer": Key(str, "", pattern=ID_RE_OR_EMPTY, help="printer must be a device id (letters, digits, '_', '.', '-')"),
    }, name_pattern=ID_RE, name_help="lane id must be letters, digits, '_', '.', '-' (max 32)"),
    "broker": broker_keys(),
    "hq": broker_keys(),
    # E-mailed receipts (edge.lane.mail); no host: not configured. The password may come
    # from $LANEHUB_MAIL_PASSWORD instead of the file.
    "mail": {
        "host": Key(str, ""),
        "port": Key(int, 587, minimum=1),
        "security": Key(str, "starttls", choices=("starttls", "tls", "none")),
        "user": Key(str, ""),
        "password": Key(str, ""),
        "from": Key(str, ""),  # required with host
        "timeout": Key(float, 10.0, minimum=0.5),  # seconds per SMTP connection and command
        "retry": Key(float, 60.0, minimum=0.1),  # seconds between attempts of one message
        "give_up_hours": Key(float, 72.0, minimum=0),  # then the message is failed; 0: never
    },
    "web": {"host": Key(str, "127.0.0.1"), "port": Key(int, 8801, minimum=0), "secure_cookies": Key(bool, False)},
    "log": {"level": Key(str, "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))},
}


def load_config(path) -> Config:
    config = load(path, SCHEMA)
    _check_mail(config)
    return config


def _check_mail(config: Config) -> None:
    """[mail] keys that depend on each other (the schema checks each key alone)."""
    mail = config["mail"]
    if not mail["host"]:
        return
    where = f"{config.path}: [mail] from"
    if not mail["from"]:
        raise ConfigError(f"{where}: required when [mail] host is set (the receipts' From: address)")
    address = parseaddr(mail["from"])[1]
    if "@" not in address or any(c.isspace() for c in address):
        raise ConfigError(f"{where}: must be an e-mail address, e.g. \"Store <receipts@example.com>\", got {mail['from']!r}")
    if mail["password"] and not mail["user"]:
        raise ConfigError(f"{config.path}: [mail] user: required when [mail] password is set")
