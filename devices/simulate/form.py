"""The device simulator's HTTP form (`lanehub devices simulate --http-port N`):
the lanes with their simulated devices, a scan box and a card box per lane,
the printer's mode, and the last receipts as pictures.

Why it is safe enough to leave running: it listens on loopback by default;
a request must name a loopback Host (a DNS-rebinding page cannot reach it
under another name); every POST carries the run's random form token (a page
on another site cannot read it, so it cannot forge a scan); all output is
escaped; pictures are served only by their exact file names from the
receipts directory.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import logging
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from devices.simulate.simulator import PRINTER_MODES, Simulator

log = logging.getLogger(__name__)

MAX_FORM = 16 * 1024
RECEIPT_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,160}\.(png|txt)$")
SHOWN_RECEIPTS = 6
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STYLE = """body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}
.receipts{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.receipts figure{margin:0}.receipts img{border:1px solid #999;max-width:320px}
.off{color:#a00}.on{color:#070}"""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SimulatorForm:
    """The form's HTTP server on ``host:port`` (port 0: any free port), in a thread."""

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0):
        self.simulator = simulator
        self.token = secrets.token_urlsafe(24)  # per run: a reload of the page gets it, another site cannot
        form = self

        class Handler(_Handler):
            owner = form

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        self.loopback = _is_loopback(host)
        # What the last post did, shown once on the page it redirects to (kept here,
        # not in the URL, so no link can put words on the page).
        self.message = ""
        self.thread = threading.Thread(target=self.server.serve_forever, name="simulator-form", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> "SimulatorForm":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def host_allowed(self, header: str | None) -> bool:
        """Bound to loopback: only a loopback name for this port (no DNS rebinding)."""
        if not self.loopback:
            return True
        if not header:
            return False
        name, _, port = header.rpartition(":")
        if not name or port != str(self.port):
            return False
        return _is_loopback(name)

    # --- the page ---------------------------------------------------------------------------

    def page(self, message: str = "") -> str:
        sim, e = self.simulator, html.escape
        rows = "".join(self._lane_row(lane_id, lane) for lane_id, lane in sim.lanes.items())
        receipts = "".join(
            f'<figure><a href="/receipts/{e(r.txt.name)}"><img src="/receipts/{e(r.png.name)}" '
            f'alt="receipt {e(r.ticket)}"></a><figcaption>{e(r.ticket)} ({_clock(r.at)})</figcaption></figure>'
            for r in sim.printed()[:SHOWN_RECEIPTS]) or "<p>No receipt printed yet.</p>"
        events = "".join(f"<li>{_clock(at)} {e(text)}</li>" for at, text in sim.events()[:15])
        notice = f"<p><strong>{e(message)}</strong></p>" if message else ""
        return (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>lanehub device simulator: {e(sim.store)}</title><style>{STYLE}</style></head><body>"
            f"<h1>Simulated lane devices, store {e(sim.store)}</h1>{notice}"
            f"<table><tr><th>Lane</th><th>Devices</th><th>Scanner</th><th>Card reader</th><th>Printer</th></tr>"
            f'{rows}</table><p><a href="/">Reload</a> · receipts are written to {e(str(sim.out))}</p>'
            f'<h2>Last receipts</h2><div class="receipts">{receipts}</div>'
            f"<h2>Last events</h2><ul>{events}</ul></body></html>")

    def _lane_row(self, lane_id: str, lane) -> str:
        e = html.escape
        states = "<br>".join(f"{e(bridge.link.device)} {_state(bridge.link)}" for bridge in lane.bridges)
        modes = "".join(f'<option value="{e(m)}"{" selected" if m == lane.paper.mode else ""}>{e(m)}</option>'
                        for m in PRINTER_MODES)
        select = f'<select name="mode" aria-label="printer mode on {e(lane_id)}">{modes}</select>'
        return (f"<tr><th>{e(lane_id)}</th><td>{states}</td>"
                f"<td>{self._form('/scan', lane_id, _box('code', f'barcode on {lane_id}'), 'Scan')}</td>"
                f"<td>{self._form('/card', lane_id, _box('card', f'card on {lane_id}'), 'Read card')}</td>"
                f"<td>{self._form('/printer', lane_id, select, 'Set')}</td></tr>")

    def _form(self, action: str, lane_id: str, field: str, button: str) -> str:
        """A POST form for one lane, with the run's token."""
        e = html.escape
        return (f'<form method="post" action="{action}"><input type="hidden" name="token" value="{e(self.token)}">'
                f'<input type="hidden" name="lane" value="{e(lane_id)}">{field} <button>{e(button)}</button></form>')

    def post(self, path: str, form: dict[str, str]) -> str:
        """Carry out a posted form; the message to show. Raises ValueError for a bad one."""
        lane = form.get("lane", "")
        if path == "/scan":
            code = form.get("code", "").strip()
            if not code:
                raise ValueError("type a barcode to scan")
            self.simulator.scan(lane, code)
            return f"{lane}: scanned {code}"
        if path == "/card":
            number = form.get("card", "").strip()
            if not number:
                raise ValueError("type a card number")
            self.simulator.card(lane, number)
            return f"{lane}: card read"
        if path == "/printer":
            self.simulator.set_printer_mode(lane, form.get("mode", ""))
            return f"{lane}: printer {form.get('mode')}"
        raise LookupError(path)


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def _box(name: str, label: str) -> str:
    return f'<input name="{name}" size="16" autocomplete="off" aria-label="{html.escape(label)}">'


def _state(link) -> str:
    """A device's state as its retained status says it: online/offline and the detail."""
    state = "online" if link.online else "offline"
    detail = f" {link.detail}" if link.detail else ""
    return f'<span class="{"on" if link.online else "off"}">{state}{html.escape(detail)}</span>'


class _Handler(BaseHTTPRequestHandler):
    owner: SimulatorForm
    server_version = "lanehub-simulator"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's name)
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (HEADERS | {"Content-Type": content_type, "Content-Length": str(len(body))}
                            | (extra or {})).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, status: int, reason: str) -> None:
        self._send(status, f"{reason}\n".encode())

    def do_GET(self):  # noqa: N802 (http.server's name)
        if not self.owner.host_allowed(self.headers.get("Host")):
            return self._refuse(421, "refused: use http://127.0.0.1 or http://localhost")
        path = self.path.split("?", 1)[0]
        if path == "/":
            message, self.owner.message = self.owner.message, ""
            return self._send(200, self.owner.page(message).encode(), "text/html; charset=utf-8")
        if path.startswith("/receipts/"):
            return self._receipt(path.removeprefix("/receipts/"))
        self._refuse(404, "not found")

    do_HEAD = do_GET

    def _receipt(self, name: str) -> None:
        if not RECEIPT_FILE.match(name):
            return self._refuse(404, "not found")
        path = self.owner.simulator.out / name
        try:
            data = path.read_bytes()
        except OSError:
            return self._refuse(404, "not found")
        kind = "image/png" if name.endswith(".png") else "text/plain; charset=utf-8"
        self._send(200, data, kind)

    def do_POST(self):  # noqa: N802
        if not self.owner.host_allowed(self.headers.get("Host")):
            return self._refuse(421, "refused: use http://127.0.0.1 or http://localhost")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self._refuse(400, "bad Content-Length")
        if not 0 <= length <= MAX_FORM:
            return self._refuse(413, "form too large")
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        if not hmac.compare_digest(form.get("token", "").encode(), self.owner.token.encode()):
            return self._refuse(403, "refused: missing or wrong form token (reload the page)")
        try:
            message = self.owner.post(self.path.split("?", 1)[0], form)
        except LookupError:
            return self._refuse(404, "not found")
        except ValueError as exc:
            message = f"error: {exc}"
        self.owner.message = message
        self._send(303, b"", extra={"Location": "/"})
