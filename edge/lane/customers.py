"""The lanes' customer requests on ``lane/{lane}/customer/req``, on the edge's *lane*
worker: search, create, and the register's ops (edge.lane.register). A create out
of code numbers asks HQ for a block, briefly, then goes provisional."""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable

from edge.db import EdgeDatabase, NotReady, PastDeadline
from edge.hq_link import HqLink
from edge.lane.register import past_deadline, payment_card_refusal, register_op
from lanehub.domain.model import ValidationError
from lanehub.domain.search import lane_view, search_customers
from lanehub.protocol import topics
from lanehub.protocol.envelope import PayloadError
from lanehub.protocol.lane import CustomerReply, CustomerRequest
from lanehub.runtime.mqtt import Incoming, MqttClient
from lanehub.runtime.worker import Worker

log = logging.getLogger(__name__)

# What a lane hears of a bug: the details (which may quote the request) go to the error topic only.
INTERNAL_ERROR_REPLY = "internal error: the edge could not handle this request (see the store's error topic)"
LEASE_WAIT = 0.05  # a lane create out of numbers waits this long for HQ's block, then goes provisional


class LaneCustomers:
    """Answers the lanes' customer requests from the lane worker's database ``db()``."""

    def __init__(self, store: str, local: MqttClient, lane: Worker, db: Callable[[], EdgeDatabase], link: HqLink,
                 report: Callable[[Incoming, str], None]):
        self.store = store
        self.local = local
        self.lane = lane
        self._db = db
        self.link = link  # HQ: code blocks, purchase history, the outbox sent up after a write
        self.report = report

    def subscribe(self) -> None:
        self.local.subscribe(topics.lane_filter(self.store, topics.LEAF_CUSTOMER_REQ), lambda m: self.lane.submit(self.on_request, m))

    def on_request(self, msg: Incoming) -> None:
        try:
            lane = topics.parse(msg.topic).lane
            assert lane is not None  # subscribed to the lanes' customer/req topics only, each naming its lane
            request = CustomerRequest.parse(msg.payload)
        except (PayloadError, topics.TopicError) as exc:
            self.report(msg, str(exc))
            self.local.reply(msg, CustomerReply(ok=False, error=str(exc)).to_json())
            return
        except Exception as exc:  # a bug in reading one request: reported and answered, the next one is handled
            log.exception("customer request on %s could not be read", msg.topic)
            self.report(msg, f"internal error: {exc}")
            self.local.reply(msg, CustomerReply(ok=False, error=INTERNAL_ERROR_REPLY).to_json())
            return
        if not msg.response_topic:
            self.report(msg, "customer request without an MQTT 5 response topic")
            return
        try:
            db = self._db()
            refused = payment_card_refusal(request)  # never searched, stored or echoed (edge.lane.register)
            if refused is not None:
                reply = refused
            elif request.op == "search":
                reply = CustomerReply(ok=True, customers=search_customers(db.conn, request.q, request.limit))
            elif request.op == "create":
                reply = self._create(db, request, lane)
            else:
                reply = register_op(db, request, lane, self.link.purchase_history)
                if reply.ok and request.op != "history":
                    self.link.flush_soon()
        except Exception as exc:  # a bug in handling one request: reported and answered, the next one is handled
            log.exception("customer request on %s failed", msg.topic)
            self.report(msg, f"internal error: {exc}")
            reply = CustomerReply(ok=False, error=INTERNAL_ERROR_REPLY)
        self.local.reply(msg, reply.to_json())

    def _create(self, db: EdgeDatabase, request: CustomerRequest, lane: str) -> CustomerReply:
        refused = past_deadline(db, request)
        if refused:
            return refused
        if db.codes_left() == 0 and self.link.connected:
            # Out of numbers but online: lease a block rather than go provisional, but
            # only if HQ answers at once. A frozen or busy HQ (the link still up) must
            # not keep the cashier waiting: the block is asked for in the background.
            try:
                self.link.lease_in_background().result(LEASE_WAIT)
            except FutureTimeout:
                log.info("edge %s: no code block within %.0f ms: provisional code", self.store, LEASE_WAIT * 1000)
            except Exception:  # the sync worker logged it; the cashier still gets a (provisional) code
                pass
        try:
            with db.until(request.deadline):
                record = db.create_customer(request.customer, request.user or f"lane:{lane}", request.id)
        except ValidationError as exc:
            return CustomerReply(ok=False, error=f"invalid customer: {exc}", errors=exc.errors)
        except (NotReady, PastDeadline) as exc:
            return CustomerReply(ok=False, error=str(exc))
        self.link.flush_soon()
        if self.link.connected and self.link.short_of_codes(db):
            self.link.lease_in_background()  # a burst drains numbers faster than the 1 s tick asks
        return CustomerReply(ok=True, customer=lane_view(record))
