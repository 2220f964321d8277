"""HQ broker payloads (docs/protocol.md, normative): up and down batches, a store's
own messages (acks, snapshot and catch-up pages), requests and replies, and status.

The objects inside them are typed too: a ``Rejection`` in an ack, and one reply
type per request op (``REPLY_TYPES``) for a SyncReply's ``data``."""

from __future__ import annotations

import base64
import dataclasses
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from lanehub.protocol.envelope import MAX_UP_CHANGES, SYNC_MAX_BYTES, Message, PayloadError, from_fields
from lanehub.protocol.lane import PayloadPart


@dataclass(frozen=True)
class UpBatch(Message):
    """Changes made at a store, sent on sync/up/{store} until HQ acks them."""

    KIND: ClassVar[str] = "up batch"
    MAX_BYTES: ClassVar[int] = SYNC_MAX_BYTES
    store: str
    changes: list[Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
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
    changes: list[Any] = field(default_factory=list)
    # The seqs the batch covers, first..through: a seq in that range that is not
    # among ``changes`` went to one store only (lanehub.protocol.routes). 0: the
    # batch covers exactly its changes (an HQ from before routes).
    first: int = 0
    through: int = 0
    # store -> the seqs of the range held back for it: that store catches up from there.
    held: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        msg = super().from_dict(data)
        if msg.type not in ("changes", "head"):
            raise PayloadError(f"down batch: unknown type {msg.type!r}")
        if msg.first < 0 or msg.through < msg.first or (msg.first == 0) != (msg.through == 0):
            raise PayloadError(f"down batch: covers {msg.first}..{msg.through}, not a range of seqs")
        for store, seqs in msg.held.items():
            if not isinstance(seqs, list) or not all(isinstance(n, int) and not isinstance(n, bool)
                                                     and msg.first <= n <= msg.through for n in seqs):
                raise PayloadError(f"down batch: held[{store!r}] must be seqs within {msg.first}..{msg.through}")
        return msg


@dataclass(frozen=True)
class Rejection(PayloadPart):
    """A store change HQ refused, with HQ's version of the record and its per-field
    clocks (both None when HQ does not have the record, or the change was unreadable).
    Read leniently, as the edge always has: whatever HQ sent is recorded."""

    id: str = ""
    reason: str = ""
    entity: str = ""
    key: str = ""
    record: dict[str, Any] | None = None
    clocks: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoreMessage(Message):
    """HQ -> one store on sync/store/{store}: acks and rejections."""

    KIND: ClassVar[str] = "store message"
    MAX_BYTES: ClassVar[int] = SYNC_MAX_BYTES  # an ack carries HQ's version of every refused record
    type: str  # ack | error
    acked: list[Any] = field(default_factory=list)
    rejected: tuple[Rejection, ...] = ()
    error: dict[str, Any] = field(default_factory=dict)  # for type=error: an ErrorReport's fields

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if isinstance(data.get("rejected"), list):
            # Entries that are not objects are skipped, as the edge always did; a
            # 'rejected' that is not a list is the base class's wrong-type refusal.
            data = {**data, "rejected": tuple(Rejection.from_dict(r) for r in data["rejected"] if isinstance(r, dict))}
        msg = super().from_dict(data)
        if msg.type not in ("ack", "error"):
            raise PayloadError(f"store message: unknown type {msg.type!r}")
        return msg

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "rejected": [r.to_dict() for r in self.rejected]}


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
    # op=catchup: the edge knows routes (lanehub.protocol.routes) and takes a page of
    # the changes for it with ``through``; an older edge is sent every change.
    routed: bool = False
    # op=snapshot_file: which of HQ's snapshot files ("" = the newest) and which of its chunks.
    file: str = ""
    chunk: int = 0

    OPS: ClassVar[tuple[str, ...]] = ("catchup", "snapshot", "code_block", "hello", "history", "changes", "coupon_reserve",
                                      "coupon_release", "snapshot_file")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        msg = super().from_dict(data)
        if msg.op not in cls.OPS:
            raise PayloadError(f"sync request: unknown op {msg.op!r} (expected one of {', '.join(cls.OPS)})")
        if not 1 <= msg.limit <= 20000:
            raise PayloadError("sync request: 'limit' must be between 1 and 20000")
        return msg


@dataclass(frozen=True)
class SyncReply(Message):
    """HQ's answer to a SyncRequest; ``data`` is the op's reply type as a dict
    (``REPLY_TYPES[op].from_dict(data)`` reads it), {} for a refusal."""

    KIND: ClassVar[str] = "sync reply"
    MAX_BYTES: ClassVar[int] = SYNC_MAX_BYTES  # snapshot and catch-up pages
    ok: bool
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


# --- the data of a SyncReply, one type per op (docs/protocol.md §3.4) -------------------------

@dataclass(frozen=True)
class ReplyData:
    """The ``data`` object of a SyncReply. Read as strictly as a payload's fields (a
    reply that lacks one is a PayloadError, like a bad payload); written without a
    version of its own, since it is not a payload."""

    KIND: ClassVar[str] = "sync reply data"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        # The same field checks as Message's: the annotations say what each field holds.
        return from_fields(cls, data)

    def to_dict(self) -> dict[str, Any]:
        # Shallow, as Message.to_dict: a snapshot page's rows are JSON values already.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class CodeSettings(ReplyData):
    """HQ's customer code format (lanehub.domain.codes.CodeFormat)."""

    KIND: ClassVar[str] = "hello reply: codes"
    prefix: str
    width: int


@dataclass(frozen=True)
class HelloReply(ReplyData):
    KIND: ClassVar[str] = "hello reply"
    head: int
    codes: CodeSettings
    block_size: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if isinstance(data.get("codes"), dict):
            data = {**data, "codes": CodeSettings.from_dict(data["codes"])}
        return super().from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "codes": self.codes.to_dict()}


@dataclass(frozen=True)
class CatchupReply(ReplyData):
    """A page of HQ's change log from ``from_seq``, the changes for the asking store;
    ``more``: ask again after ``through``."""

    KIND: ClassVar[str] = "catchup reply"
    changes: list[Any]
    head: int
    more: bool
    # The last seq the page covers (changes for other stores are left out, not
    # gaps); 0: up to its last change (an HQ from before routes).
    through: int = 0


@dataclass(frozen=True)
class SnapshotReply(ReplyData):
    """A page of one entity's rows; ``next``: the ``after`` of the next page, None at the end."""

    KIND: ClassVar[str] = "snapshot reply"
    entity: str
    columns: list[str]
    rows: list[Any]
    head: int
    next: str | None


@dataclass(frozen=True)
class SnapshotFileReply(ReplyData):
    """One chunk of a snapshot file HQ built (D49): a SQLite database holding every
    every-store entity's rows as of ``head``, cut into ``chunks`` pieces of at most
    HQ's chunk size, each sent zlib-compressed and base64-encoded in ``data``.
    ``size`` and ``sha256`` are the whole file's; ``entities``, the ones it holds
    (the others, a store's own sales, come as snapshot pages); ``hlc``, the latest
    stamp in it."""

    KIND: ClassVar[str] = "snapshot_file reply"
    file: str
    head: int
    hlc: str
    chunk: int
    chunks: int
    size: int
    sha256: str
    entities: list[Any]
    data: str

    def decoded(self, limit: int = SYNC_MAX_BYTES) -> bytes:
        """The chunk's bytes; a PayloadError when ``data`` is not base64 of zlib, or
        inflates past ``limit`` (HQ's chunks are at most 8 MiB: anything bigger is not one)."""
        try:
            packed = base64.b64decode(self.data, validate=True)
            inflater = zlib.decompressobj()
            piece = inflater.decompress(packed, limit)
        except (ValueError, zlib.error) as exc:
            raise PayloadError(f"snapshot_file reply: chunk {self.chunk} is not base64 zlib data ({exc})") from None
        if inflater.unconsumed_tail or not inflater.eof:
            raise PayloadError(f"snapshot_file reply: chunk {self.chunk} inflates past {limit:,} bytes or is cut short")
        return piece


@dataclass(frozen=True)
class ChangesReply(ReplyData):
    """A customer's change history from HQ's log, newest first."""

    KIND: ClassVar[str] = "changes reply"
    changes: list[Any]


@dataclass(frozen=True)
class HistoryReply(ReplyData):
    """A customer's purchases across stores, newest first."""

    KIND: ClassVar[str] = "history reply"
    history: list[Any]


@dataclass(frozen=True)
class CouponReserveReply(ReplyData):
    KIND: ClassVar[str] = "coupon_reserve reply"
    coupon: str
    ticket: str
    reserved: bool


@dataclass(frozen=True)
class CouponReleaseReply(ReplyData):
    KIND: ClassVar[str] = "coupon_release reply"
    coupon: str
    ticket: str
    released: bool  # False: the ticket held no reservation of it (it lapsed, or was never made)


@dataclass(frozen=True)
class CodeBlockReply(ReplyData):
    """Code numbers ``start``-``end`` leased to the store under ``lease`` (the same block again for a retried lease)."""

    KIND: ClassVar[str] = "code_block reply"
    start: int
    end: int
    lease: str


REPLY_TYPES: dict[str, type[ReplyData]] = {
    "hello": HelloReply, "catchup": CatchupReply, "snapshot": SnapshotReply, "code_block": CodeBlockReply,
    "history": HistoryReply, "changes": ChangesReply, "coupon_reserve": CouponReserveReply,
    "coupon_release": CouponReleaseReply, "snapshot_file": SnapshotFileReply,
}
assert set(REPLY_TYPES) == set(SyncRequest.OPS), "every request op has its reply type"


@dataclass(frozen=True)
class SyncStatus(Message):
    """A store's retained link status on sync/status/{store} (last will: offline)."""

    KIND: ClassVar[str] = "sync status"
    state: str
    pending_up: int = 0
    last_seq: int = 0
    ts: float = 0.0
