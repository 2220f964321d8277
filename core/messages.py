"""Wire messages: frozen dataclasses that parse and serialise their JSON payloads.

Every payload is a UTF-8 JSON object with ``"v": 1`` (DESIGN section 4).
``Message.parse`` turns bytes into a message or raises ``PayloadError`` with
a reason a person can act on; handlers publish that reason on the error
topic and carry on.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

VERSION = 1
EXCERPT_LEN = 200


class PayloadError(ValueError):
    """A payload that is not what its topic carries."""


def excerpt(payload: bytes | str, limit: int = EXCERPT_LEN) -> str:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    return text if len(text) <= limit else text[:limit] + "…"


def decode_object(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except UnicodeDecodeError:
        raise PayloadError("payload is not UTF-8") from None
    except ValueError as exc:
        raise PayloadError(f"payload is not JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(data, dict):
        raise PayloadError("payload is not a JSON object")
    if data.get("v") != VERSION:
        raise PayloadError(f"unsupported payload version v={data.get('v')!r} (expected {VERSION})")
    return data


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is Any:
        return True
    if annotation is type(None):
        return value is None
    if origin is not None:
        annotation = origin
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


@functools.cache
def _schema(cls) -> tuple[dict[str, Any], tuple[dataclasses.Field, ...]]:
    """A message class's field types and fields, resolved once (get_type_hints
    costs ~0.2 ms: more than the rest of handling a scan)."""
    return typing.get_type_hints(cls), dataclasses.fields(cls)


@dataclass(frozen=True)
class Message:
    """Base for payloads; subclasses are frozen dataclasses of their fields."""

    KIND: ClassVar[str] = "message"

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        hints, fields = _schema(cls)
        values = {}
        for f in fields:
            if f.name in data:
                value = data[f.name]
                if not _type_ok(value, hints[f.name]):
                    raise PayloadError(f"{cls.KIND}: field {f.name!r} has the wrong type ({type(value).__name__})")
                values[f.name] = value
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise PayloadError(f"{cls.KIND}: missing field {f.name!r}")
        return cls(**values)

    @classmethod
    def parse(cls, payload: bytes):
        return cls.from_dict(decode_object(payload))

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: fields are JSON values already, and asdict's deep
        # copy of a 5,000-row snapshot page costs more than encoding it.
        return {"v": VERSION, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str).encode()


# --- store broker -----------------------------------------------------------

@dataclass(frozen=True)
class ErrorReport(Message):
    KIND: ClassVar[str] = "error"
    topic: str
    reason: str
    payload_excerpt: str = ""


@dataclass(frozen=True)
class EdgeStatus(Message):
    KIND: ClassVar[str] = "edge status"
    state: str  # online | offline
    hq_link: str = "unknown"  # up | down | unknown
    pending_up: int = 0
    last_seq: int = 0


@dataclass(frozen=True)
class CustomerRequest(Message):
    """A lane's request on customer/req: search or create."""

    KIND: ClassVar[str] = "customer request"
    op: str
    id: str = ""
    q: str = ""
    limit: int = 20
    customer: dict = field(default_factory=dict)
    user: str = ""
    ref: str = ""  # update, add_card, consent, history: the customer's id or code
    card: str = ""
    kind: str = "customer"
    channel: str = ""
    granted: bool | None = None

    OPS: ClassVar[tuple[str, ...]] = ("search", "create", "update", "add_card", "consent", "history")

    @classmethod
    def from_dict(cls, data):
        msg = super().from_dict(data)
        if msg.op not in cls.OPS:
            raise PayloadError(f"customer request: unknown op {msg.op!r} (expected one of {', '.join(cls.OPS)})")
        if msg.op == "search" and not msg.q.strip():
            raise PayloadError("customer request: search needs a non-empty 'q'")
        if msg.op in ("create", "update") and not msg.customer:
            raise PayloadError(f"customer request: {msg.op} needs a 'customer' object")
        if msg.op in ("update", "add_card", "consent", "history") and not msg.ref.strip():
            raise PayloadError(f"customer request: {msg.op} needs 'ref' (the customer's id or code)")
        if msg.op == "add_card" and not msg.card.strip():
            raise PayloadError("customer request: add_card needs 'card' (the card number)")
        if msg.op == "consent" and (msg.channel not in ("email", "sms", "post") or msg.granted is None):
            raise PayloadError("customer request: consent needs 'channel' (email, sms or post) and 'granted' (true/false)")
        if not 1 <= msg.limit <= 100:
            raise PayloadError("customer request: 'limit' must be between 1 and 100")
        return msg


@dataclass(frozen=True)
class CustomerReply(Message):
    KIND: ClassVar[str] = "customer reply"
    ok: bool
    error: str | None = None
    customers: list | None = None
    customer: dict | None = None
    errors: dict | None = None  # field -> message, for a create that failed validation
    history: list | None = None  # op=history: the customer's sales, newest first
    source: str | None = None  # op=history: "hq", or "local" when HQ could not be asked

    def to_dict(self):
        data = super().to_dict()
        # A reply carries either the search results, the customer or the history.
        for key in ("customers", "customer", "errors", "history", "source"):
            if data[key] is None:
                del data[key]
        return data


# --- HQ broker --------------------------------------------------------------

@dataclass(frozen=True)
class UpBatch(Message):
    """Changes made at a store, sent on sync/up/{store} until HQ acks them."""

    KIND: ClassVar[str] = "up batch"
    store: str
    changes: list


@dataclass(frozen=True)
class DownBatch(Message):
    """Sequenced changes on sync/down (type=changes) or HQ's head (type=head, retained)."""

    KIND: ClassVar[str] = "down batch"
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
