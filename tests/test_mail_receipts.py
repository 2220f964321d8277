"""E-mailed receipts through a real SMTP server (aiosmtpd on a loopback port), a
real edge and HQ: a close with an address, a no-paper customer, an SMTP outage,
a permanent refusal, a store without [mail], and bad [mail] config keys."""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import logging
import queue
import subprocess
import time

import pytest
from aiosmtpd.controller import Controller
from helpers import db_query, db_value, edge_db, kill_chain, start_chain, wait_converged, wait_until
from shop import PRODUCTS_CSV, Lane

from edge.db import EdgeDatabase
from edge.lane.mail import MailOutbox, MailSender, MailSettings, MailStatus
from lanehub.chain.local import Chain
from lanehub.chain.mosquitto import free_port
from lanehub.chain.processes import lanehub_command
from lanehub.receipts.layout import text_lines
from lanehub.replication.sqlite import connect

STORE_NAME = "Market <Centro> & Co"  # markup in the data: the HTML part must escape it
SENDER = "Lanehub Market <receipts@market.example>"
RETRY = 0.3  # seconds between attempts: quick tests


class Mailbox:
    """aiosmtpd handler: keeps every accepted message; refuses some recipients for good."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server that can be stopped (an outage) and started again on its port."""

    def __init__(self):
        self.port = free_port()
        self.mailbox = Mailbox()
        self.controller: Controller | None = None

    def start(self) -> "SmtpServer":
        # A stopped Controller closed its event loop: a new one on the same port.
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(content, policy=email.policy.default)
                for _sender, rcpts, content in list(self.mailbox.messages) if address in rcpts]


def mail_section(server: SmtpServer) -> dict:
    return {"host": "127.0.0.1", "port": server.port, "security": "none", "from": SENDER, "retry": RETRY,
            "timeout": 2.0}


def stock(chain: Chain) -> None:
    """The catalogue at HQ, and the store's replica caught up."""
    csv = chain.workdir / "products.csv"
    csv.write_text(PRODUCTS_CSV)
    chain.hq_cli("products", "import", str(csv))


def add_customer(chain: Chain, first: str, *extra: str) -> dict:
    return json.loads(chain.hq_cli("customers", "add", "--first-name", first, "--last-name", "Shopper", *extra).stdout)


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mail_shop(tmp_path_factory, smtp):
    """One store that e-mails receipts through ``smtp``."""
    workdir = tmp_path_factory.mktemp("mailshop")
    chain = Chain(workdir, ("S001",),
                  store_settings={"S001": {"name": STORE_NAME, "printer": "printer", "print_retry": 1.0}},
                  edge_settings={"S001": {"mail": mail_section(smtp)}})
    try:
        start_chain(chain)
        stock(chain)
        chain.people = {"Mia": add_customer(chain, "Mia", "--no-paper", "--email", "mia@example.com"),
                        "Nora": add_customer(chain, "Nora", "--no-paper")}
        wait_converged(chain)
        yield chain
    finally:
        print(f"----- edge log -----\n{chain.edges['S001'].tail(60)}" if chain.edges else "")
        kill_chain(chain)


LANES = itertools.count(1)


@pytest.fixture
def lane(mail_shop, mqtt):
    return Lane(mqtt(mail_shop.store_brokers["S001"].port), "S001", f"M{next(LANES)}")


def outbox_row(chain: Chain, ticket: str) -> dict | None:
    rows = db_query(edge_db(chain, "S001"), "SELECT * FROM mail_outbox WHERE ticket = ?", (ticket,))
    return dict(rows[0]) if rows else None


def error_saying(lane: Lane, text: str, timeout: float = 10) -> dict:
    """The first report on the store's error topic containing ``text`` (others pass by)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            report = lane.next_error(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if text in report["reason"]:
            return report
    raise AssertionError(f"no error report saying {text!r} within {timeout}s")


def printed_tickets(lane: Lane, seconds: float) -> set[str]:
    """The tickets of every print job the lane's printer gets in ``seconds``."""
    seen, deadline = set(), time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen.add(lane.jobs.get(timeout=left)["receipt"]["ticket"])
        except queue.Empty:
            break
    return seen


def assert_no_print_job(lane: Lane, wait: float = 1.5) -> None:
    with pytest.raises(queue.Empty):
        lane.jobs.get(timeout=wait)


# --- with [mail] -------------------------------------------------------------------------------


def test_a_close_with_an_address_sends_one_message_with_text_and_html(mail_shop, smtp, lane):
    lane.scan("8410000000011")
    lane.cmd("add", sku="WINE")
    state = lane.cmd("close", email="ann@example.com")
    ticket = state["ticket"]
    assert state["status"] == "closed" and state["total"] == "11.19"

    wait_until(lambda: smtp.to("ann@example.com"), 10, message="the receipt e-mail")
    time.sleep(5 * RETRY)  # more rounds of the sender: still one message
    [message] = smtp.to("ann@example.com")
    assert message["Subject"] == f"Your receipt {ticket} — {STORE_NAME}"
    assert message["From"] == SENDER and message["To"] == "ann@example.com"
    assert message["Message-ID"].endswith("@market.example>")

    receipt = json.loads(db_value(edge_db(mail_shop, "S001"), "SELECT receipt FROM print_jobs WHERE ticket = ?", (ticket,)))
    text = message.get_body(("plain",)).get_content()
    assert text.splitlines() == text_lines(receipt, width=42)  # what the printer would have printed
    assert ticket in text and "11.19" in text and "Red wine" in text
    page = message.get_body(("html",)).get_content()
    assert ticket in page and "11.19" in page
    assert "Market &lt;Centro&gt; &amp; Co" in page and "<Centro>" not in page

    [picture] = list(message.iter_attachments())
    assert picture.get_content_type() == "image/png" and picture.get_filename() == f"receipt-{ticket}.png"
    assert picture.get_content().startswith(b"\x89PNG\r\n\x1a\n")

    # Handed to SMTP first, marked sent after: wait for the mark.
    row = wait_until(lambda: (r := outbox_row(mail_shop, ticket)) and r["status"] == "sent" and r, 10,
                     message="the receipt marked sent")
    assert (row["status"], row["attempts"], row["recipient"], row["last_error"]) == ("sent", 1, "ann@example.com", "")
    assert row["sent_at"] >= row["created_at"]
    assert db_value(edge_db(mail_shop, "S001"), "SELECT status FROM print_jobs WHERE ticket = ?", (ticket,)) == "email"
    assert_no_print_job(lane)


def test_a_no_paper_customers_receipt_goes_to_their_email(mail_shop, smtp, lane):
    lane.cmd("set_customer", code=mail_shop.people["Mia"]["code"])
    lane.scan("2000000000015")
    ticket = lane.cmd("close")["ticket"]
    [message] = wait_until(lambda: smtp.to("mia@example.com"), 10, message="Mia's receipt e-mail")
    assert ticket in message["Subject"] and ticket in message.get_body(("plain",)).get_content()
    assert "0.95" in message.get_body(("plain",)).get_content()
    assert outbox_row(mail_shop, ticket)["recipient"] == "mia@example.com"
    assert_no_print_job(lane)


def test_a_no_paper_customer_without_an_address_gets_paper_and_a_notice(mail_shop, lane):
    lane.cmd("set_customer", code=mail_shop.people["Nora"]["code"])
    lane.scan("8410000000011")
    state = lane.cmd("close")
    assert "email_no_address" in {w["code"] for w in state["warnings"]}
    job = lane.jobs.get(timeout=10)
    assert job["receipt"]["ticket"] == state["ticket"]
    assert outbox_row(mail_shop, state["ticket"]) is None
    error_saying(lane, f"receipt {state['ticket']}: an e-mail receipt was asked for, but there is no e-mail address")


def test_an_smtp_outage_keeps_the_message_queued_and_it_is_sent_once_when_back(mail_shop, smtp, lane):
    smtp.stop()
    try:
        lane.scan("8410000000011")
        ticket = lane.cmd("close", email="olga@example.com")["ticket"]
        row = wait_until(lambda: (r := outbox_row(mail_shop, ticket)) and r["attempts"] >= 2 and r, 10,
                         message="two failed attempts")
        assert row["status"] == "queued" and "Connection refused" in row["last_error"] and row["sent_at"] is None
        error_saying(lane, f"e-mail receipts wait: mail server smtp://127.0.0.1:{smtp.port}")
    finally:
        smtp.start()
    wait_until(lambda: smtp.to("olga@example.com"), 10, message="the receipt once the server is back")
    time.sleep(5 * RETRY)
    assert len(smtp.to("olga@example.com")) == 1
    row = outbox_row(mail_shop, ticket)
    assert row["status"] == "sent" and row["attempts"] >= 3 and row["last_error"] == ""


def test_a_permanent_refusal_is_failed_with_the_servers_answer_and_can_be_retried(mail_shop, smtp, lane):
    smtp.mailbox.refuse.add("nobody@example.com")
    lane.scan("8410000000011")
    ticket = lane.cmd("close", email="nobody@example.com")["ticket"]
    row = wait_until(lambda: (r := outbox_row(mail_shop, ticket)) and r["status"] == "failed" and r, 10,
                     message="the message failed")
    assert row["last_error"] == "550 5.1.1 <nobody@example.com>: no such mailbox here" and row["attempts"] == 1
    time.sleep(5 * RETRY)
    assert outbox_row(mail_shop, ticket)["attempts"] == 1  # failed for good: not tried again
    assert smtp.to("nobody@example.com") == []
    error_saying(lane, f"receipt {ticket} e-mail to nobody@example.com refused: 550 5.1.1")

    # The store page's view and its "retry" (the mailbox exists now).
    smtp.mailbox.refuse.discard("nobody@example.com")
    conn = connect(edge_db(mail_shop, "S001"))
    try:
        outbox = MailOutbox(conn)
        [status] = [m for m in outbox.recent(50) if m.ticket == ticket]
        assert isinstance(status, MailStatus) and (status.status, status.recipient) == ("failed", "nobody@example.com")
        assert "no such mailbox" in status.last_error
        assert outbox.retry(status.id)
        wait_until(lambda: smtp.to("nobody@example.com"), 10, message="the retried message")
        # The server has it; the outbox records "sent" in its own commit just after.
        wait_until(lambda: outbox.get(status.id).status == "sent", 10, message="the retried message marked sent")
        assert not outbox.retry(status.id)  # a sent message is not sent again
    finally:
        conn.close()
    time.sleep(5 * RETRY)
    assert len(smtp.to("nobody@example.com")) == 1


# --- without [mail] ------------------------------------------------------------------------------


def restart_edge(chain: Chain, store: str, sections: dict[str, dict]) -> None:
    """Restart the edge with changed edge.toml sections; back when it says it runs."""
    edge = chain.edges[store]
    for section, values in sections.items():
        edge.config[section] = edge.config.get(section, {}) | values
    runs = edge.tail(10**6).count(f"edge {store} running")
    edge.stop()
    edge.start()
    wait_until(lambda: edge.tail(10**6).count(f"edge {store} running") > runs, 30, 0.1, "the edge running again")


def test_without_mail_the_receipt_is_printed_or_kept_and_the_error_topic_says_so(make_chain, mqtt, smtp):
    chain = make_chain(stores=("S001",), store_settings={"S001": {"printer": "printer", "print_retry": 1.0}})
    stock(chain)
    wait_converged(chain)
    lane = Lane(mqtt(chain.store_brokers["S001"].port), "S001", "L1")

    # email_fallback = "print" (the default): printed like any receipt.
    lane.scan("8410000000011")
    state = lane.cmd("close", email="paul@example.com")
    assert "email_not_configured" in {w["code"] for w in state["warnings"]}
    job = lane.jobs.get(timeout=10)
    assert job["receipt"]["ticket"] == state["ticket"]
    report = error_saying(lane, "e-mail receipts are not configured")
    assert "printed" in report["reason"]
    assert outbox_row(chain, state["ticket"]) is None
    lane.scan("8410000000011")
    lane.cmd("close", email="paul@example.com")
    lane.jobs.get(timeout=10)
    with pytest.raises(AssertionError):  # once per process, not once per receipt
        error_saying(lane, "e-mail receipts are not configured", timeout=1.5)

    # email_fallback = "keep": no print job; the message waits in the outbox ...
    restart_edge(chain, "S001", {"store": {"email_fallback": "keep"}})
    lane.jobs = queue.Queue()  # resends of the printed ones (no bridge reports them printed)
    lane.scan("8410000000011")
    state = lane.cmd("close", email="kim@example.com")
    kept = state["ticket"]
    assert db_value(edge_db(chain, "S001"), "SELECT status FROM print_jobs WHERE ticket = ?", (kept,)) == "email"
    row = outbox_row(chain, kept)
    assert row["status"] == "queued" and "not configured" in row["last_error"]
    assert "kept unsent" in error_saying(lane, "e-mail receipts are not configured")["reason"]
    assert kept not in printed_tickets(lane, 2.5)

    # ... and goes out once [mail] is configured.
    restart_edge(chain, "S001", {"mail": mail_section(smtp)})
    [message] = wait_until(lambda: smtp.to("kim@example.com"), 15, message="the kept receipt e-mailed")
    assert kept in message["Subject"]
    # The message is handed to SMTP before its row is marked sent: wait for the mark.
    wait_until(lambda: outbox_row(chain, kept)["status"] == "sent", 10, message="the kept receipt marked sent")


# --- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mail, needle", [
    ('host = "smtp.example.com"\nfrom = "r@example.com"\nhots = "x"\n', "[mail] hots: unknown key"),
    ('host = "smtp.example.com"\nfrom = "r@example.com"\nsecurity = "ssl"\n', "[mail] security: must be one of"),
    ('host = "smtp.example.com"\n', "[mail] from: required when [mail] host is set"),
    ('host = "smtp.example.com"\nfrom = "receipts"\n', "[mail] from: must be an e-mail address"),
    ('host = "smtp.example.com"\nfrom = "r@example.com"\nretry = "soon"\n', "[mail] retry: expected a number"),
])
def test_a_bad_mail_config_stops_the_edge_with_one_line_naming_file_and_key(tmp_path, mail, needle):
    path = tmp_path / "edge.toml"
    path.write_text(f'[store]\nid = "S001"\ndb = "edge.db"\n[mail]\n{mail}')
    result = subprocess.run(lanehub_command("edge", "run", "-c", str(path)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert str(path) in line and needle in line
    assert not (tmp_path / "edge.db").exists()  # stopped before opening anything


# --- the sender on its own -------------------------------------------------------------------------


def test_the_sender_never_logs_the_password_and_gives_up_after_give_up_hours(tmp_path, smtp, caplog):
    """An SMTP server without AUTH, then no server at all: each attempt is
    recorded, the password appears nowhere, and an old message is given up on."""
    db = EdgeDatabase(tmp_path / "edge.db", "S001")
    outbox = MailOutbox(db.conn)
    receipt = {"store": {"id": "S001", "name": "Shop"}, "ticket": "S001-L1-1", "lane": "L1", "lines": [], "total": "0.00"}
    mail_id = outbox.queue("job-1", "S001-L1-1", "zoe@example.com", "Your receipt S001-L1-1 — Shop", receipt)
    alerts: list[tuple[str, str]] = []
    secret = "pa55-w0rd-never-logged"
    settings = MailSettings(host="127.0.0.1", port=smtp.port, security="none", user="store", password=secret,
                            sender=SENDER, timeout=2, retry=0, give_up_hours=1)
    assert secret not in repr(settings)
    sender = MailSender(str(tmp_path / "edge.db"), settings, lambda topic, reason: alerts.append((topic, reason)), "S001")
    sender._open()  # the worker's setup, on this thread
    try:
        with caplog.at_level(logging.DEBUG):
            assert sender.send_due() == 0  # the server offers no AUTH: the login fails, the message waits
            status = outbox.get(mail_id)
            assert (status.status, status.attempts) == ("queued", 1) and "AUTH" in status.last_error

            unused = free_port()  # nothing listens: the server is down
            sender.settings = MailSettings(host="127.0.0.1", port=unused, security="starttls", sender=SENDER,
                                           timeout=2, retry=0, give_up_hours=1)
            db.conn.execute("UPDATE mail_outbox SET created_at = created_at - 7200 WHERE id = ?", (mail_id,))
            assert sender.send_due() == 0
        status = outbox.get(mail_id)
        assert status.status == "failed" and status.attempts == 2
        assert status.last_error.startswith("gave up after 1 hours: ConnectionRefusedError")
        assert len(alerts) == 2 and all(secret not in reason for _, reason in alerts)
        assert secret not in caplog.text
        assert smtp.to("zoe@example.com") == []
    finally:
        sender._close()
        db.close()
