"""HQ broker payloads (DESIGN section 4, normative): up and down batches, a store's
own messages (acks, snapshot and catch-up pages), requests and replies, and status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from lanehub.protocol.envelope import MAX_UP_CHANGES, SYNC_MAX_BYTES, Message, PayloadError


@dataclass(frozen=True)
class UpBatch(Message):
    """Changes made at a store, sent on sync/up/{store} until HQ acks them."""

    KIND: ClassVar[str] = "up batch"
    MAX_BYTES: ClassVar[int] = SYNC_MAX_BYTES
    store: str
    changes: list

    @classmethod
    def from_dict(cls, data):
        msg = super().from_dict(data)
        if len(msg.changes) > MAX_UP_CHANGES:
            raise PayloadError(f"up batch: {len(msg.changes):,} changes, over the limit of {MAX_UP_CHANGES:,} per batch")
        return msg


@dataclass(frozen=True)
class DownBatch(Message):
    """Sequenced changes on sync/down (type=changes) or HQ's head (type=head, retained)."""

    KIND: ClassVar[str] = "down batch"
    MAX_BYTES: ClassVar[int] = SYNC_MAX_BYTES
    type: str
    head: int
    changes: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, data):
        msg = super().from_dict(data)
        if msg.type not in ("changes", "head"):
            raise PayloadError(f"down batch: unknown type {msg.type!r}")
        return msg


@dataclass(frozen=True)
class StoreMessage(Message):
    """HQ -> one store on sync/store/{store}: acks and rejections."""

    KIND: ClassVar[str] = "store message"
    MAX_BYTES: ClassVar[int] = SYNC_MAX_BYTES  # an ack carries HQ's version of every refused record
    type: str  # ack | error
    acked: list = field(default_factory=list)
    rejected: list = field(default_factory=list)  # [{id, reason, entity, key, record, clocks}]
    error: dict = field(default_factory=dict)  # for type=error: an ErrorReport's fields

    @classmethod
    def from_dict(cls, data):
        msg = super().from_dict(data)
        if msg.type not in ("ack", "error"):
            raise PayloadError(f"store message: unknown type {msg.type!r}")
        return msg


@dataclass(frozen=True)
class SyncRequest(Message):
    """Edge -> HQ on sync/req/{store}; the reply goes to the MQTT 5 response topic."""

    KIND: ClassVar[str] = "sync request"
    op: str
    id: str = ""
    from_seq: int = 0
    limit: int = 1000
    entity: str = ""
    after: str = ""
    lease: str = ""
    customer_id: str = ""  # op=history, coupon_reserve
    coupon: str = ""  # op=coupon_reserve, coupon_release
    ticket: str = ""

    OPS: ClassVar[tuple[str, ...]] = ("catchup", "snapshot", "code_block", "hello", "history", "changes", "coupon_reserve",
                                      "coupon_release")

    @classmethod
    def from_dict(cls, data):
        msg = super().from_dict(data)
        if msg.op not in cls.OPS:
            raise PayloadError(f"sync request: unknown op {msg.op!r} (expected one of {', '.join(cls.OPS)})")
        if not 1 <= msg.limit <= 20000:
            raise PayloadError("sync request: 'limit' must be between 1 and 20000")
        return msg


@dataclass(frozen=True)
class SyncReply(Message):
    KIND: ClassVar[str] = "sync reply"
    MAX_BYTES: ClassVar[int] = SYNC_MAX_BYTES  # snapshot and catch-up pages
    ok: bool
    error: str | None = None
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SyncStatus(Message):
    """A store's retained link status on sync/status/{store} (last will: offline)."""

    KIND: ClassVar[str] = "sync status"
    state: str
    pending_up: int = 0
    last_seq: int = 0
    ts: float = 0.0
