"""The edge service: a store's replica, its link to HQ and its lanes.

Two brokers: the store broker (lanes and devices) and the HQ broker (sync).
Two workers, each with its own SQLite connection: *sync* (the HQ link,
edge.hq_link: snapshot, catch-up, downstream, outbox, code leases, status)
and *lane* (tickets, edge.lane.bus, and customer requests, edge.lane.customers),
so a long catch-up never keeps a cashier waiting on a search. This module
wires them together.
"""

from __future__ import annotations

import logging
import time

from edge.db import EdgeDatabase
from edge.hq_link import HQCouponGate, HqLink
from edge.lane.bus import TicketLanes
from edge.lane.customers import LaneCustomers
from edge.lane.mail import MailSender, MailSettings, ReceiptMail, error_topic_alert
from edge.lane.printers import PrinterRoutes
from edge.lane.settings import LaneSettings
from edge.lane.till import TillLink
from lanehub.protocol import topics
from lanehub.protocol.lane import EdgeStatus
from lanehub.protocol.sync import SyncStatus
from lanehub.replication.sqlite import transaction
from lanehub.runtime.config import Config
from lanehub.runtime.mqtt import DEFAULT_SESSION_EXPIRY, Incoming, LinkState, MqttClient
from lanehub.runtime.report import publish_report
from lanehub.runtime.worker import Worker

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between sync housekeeping rounds
STATUS_EVERY = 5.0


class EdgeService:
    def __init__(self, config: Config):
        self.config = config
        self.store = config["store"]["id"]
        self.db_path = config["store"]["db"]
        self.sync_db: EdgeDatabase | None = None
        self.lane_db: EdgeDatabase | None = None
        self.sync = Worker("edge-sync", setup=self._open_sync_db, teardown=self._close_sync_db)
        self.lane = Worker("edge-lane", setup=self._open_lane_db, teardown=self._close_lane_db)
        self._last_status = 0.0
        client_id = f"lanehub-edge-{self.store}"
        # A persistent session on the store broker too: scans and ticket commands
        # sent while the edge restarts wait for it in the broker (QoS 1).
        self.local = MqttClient(
            config.broker("broker"), client_id, clean_start=False, session_expiry=DEFAULT_SESSION_EXPIRY,
            will=(topics.edge_status(self.store), EdgeStatus(state="offline").to_json()),
            on_connect=self._local_connected,
            on_handler_error=lambda msg, exc: self.report(msg, f"internal error: {exc}"),
            name="store broker",
        )
        self.hq = MqttClient(
            config.broker("hq"), client_id, clean_start=False, session_expiry=DEFAULT_SESSION_EXPIRY,
            will=(topics.sync_status(self.store), SyncStatus(state="offline").to_json()),
            on_connect=self._hq_connected,
            on_disconnect=self._hq_disconnected,
            on_handler_error=lambda msg, exc: self.report(msg, f"internal error: {exc}"),
            name="HQ broker",
        )
        self.link = HqLink(config, self.hq, self.local, self.sync, self._sync_database, self.report, self.publish_status)
        self.customers = LaneCustomers(self.store, self.local, self.lane, self._lane_database, self.link, self.report)
        # E-mailed receipts (edge.lane.mail): queued by the close on the lane worker, sent
        # by a thread of its own (no sender while [mail] has no host).
        self.mail_settings = MailSettings.from_config(config)
        self.receipt_mail = ReceiptMail(self.mail_settings, self.store, error_topic_alert(self.local, self.store))
        self.mail_sender = (MailSender(self.db_path, self.mail_settings, error_topic_alert(self.local, self.store), self.store)
                            if self.mail_settings.configured else None)
        self.till = TillLink(self.local, self.store)  # the cashier screens' (edge.web.till)
        self.tickets: TicketLanes = TicketLanes(self.local, self.lane, LaneSettings.from_config(config), self.report,
                                   config["store"]["print_retry"],
                                   HQCouponGate(self.link, lambda: self.tickets.book.settings.coupon_offline),
                                   routes=PrinterRoutes.from_config(config), receipt_mail=self.receipt_mail)

    # --- lifecycle -----------------------------------------------------------------------

    def _open_sync_db(self) -> None:
        self.sync_db = EdgeDatabase(self.db_path, self.store)

    def _open_lane_db(self) -> None:
        self.lane_db = EdgeDatabase(self.db_path, self.store)

    def _sync_database(self) -> EdgeDatabase:
        # Opened by the sync worker's setup, before any of its tasks runs.
        assert self.sync_db is not None, "the sync worker's database is not open"
        return self.sync_db

    def _lane_database(self) -> EdgeDatabase:
        # Opened by the lane worker's setup, before any of its tasks runs.
        assert self.lane_db is not None, "the lane worker's database is not open"
        return self.lane_db

    def _close_sync_db(self) -> None:
        if self.sync_db is not None:
            self.sync_db.close()

    def _close_lane_db(self) -> None:
        if self.lane_db is not None:
            self.lane_db.close()

    def start(self) -> "EdgeService":
        self.sync.start()
        self.sync.call(lambda: None)  # the database opens (and migrates) before anything else
        self.lane.start()
        self.lane.call(lambda: self.tickets.start(self.lane_db))
        self.customers.subscribe()
        self.till.subscribe()
        self.link.subscribe()
        self.local.start()
        self.hq.start()
        self.sync.every(TICK, self._tick)
        if self.mail_sender:
            self.mail_sender.start()
        log.info("edge %s running: db %s", self.store, self.db_path)
        return self

    def stop(self) -> None:
        if self.mail_sender:
            self.mail_sender.stop()
        try:  # the sync worker's connection belongs to its thread
            pending, last = self.sync.call(lambda: (self._sync_database().pending_up(), self._sync_database().last_seq),
                                           timeout=5)
        except Exception:  # a worker that is stuck or gone: the will says offline without figures
            pending, last = 0, 0
        sync_status = SyncStatus(state="offline", pending_up=pending, last_seq=last, ts=time.time())
        edge_status = EdgeStatus(state="offline", hq_link="down", pending_up=pending, last_seq=last)
        self.hq.stop(last=(topics.sync_status(self.store), sync_status.to_json()))
        self.local.stop(last=(topics.edge_status(self.store), edge_status.to_json()))
        self.sync.stop()
        self.lane.stop()

    def broker_links(self) -> dict[str, LinkState]:
        """The two links as they are now, for the store page's /healthz."""
        return {"store_broker": self.local.link, "hq_broker": self.hq.link}

    def _hq_connected(self) -> None:
        self.sync.submit(self.link.on_connected)

    def _hq_disconnected(self) -> None:
        self.sync.submit(self.publish_status)

    def _local_connected(self) -> None:
        self.sync.submit(self.publish_status)
        self.lane.submit(self.tickets.republish)

    def _tick(self) -> None:
        self.link.tick()
        if time.monotonic() - self._last_status >= STATUS_EVERY:
            self.publish_status()

    # --- errors and status ---------------------------------------------------------------------

    def report(self, msg: Incoming, reason: str) -> None:
        publish_report(self.local, self.store, msg.topic, reason, msg.payload, log)

    def publish_status(self) -> None:
        """The store's link status, retained on both brokers (sync worker)."""
        db = self._sync_database()
        pending, last = db.pending_up(), db.last_seq
        link = "up" if self.hq.connected.is_set() else "down"
        if db.meta.get("hq_link") != link:  # for the store page, which runs beside this service
            with transaction(db.conn):
                db.meta.set("hq_link", link)
        self.local.publish(topics.edge_status(self.store),
                           EdgeStatus(state="online", hq_link=link, pending_up=pending, last_seq=last).to_json(), retain=True)
        if self.hq.connected.is_set():
            self.hq.publish(topics.sync_status(self.store),
                            SyncStatus(state="online", pending_up=pending, last_seq=last, ts=time.time()).to_json(), retain=True)
        self._last_status = time.monotonic()

    def hq_changes(self, customer_id: str) -> list | None:
        """A customer's change history from HQ's log, or None when HQ cannot answer now (the store page's)."""
        return self.link.change_history(customer_id)
