"""Customer codes: ``CUST-00042`` (permanent) and ``CUST-S001-P0001`` (provisional).

HQ hands out permanent numbers, to itself and in leased blocks to stores;
a store that is offline and out of numbers makes provisional codes, which
HQ replaces on sync and keeps as aliases (docs/protocol.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CodeFormat:
    prefix: str = "CUST-"
    width: int = 5

    def __post_init__(self):
        if not re.fullmatch(r"[A-Z0-9][A-Z0-9-]{0,15}", self.prefix):
            raise ValueError("code prefix must be 1-16 upper-case letters, digits or '-'")
        if not 1 <= self.width <= 12:
            raise ValueError("code width must be between 1 and 12")

    def format(self, number: int) -> str:
        return f"{self.prefix}{number:0{self.width}d}"

    def number(self, code: str) -> int | None:
        """The number of a permanent code, or None when it is not one."""
        match = re.fullmatch(re.escape(self.prefix) + r"(\d{%d,})" % self.width, code or "")
        return int(match.group(1)) if match else None

    def provisional(self, store: str, number: int) -> str:
        return f"{self.prefix}{store}-P{number:04d}"

    def provisional_store(self, code: str) -> str | None:
        """The store that made a provisional code, or None when it is not one."""
        match = re.fullmatch(re.escape(self.prefix) + r"([A-Za-z0-9][A-Za-z0-9_.]{0,31})-P(\d{4,})", code or "")
        return match.group(1) if match else None

    def is_valid(self, code: str) -> bool:
        return self.number(code) is not None or self.provisional_store(code) is not None

    def to_dict(self) -> dict:
        return {"prefix": self.prefix, "width": self.width}
