"""E-mailed receipts: a durable mail outbox in the edge database, and its sender.

A receipt to e-mail is queued (a ``mail_outbox`` row) in the same transaction
as the ticket's close, so it is never lost and never reported done before it
is on disk. The sender is a thread of its own, with its own SQLite connection:
a slow or unreachable mail server never keeps a lane waiting.

Delivery is at least once. A message is marked sent right after the server
accepted it; a crash between the server's "250" and that commit sends the
receipt once more when the edge is back (same Message-ID, so most mail
clients show one). A duplicate beats a lost receipt, as with the print spool.

Statuses: ``queued`` (waiting for its next attempt), ``sent``, ``failed`` (the
server refused it for good, with its answer, or it was given up on after
``give_up_hours``; the store page can queue it again with ``retry``).
"""

from __future__ import annotations

import html
import json
import logging
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Callable

from lanehub.protocol import topics
from lanehub.protocol.change import new_id
from lanehub.protocol.lane import Receipt, TicketWarning
from lanehub.receipts.image import receipt_png
from lanehub.receipts.layout import text_lines
from lanehub.replication.sqlite import connect, transaction
from lanehub.runtime.config import Config
from lanehub.runtime.report import publish_report
from lanehub.runtime.worker import Worker

log = logging.getLogger(__name__)

RECEIPT_COLUMNS = 42  # the printer's layout: the e-mail shows what paper would
SEND_BATCH = 20  # messages per SMTP connection and round
NOT_CONFIGURED = "e-mail receipts are not configured in this store ([mail] host)"

Alert = Callable[[str, str], None]  # alert(topic, reason): the store's error topic


@dataclass(frozen=True)
class MailSettings:
    """edge.toml ``[mail]`` and ``[store] email_fallback``; no host: not configured."""

    host: str = ""
    port: int = 587
    security: str = "starttls"  # starttls | tls | none
    user: str = ""
    password: str = field(default="", repr=False)  # never in a log line or a repr
    sender: str = ""  # the From: header, e.g. "Lanehub Market <receipts@example.com>"
    timeout: float = 10.0
    retry: float = 60.0  # seconds between attempts of a message
    give_up_hours: float = 72.0  # 0: never
    fallback: str = "print"  # without [mail]: print the receipt, or keep it queued

    @property
    def configured(self) -> bool:
        return bool(self.host)

    @classmethod
    def from_config(cls, config: Config) -> "MailSettings":
        mail = config["mail"]
        return cls(host=mail["host"], port=mail["port"], security=mail["security"], user=mail["user"],
                   password=mail["password"], sender=mail["from"], timeout=mail["timeout"], retry=mail["retry"],
                   give_up_hours=mail["give_up_hours"], fallback=config["store"]["email_fallback"])


@dataclass(frozen=True)
class MailStatus:
    """One message of the outbox, as the store page shows it."""

    id: str
    ticket: str
    job: str  # the receipt's print_jobs row
    recipient: str
    subject: str
    status: str  # queued | sent | failed
    attempts: int
    last_error: str  # the server's answer or the connection error; "" when none
    created_at: float
    next_attempt: float
    sent_at: float | None


@dataclass(frozen=True)
class QueuedMail:
    """A message due to be sent: what the sender needs to build it."""

    id: str
    recipient: str
    subject: str
    receipt: Receipt
    created_at: float


_STATUS_COLUMNS = ("id, ticket, job, recipient, subject, status, attempts, last_error, created_at, next_attempt, "
                   "sent_at")


class MailOutbox:
    """The ``mail_outbox`` table on one connection (the caller's thread owns it)."""

    def __init__(self, conn):
        self.conn = conn

    def queue(self, job: str, ticket: str, recipient: str, subject: str, receipt: Receipt | dict,
              waiting: str = "") -> str:
        """Queue a receipt (a ``Receipt``, or its JSON object: ``Receipt.of``); inside the
        caller's transaction when there is one (the close), so the message is durable
        exactly when the sale is. ``waiting`` says why it is not sent yet (e-mail not configured)."""
        stored = json.dumps(Receipt.of(receipt).to_dict())
        mail_id = new_id()
        now = time.time()
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO mail_outbox (id, job, ticket, recipient, subject, receipt, status, last_error, created_at, "
                "next_attempt) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
                (mail_id, job, ticket, recipient, subject, stored, waiting, now, now))
        return mail_id

    def due(self, now: float | None = None, limit: int = SEND_BATCH) -> list[QueuedMail]:
        """Messages due now. One whose stored receipt cannot be read is marked failed
        here: it would fail every round."""
        rows = self.conn.execute(
            "SELECT id, recipient, subject, receipt, created_at FROM mail_outbox WHERE status = 'queued' "
            "AND next_attempt <= ? ORDER BY next_attempt LIMIT ?", (time.time() if now is None else now, limit)).fetchall()
        due = []
        for r in rows:
            try:
                receipt = Receipt.from_dict(json.loads(r[3]))
            except ValueError as exc:  # not JSON, or not a receipt (PayloadError)
                log.exception("mail %s: its receipt cannot be read", r[0])
                self.mark_failed(r[0], f"the message could not be built: {exc}")
                continue
            due.append(QueuedMail(r[0], r[1], r[2], receipt, r[4]))
        return due

    def mark_sent(self, mail_id: str) -> None:
        with transaction(self.conn):
            self.conn.execute("UPDATE mail_outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                              "last_error = '' WHERE id = ?", (time.time(), mail_id))

    def mark_retry(self, mail_id: str, error: str, retry_after: float, give_up_hours: float = 0) -> str:
        """A failed attempt: tried again in ``retry_after`` seconds, or given up on
        once the message is older than ``give_up_hours``. Returns the new status."""
        now = time.time()
        with transaction(self.conn):
            row = self.conn.execute("SELECT created_at FROM mail_outbox WHERE id = ?", (mail_id,)).fetchone()
            if row is None:
                return ""
            if give_up_hours and now - row[0] > give_up_hours * 3600:
                status, error = "failed", f"gave up after {give_up_hours:g} hours: {error}"
            else:
                status = "queued"
            self.conn.execute("UPDATE mail_outbox SET status = ?, attempts = attempts + 1, last_error = ?, "
                              "next_attempt = ? WHERE id = ?", (status, error, now + retry_after, mail_id))
        return status

    def mark_failed(self, mail_id: str, error: str) -> None:
        with transaction(self.conn):
            self.conn.execute("UPDATE mail_outbox SET status = 'failed', attempts = attempts + 1, last_error = ? "
                              "WHERE id = ?", (error, mail_id))

    def retry(self, mail_id: str) -> bool:
        """Queue a failed (or waiting) message for sending now; False when there is
        no such message or it was sent already."""
        with transaction(self.conn):
            cursor = self.conn.execute("UPDATE mail_outbox SET status = 'queued', next_attempt = ? "
                                       "WHERE id = ? AND status IN ('queued', 'failed')", (time.time(), mail_id))
        return cursor.rowcount > 0

    def get(self, mail_id: str) -> MailStatus | None:
        row = self.conn.execute(f"SELECT {_STATUS_COLUMNS} FROM mail_outbox WHERE id = ?", (mail_id,)).fetchone()
        return MailStatus(*row) if row else None

    def recent(self, limit: int = 30) -> list[MailStatus]:
        """The newest messages first, whatever their status."""
        rows = self.conn.execute(f"SELECT {_STATUS_COLUMNS} FROM mail_outbox ORDER BY created_at DESC LIMIT ?",
                                 (limit,)).fetchall()
        return [MailStatus(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Messages per status, e.g. {"queued": 2, "sent": 40, "failed": 1}."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT status, count(*) FROM mail_outbox GROUP BY status")}


def receipt_subject(receipt: Receipt) -> str:
    return f"Your receipt {receipt.ticket} — {receipt.store.name or receipt.store.id}"


class ReceiptMail:
    """What becomes of a receipt to e-mail, decided at the close on the lane worker
    (``TicketBook._close`` calls ``route`` inside the close's transaction)."""

    def __init__(self, settings: MailSettings, store: str, alert: Alert):
        self.settings = settings
        self.store = store
        self.alert = alert
        self._told_not_configured = False  # the error topic hears it once per process, not per receipt

    def route(self, conn, lane: str, job: str, receipt: Receipt, address: str, notices: list[TicketWarning]) -> str:
        """Queue the receipt for ``address`` and return the print job's status:
        "email" (queued, or kept with ``email_fallback = "keep"``) or "pending"
        (printed instead: no address, or e-mail not configured with "print")."""
        ticket = receipt.ticket
        topic = _close_topic(self.store, lane)
        if not address:  # nothing could ever send it: paper now beats no receipt
            notices.append(TicketWarning(code="email_no_address",
                                         message=f"receipt {ticket} printed: the customer has no e-mail address"))
            self.alert(topic, f"receipt {ticket}: an e-mail receipt was asked for, but there is no e-mail address; printed")
            return "pending"
        if not self.settings.configured:
            if not self._told_not_configured:
                self._told_not_configured = True
                self.alert(topic, f"{NOT_CONFIGURED}; e-mail receipts are "
                                  f"{'printed' if self.settings.fallback == 'print' else 'kept unsent'}")
            if self.settings.fallback == "print":
                notices.append(TicketWarning(code="email_not_configured", message=f"receipt {ticket} printed: {NOT_CONFIGURED}"))
                return "pending"
            MailOutbox(conn).queue(job, ticket, address, receipt_subject(receipt), receipt, waiting=NOT_CONFIGURED)
            notices.append(TicketWarning(code="email_not_configured",
                                         message=f"receipt {ticket} kept unsent: {NOT_CONFIGURED}"))
            return "email"
        MailOutbox(conn).queue(job, ticket, address, receipt_subject(receipt), receipt)
        return "email"


def _close_topic(store: str, lane: str) -> str:
    """The lane's ticket/cmd topic (where the close came from), for an error report."""
    try:
        return topics.ticket_cmd(store, lane)
    except topics.TopicError:
        return topics.error(store)


def error_topic_alert(client, store: str) -> Alert:
    """alert(topic, reason): logged, and an ``ErrorReport`` on the store's error topic."""

    def alert(topic: str, reason: str) -> None:
        publish_report(client, store, topic, reason, logger=log)

    return alert


# --- building a message -----------------------------------------------------------------------


def build_message(mail: QueuedMail, settings: MailSettings) -> EmailMessage:
    """Plain text (the printed layout), an escaped HTML alternative of the same
    lines, and the receipt as a PNG (``lanehub.receipts.image``)."""
    lines = text_lines(mail.receipt, width=RECEIPT_COLUMNS)
    message = EmailMessage()
    message["Subject"] = mail.subject
    message["From"] = settings.sender
    message["To"] = mail.recipient
    message["Date"] = formatdate(mail.created_at, localtime=True)
    # From the outbox id: a resend after a crash carries the same Message-ID.
    message["Message-ID"] = f"<{mail.id}@{_domain(settings.sender)}>"
    message.set_content("\n".join(lines) + "\n")
    rows = "\n".join(html.escape(line) for line in lines)
    message.add_alternative(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(mail.subject) + "</title></head>"
        "<body><pre style=\"font-family: monospace; font-size: 14px\">\n" + rows + "\n</pre></body></html>\n",
        subtype="html")
    png = _receipt_picture(mail)
    if png is not None:
        ticket = mail.receipt.ticket or "receipt"
        message.add_attachment(png, maintype="image", subtype="png", filename=f"receipt-{ticket}.png")
    return message


def _receipt_picture(mail: QueuedMail) -> bytes | None:
    try:
        return receipt_png(mail.receipt, columns=RECEIPT_COLUMNS)
    except Exception:  # the text is the receipt: send it without the picture
        log.exception("receipt picture for %s failed; sent without it", mail.receipt.ticket)
        return None


def _domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "lanehub.invalid"


# --- sending -------------------------------------------------------------------------------------


def _answer(code: int, text: bytes | str) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {text}".strip()


def describe(exc: BaseException) -> str:
    """An SMTP or connection error as one line (the server's answer when it gave one)."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return _answer(exc.smtp_code, exc.smtp_error)
    return f"{type(exc).__name__}: {exc}"


class MailSender:
    """Sends due messages on a thread of its own ("edge-mail"), with its own
    connection to the edge database; polls at most every second."""

    def __init__(self, db_path: str, settings: MailSettings, alert: Alert, store: str):
        self.db_path = db_path
        self.settings = settings
        self.alert = alert
        self.store = store
        self._outbox: MailOutbox | None = None  # opened on the mail worker
        self.worker = Worker("edge-mail", setup=self._open, teardown=self._close)
        self._server_problem = ""  # the last connection-level error told; "" while the server works

    @property
    def server_url(self) -> str:
        """Where the sender's error reports say they come from (no MQTT topic to name)."""
        return f"smtp://{self.settings.host}:{self.settings.port}"

    def _open(self) -> None:
        self._outbox = MailOutbox(connect(self.db_path))

    def _close(self) -> None:
        if self._outbox is not None:
            self._outbox.conn.close()

    @property
    def outbox(self) -> MailOutbox:
        if self._outbox is None:
            raise RuntimeError("the mail outbox is opened on the mail worker, when it starts")
        return self._outbox

    def start(self) -> "MailSender":
        self.worker.start()
        self.worker.every(min(1.0, self.settings.retry), self.send_due)
        s = self.settings
        log.info("edge %s: e-mail receipts via %s:%d (%s) as %s", self.store, s.host, s.port, s.security, s.sender)
        return self

    def stop(self) -> None:
        self.worker.stop()

    def send_due(self) -> int:
        """One round: every due message over one SMTP connection. Returns how many were sent."""
        due = self.outbox.due()
        if not due:
            return 0
        try:
            smtp = self._connect()
        except (smtplib.SMTPException, OSError) as exc:  # OSError: refused, unreachable, timeout, TLS
            self._wait_for_server(due, describe(exc))
            return 0
        sent = 0
        try:
            while due:
                if self._send_one(smtp, due[0]):
                    sent += 1
                due.pop(0)
        except (smtplib.SMTPException, OSError) as exc:  # the connection broke: the rest wait with it
            self._wait_for_server(due, describe(exc))
        finally:
            _quit(smtp)
        if sent and self._server_problem:
            log.info("edge %s: mail server %s reachable again", self.store, self.settings.host)
            self._server_problem = ""
        return sent

    def _send_one(self, smtp: smtplib.SMTP, mail: QueuedMail) -> bool:
        """Send one message; a refusal of this message is recorded here, a broken
        connection is raised to the round."""
        try:
            message = build_message(mail, self.settings)
        except Exception as exc:  # a bad receipt or address would fail every round: failed, visible
            log.exception("receipt %s: no e-mail could be built", mail.receipt.ticket)
            self.outbox.mark_failed(mail.id, f"the message could not be built: {exc}")
            return False
        try:
            smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (0, b"recipient refused"))
            self._refused(mail, code, _answer(code, text))
            return False
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            self._refused(mail, exc.smtp_code, describe(exc))
            return False
        self.outbox.mark_sent(mail.id)  # at once: the window for a duplicate is this commit
        log.info("edge %s: receipt %s e-mailed", self.store, mail.receipt.ticket)
        return True

    def _refused(self, mail: QueuedMail, code: int, answer: str) -> None:
        ticket = mail.receipt.ticket
        if code >= 500:  # permanent: the same message would be refused again
            self.outbox.mark_failed(mail.id, answer)
            self.alert(_close_topic(self.store, mail.receipt.lane),
                       f"receipt {ticket} e-mail to {mail.recipient} refused: {answer}")
            return
        status = self.outbox.mark_retry(mail.id, answer, self.settings.retry, self.settings.give_up_hours)
        log.info("edge %s: receipt %s e-mail deferred (%s): %s", self.store, ticket, status, answer)

    def _wait_for_server(self, due: list[QueuedMail], error: str) -> None:
        """The server cannot be reached or used (down, login refused): every due
        message waits ``retry`` seconds; the error topic hears it once per outage."""
        for mail in due:
            self.outbox.mark_retry(mail.id, error, self.settings.retry, self.settings.give_up_hours)
        if error != self._server_problem:
            self._server_problem = error
            self.alert(self.server_url, f"e-mail receipts wait: mail server {self.server_url}: {error}")

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        if s.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.security == "starttls":  # no STARTTLS offered: an error, never a plain-text login
                smtp.starttls(context=context)
            if s.user:
                smtp.login(s.user, s.password)
        except BaseException:
            _quit(smtp)
            raise
        return smtp


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
