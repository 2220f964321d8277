"""Lane payloads on the store broker (docs/protocol.md): scans, card reads,
ticket commands, print jobs and their results, the lane's ticket state and
the receipt a print job carries."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Self

from lanehub.domain.entity import EMAIL_RE
from lanehub.protocol.change import new_id
from lanehub.protocol.envelope import VERSION, Message, PayloadError

MAX_QTY = Decimal("9999")
MAX_CODE = 128


def _need_id(kind: str, value: str) -> None:
    if not value.strip() or len(value) > 64:
        raise PayloadError(f"{kind}: 'id' must be a non-empty string of at most 64 characters")


def _need_code(kind: str, name: str, value: str) -> None:
    if not value.strip() or len(value) > MAX_CODE or any(ord(ch) < 0x1d for ch in value):
        raise PayloadError(f"{kind}: {name!r} must be 1-{MAX_CODE} printable characters")


@dataclass(frozen=True)
class Scan(Message):
    KIND: ClassVar[str] = "scan"
    id: str
    code: str
    ts: float = 0.0
    device: str = ""
    symbology: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        msg = super().from_dict(data)
        _need_id(cls.KIND, msg.id)
        _need_code(cls.KIND, "code", msg.code)
        return msg


@dataclass(frozen=True)
class CardRead(Message):
    KIND: ClassVar[str] = "card read"
    id: str
    card: str
    ts: float = 0.0
    device: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        msg = super().from_dict(data)
        _need_id(cls.KIND, msg.id)
        _need_code(cls.KIND, "card", msg.card)
        return msg


def parse_qty(value: Any) -> Decimal:
    """A quantity: a positive number up to 9999 with at most 3 decimals (weighed goods)."""
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise PayloadError("ticket command: 'qty' must be a number")
    try:
        qty = Decimal(str(value))
    except InvalidOperation:
        raise PayloadError(f"ticket command: 'qty' {value!r} is not a number") from None
    if not qty.is_finite() or qty <= 0 or qty > MAX_QTY or qty != qty.quantize(Decimal("0.001")):
        raise PayloadError("ticket command: 'qty' must be above 0, at most 9999, with at most 3 decimals")
    return qty.normalize() if qty == qty.to_integral() else qty


@dataclass(frozen=True)
class TicketCommand(Message):
    KIND: ClassVar[str] = "ticket command"
    id: str
    op: str
    code: str = ""
    sku: str = ""
    qty: Any = 1
    line: int = 0
    card: str = ""
    customer_id: str = ""
    coupon: str = ""
    user: str = ""
    email: str = ""  # close: e-mail the receipt here (kept with the receipt only, never on the customer)

    OPS: ClassVar[tuple[str, ...]] = ("open", "add", "remove", "set_customer", "clear_customer", "apply_coupon", "close", "void")

    @classmethod
    def by(cls, user: str, fields: dict[str, Any]) -> Self:
        """A new command a person gives (the till's forms), with a fresh id, checked
        as one from the wire is: a PayloadError says what is wrong."""
        return cls.from_dict({"v": VERSION, "id": new_id(), "user": user, **fields})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        msg = super().from_dict(data)
        _need_id(cls.KIND, msg.id)
        if msg.op not in cls.OPS:
            raise PayloadError(f"ticket command: unknown op {msg.op!r} (expected one of {', '.join(cls.OPS)})")
        if msg.op == "add":
            if bool(msg.code) == bool(msg.sku):
                raise PayloadError("ticket command: add needs exactly one of 'code' or 'sku'")
            _need_code(cls.KIND, "code" if msg.code else "sku", msg.code or msg.sku)
            parse_qty(msg.qty)
        if msg.op == "remove" and msg.line < 1:
            raise PayloadError("ticket command: remove needs 'line' (1, 2, ...)")
        if msg.op == "set_customer" and sum(map(bool, (msg.code, msg.card, msg.customer_id))) != 1:
            raise PayloadError("ticket command: set_customer needs exactly one of 'code', 'card' or 'customer_id'")
        if msg.email and (msg.op != "close" or not EMAIL_RE.match(msg.email)):
            raise PayloadError("ticket command: 'email' is for close and must be an e-mail address")
        if msg.op == "apply_coupon":
            _need_code(cls.KIND, "coupon", msg.coupon)
        return msg

    @property
    def quantity(self) -> Decimal:
        return parse_qty(self.qty)


@dataclass(frozen=True)
class PrintJob(Message):
    KIND: ClassVar[str] = "print job"
    job: str
    # A ``Receipt`` as its ``to_dict()``: kept as the JSON object that came, so the
    # bridge's spool keeps the job as it was sent; readers take it with ``Receipt.of``.
    receipt: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrintResult(Message):
    KIND: ClassVar[str] = "print result"
    job: str
    ok: bool
    error: str | None = None
    status: str = ""


# Bridges republish their retained status every DEVICE_HEARTBEAT seconds; the edge
# counts a device it has not heard from for DEVICE_SILENT_AFTER as offline
# (detail "silent"). The broker's last will covers a bridge that dies, but only
# after 1.5 keepalives plus its own coarse check (4-10 s measured on Mosquitto
# 2.0.11 with keepalive 3); a frozen or cut-off bridge shows offline within
# DEVICE_SILENT_AFTER + 1 s this way, whatever the broker.
DEVICE_HEARTBEAT = 2.0
DEVICE_SILENT_AFTER = 6.0


@dataclass(frozen=True)
class DeviceStatus(Message):
    """A bridge's retained status on device/{device}/status (last will: offline)."""

    KIND: ClassVar[str] = "device status"
    state: str  # online | offline
    kind: str = ""  # scanner | card_reader | printer
    lane: str = ""
    detail: str = ""  # e.g. unplugged, paper_near_end, paper_out, cover_open, unknown
    instance: str = ""  # one bridge run: tells a second bridge with the same device id from this one


# --- the edge's own messages on the store broker: status, errors, lane customer requests ---

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
    customer: dict[str, Any] = field(default_factory=dict)
    user: str = ""
    ref: str = ""  # update, add_card, consent, history: the customer's id or code
    card: str = ""
    kind: str = "customer"
    channel: str = ""
    granted: bool | None = None
    # When the lane stops waiting (seconds since the epoch; 0: no deadline, i.e. "now").
    # A write that reaches the edge later is refused, not applied late (the store
    # broker keeps the edge's session, so a request can wait there for minutes).
    deadline: float = 0.0

    OPS: ClassVar[tuple[str, ...]] = ("search", "create", "update", "add_card", "consent", "history")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
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
        if not math.isfinite(msg.deadline) or msg.deadline < 0:
            raise PayloadError("customer request: 'deadline' must be a time in seconds since the epoch (0: none)")
        return msg


@dataclass(frozen=True)
class CustomerReply(Message):
    KIND: ClassVar[str] = "customer reply"
    ok: bool
    error: str | None = None
    customers: list[Any] | None = None
    customer: dict[str, Any] | None = None
    errors: dict[str, Any] | None = None  # field -> message, for a create that failed validation
    history: list[Any] | None = None  # op=history: the customer's sales, newest first
    source: str | None = None  # op=history: "hq", or "local" when HQ could not be asked

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        # A reply carries either the search results, the customer or the history.
        for key in ("customers", "customer", "errors", "history", "source"):
            if data[key] is None:
                del data[key]
        return data


# --- the lane's ticket state and its receipt (docs/protocol.md, docs/protocol.md §18) ---

def _plain(value: Any) -> Any:
    """A value as JSON has it: a part as an object in field order, a tuple as a list."""
    if isinstance(value, PayloadPart):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


@functools.cache
def _field_names(cls: type[PayloadPart]) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class PayloadPart:
    """An object inside a payload (a ticket line, a receipt's store). Read leniently:
    its known keys with their values as they are, a missing key its default; the
    payload around it checks what it must."""

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        if not isinstance(data, dict):
            raise PayloadError(f"{where or cls.__name__}: expected an object, not {type(data).__name__}")
        names = _field_names(cls)  # type: ignore[arg-type]  # a class is hashable (mypy takes the instance __hash__)
        return cls(**{key: value for key, value in data.items() if key in names})

    @classmethod
    def list_from(cls, data: Any, where: str) -> tuple[Self, ...]:
        if not isinstance(data, list):
            raise PayloadError(f"{where}: expected a list, not {type(data).__name__}")
        return tuple(cls.from_dict(item, f"{where}[{i}]") for i, item in enumerate(data))

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(self)
        return plain


@dataclass(frozen=True)
class TicketCustomer(PayloadPart):
    id: str = ""
    code: str = ""
    name: str = ""
    payment_status: str = ""
    tax_id: str = ""


@dataclass(frozen=True)
class TicketWarning(PayloadPart):
    """Why an event was refused, or what the lane should know (docs/protocol.md §18 lists the codes)."""

    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class TicketLine(PayloadPart):
    line: int = 0
    sku: str = ""
    barcode: str = ""
    description: str = ""
    qty: str = "1"  # money and quantities are decimal strings
    unit_price: str = ""
    retail_price: str = ""
    price_source: str = ""  # retail | rate:<CODE> | specific | label
    amount: str = ""


@dataclass(frozen=True)
class TicketCoupon(PayloadPart):
    code: str = ""
    kind: str = ""
    value: str = ""
    discount: str = ""
    mode: str = ""  # online | offline (HQ could not be asked)


# A ticket holds at most [store] max_ticket_lines lines (edge.toml; at most this many):
# a full state of that many lines of the longest fields stays under TICKET_MAX_BYTES,
# itself under the store broker's message limit (lanehub.protocol.acl).
MAX_TICKET_LINES = 2000
TICKET_MAX_BYTES = 3 * 1024 * 1024


def _ticket_parts(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The objects inside a ticket state or change, read as their parts."""
    parts: dict[str, Any] = {}
    if data.get("customer") is not None:
        parts["customer"] = TicketCustomer.from_dict(data["customer"], f"{kind}: 'customer'")
    if data.get("coupon") is not None:
        parts["coupon"] = TicketCoupon.from_dict(data["coupon"], f"{kind}: 'coupon'")
    if "warnings" in data:
        parts["warnings"] = TicketWarning.list_from(data["warnings"], f"{kind}: 'warnings'")
    if "lines" in data:
        parts["lines"] = TicketLine.list_from(data["lines"], f"{kind}: 'lines'")
    return parts


@dataclass(frozen=True, kw_only=True)
class TicketState(Message):
    """A lane's whole ticket, retained on ``lane/{lane}/ticket/state``: what a lane
    client starts from (docs/protocol.md §18, D48). A lane with no ticket yet has
    ``ticket`` None and status "closed"."""

    KIND: ClassVar[str] = "ticket state"
    MAX_BYTES: ClassVar[int] = TICKET_MAX_BYTES
    ticket: str | None = None
    store: str
    lane: str
    status: str = "closed"  # open | closed | void
    customer: TicketCustomer | None = None
    warnings: tuple[TicketWarning, ...] = ()
    lines: tuple[TicketLine, ...] = ()
    subtotal: str = "0.00"  # before the coupon
    coupon: TicketCoupon | None = None
    total: str = "0.00"  # net of the coupon
    currency: str = "EUR"
    seq: int = 0  # the lane's event count this state includes (TicketChange.seq)
    cause: str = ""  # the id of the event that produced this state

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return super().from_dict({**data, **_ticket_parts(cls.KIND, data)})

    def to_dict(self) -> dict[str, Any]:
        return {key: _plain(value) for key, value in super().to_dict().items()}


# A change as Message.to_json writes it: its seq first, its cause last (the field
# order of TicketChange), so a reader can index one without decoding it whole.
_CHANGE_SEQ = re.compile(rb'^\{"v":%d,"seq":(\d+),' % VERSION)
_CHANGE_CAUSE = re.compile(rb'"cause":("(?:[^"\\]|\\.)*")\}$')


def peek_change(payload: bytes) -> tuple[int, str] | None:
    """(seq, cause) of a ticket change without decoding it, or None for a payload not
    as the edge writes one (decode it with TicketChange.parse to learn why)."""
    seq = _CHANGE_SEQ.match(payload)
    cause = _CHANGE_CAUSE.search(payload, max(0, len(payload) - 300))
    if seq is None or cause is None:
        return None
    return int(seq.group(1)), json.loads(cause.group(1))


@dataclass(frozen=True, kw_only=True)
class TicketChange(Message):
    """What one event did to a lane's ticket, on ``lane/{lane}/ticket/change`` (not
    retained): the state's small fields whole, and only the lines the event added or
    changed (``lines``) or removed (``removed``). ``seq`` counts the lane's events: a
    change applies to the state whose ``seq`` is one less, or, for another ticket than
    the one held, to an empty one (``lanehub.protocol.ticket_view``)."""

    KIND: ClassVar[str] = "ticket change"
    MAX_BYTES: ClassVar[int] = TICKET_MAX_BYTES  # a re-price for a customer carries every line it changed
    seq: int
    ticket: str | None = None
    store: str
    lane: str
    status: str = "closed"
    customer: TicketCustomer | None = None
    warnings: tuple[TicketWarning, ...] = ()
    lines: tuple[TicketLine, ...] = ()  # added or changed by this event, whole
    removed: tuple[int, ...] = ()  # line numbers this event removed
    line_count: int = 0  # lines on the ticket after this event
    subtotal: str = "0.00"
    coupon: TicketCoupon | None = None
    total: str = "0.00"
    currency: str = "EUR"
    cause: str = ""  # last, so a reader timing events finds it at the payload's end

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        parts = _ticket_parts(cls.KIND, data)
        if "removed" in data:
            removed = data["removed"]
            if not isinstance(removed, list) or not all(type(n) is int and n > 0 for n in removed):
                raise PayloadError(f"{cls.KIND}: 'removed' must be a list of line numbers")
            parts["removed"] = tuple(removed)
        return super().from_dict({**data, **parts})

    def to_dict(self) -> dict[str, Any]:
        return {key: _plain(value) for key, value in super().to_dict().items()}


@dataclass(frozen=True)
class ReceiptStore(PayloadPart):
    """The receipt's header: edge.toml's [store]."""

    id: str = ""
    name: str = ""
    address: str = ""
    tax_id: str = ""


@dataclass(frozen=True)
class ReceiptLine(PayloadPart):
    sku: str = ""
    description: str = ""
    qty: str = "1"
    unit_price: str = ""
    amount: str = ""  # tax included
    tax_rate: str = ""


@dataclass(frozen=True)
class ReceiptTax(PayloadPart):
    """One tax rate's share: ``base`` is its gross share after the coupon over (1 + rate)."""

    rate: str = ""
    base: str = ""
    tax: str = ""
    total: str = ""


@dataclass(frozen=True)
class ReceiptCoupon(PayloadPart):
    code: str = ""
    discount: str = ""


@dataclass(frozen=True)
class ReceiptCustomer(PayloadPart):
    code: str = ""
    name: str = ""
    tax_id: str = ""
    address: str = ""  # the invoice address on one line, when the store prints it


@dataclass(frozen=True)
class Receipt(PayloadPart):
    """A closed ticket's receipt: ``PrintJob.receipt``, ``print_jobs.receipt`` and
    ``mail_outbox.receipt`` hold its ``to_dict()``. Values are kept as they came
    (the layout prints whatever a receipt holds, cleaned of control characters)."""

    store: ReceiptStore = ReceiptStore()
    ticket: str = ""
    lane: str = ""
    closed_at: str = ""  # ISO 8601
    lines: tuple[ReceiptLine, ...] = ()
    subtotal: str = ""
    total: str = ""
    currency: str = ""
    taxes: tuple[ReceiptTax, ...] = ()
    coupon: ReceiptCoupon | None = None
    customer: ReceiptCustomer | None = None  # None: anonymous, or the store shows no customer
    barcode: str = ""  # CODE128 data; the ticket when empty
    footer: str = ""

    @classmethod
    def from_dict(cls, data: Any, where: str = "receipt") -> Self:
        if not isinstance(data, dict):
            raise PayloadError(f"{where}: expected an object, not {type(data).__name__}")
        parts: dict[str, Any] = {}
        # A missing or null part is an empty one: stored receipts and hand-written ones vary.
        if "store" in data:
            parts["store"] = ReceiptStore.from_dict(data["store"] or {}, f"{where}: 'store'")
        if "lines" in data:
            parts["lines"] = ReceiptLine.list_from(data["lines"] or [], f"{where}: 'lines'")
        if "taxes" in data:
            parts["taxes"] = ReceiptTax.list_from(data["taxes"] or [], f"{where}: 'taxes'")
        if "coupon" in data:
            parts["coupon"] = ReceiptCoupon.from_dict(data["coupon"], f"{where}: 'coupon'") if data["coupon"] else None
        if "customer" in data:
            parts["customer"] = (ReceiptCustomer.from_dict(data["customer"], f"{where}: 'customer'")
                                 if data["customer"] else None)
        return super().from_dict({**data, **parts}, where)

    @classmethod
    def of(cls, receipt: "Receipt | dict[str, Any]") -> "Receipt":
        """The one conversion readers use: a Receipt as it is, a receipt's JSON object
        (a print job's, a stored one) read with ``from_dict``."""
        return receipt if isinstance(receipt, Receipt) else cls.from_dict(receipt)
