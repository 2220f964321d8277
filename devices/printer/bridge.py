"""The receipt printer bridge: ``printer/{device}/job`` in, paper out,
``printer/{device}/result`` back (docs/protocol.md).

A job is spooled on disk before anything else happens and removed only
after it printed, so a receipt survives an offline printer, an empty paper
roll and a SIGKILL of the bridge. A job id already spooled or printed is not
printed again (QoS 1 redelivers). The printer's status comes from lanehub's
own DLE EOT queries: no answer is ``unknown``, never ``ok``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from devices.link import DeviceLink
from devices.printer.io import FilePrinter, NetworkPrinter, SerialPrinter
from devices.printer.receipt import render_receipt
from devices.printer.spool import Spool
from devices.profiles import DeviceProfile
from lanehub.protocol import topics
from lanehub.protocol.envelope import PayloadError
from lanehub.protocol.lane import PrintJob, PrintResult
from lanehub.runtime.mqtt import Incoming
from lanehub.runtime.report import publish_report

log = logging.getLogger(__name__)

CANNOT_PRINT = {"paper_out", "cover_open", "offline"}
STATUS_EVERY = 10.0  # seconds between status checks of an idle printer ([devices] status_every)


def printer_for(profile: DeviceProfile, path: str, host: str, port: int):
    if profile.connection == "network":
        return NetworkPrinter(host, port or profile.network_port)
    if profile.connection == "serial":
        return SerialPrinter(path, profile.baudrate, profile.bytesize, profile.parity, profile.stopbits, profile.rtscts)
    # "usb": the kernel's usblp character device (/dev/usb/lp0, linked as /dev/lanehub/<profile>); "file".
    return FilePrinter(path)


class PrinterBridge:
    def __init__(self, link: DeviceLink, profile: DeviceProfile, printer, spool_dir: Path, retry: float,
                 status_every: float = STATUS_EVERY):
        self.link, self.profile, self.printer, self.retry = link, profile, printer, retry
        self.status_every = status_every
        self.spool = Spool(spool_dir)
        self._wake = threading.Event()
        self._told: dict[str, str] = {}  # job -> the state last reported for it
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"printer-{link.device}", daemon=True)
        self.job_topic = topics.printer_job(link.store, link.lane, link.device)
        self.result_topic = topics.printer_result(link.store, link.lane, link.device)

    def start(self) -> "PrinterBridge":
        self.link.client.subscribe(self.job_topic, self._on_job)
        self.link.start()
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.thread.join(10)
        self.link.stop()

    def look_now(self) -> None:
        """Check the printer and print what is pending now, not at the next retry."""
        self._wake.set()

    def _on_job(self, msg: Incoming) -> None:
        """paho's thread: spool (durable) and wake the printing thread; nothing slow."""
        try:
            job = PrintJob.parse(msg.payload)
            if not job.receipt:
                raise PayloadError("print job: empty 'receipt'")
            added = self.spool.add(job.job, job.receipt)
        except (PayloadError, ValueError) as exc:
            publish_report(self.link.client, self.link.store, msg.topic, str(exc), msg.payload, log)
            return
        if not added and self.spool.printed(job.job):
            # Printed before: the edge did not hear about it, so say it again.
            self._result(job.job, True, None, self.link.detail or "ok")
        self._wake.set()

    def _result(self, job: str, ok: bool, error: str | None, status: str) -> None:
        self.link.client.publish(self.result_topic, PrintResult(job=job, ok=ok, error=error, status=status).to_json())

    def _run(self) -> None:
        while not self._stop.is_set():
            status = self._refresh_status()
            pending = self.spool.pending()
            if pending:
                self._print_pending(pending, status)
            # Jobs left (the printer cannot print): try again after `retry`; otherwise
            # look at the printer every status_every seconds, or at once when a job comes.
            self._wake.wait(self.retry if self.spool.pending() else self.status_every)
            self._wake.clear()

    def _refresh_status(self) -> str:
        status = self.printer.status()
        self.link.set_state(status != "offline", "" if status == "ok" else status)
        return status

    def _print_pending(self, pending: list[tuple[str, dict]], status: str) -> None:
        if status in CANNOT_PRINT:
            for job, _ in pending:
                if self._told.get(job) != status:  # once per job and state, not every retry
                    self._told[job] = status
                    self._result(job, False, f"printer {status.replace('_', ' ')}", status)
            return
        for job, receipt in pending:
            try:
                data = render_receipt(receipt, width=self.profile.columns, codepage=self.profile.codepage,
                                      profile=self.profile.escpos_profile)
            except Exception as exc:  # a receipt that cannot be rendered must not block the others
                log.exception("%s: job %s cannot be rendered", self.link.device, job)
                self.spool.done(job)
                self._result(job, False, f"receipt cannot be rendered: {exc}", status)
                continue
            try:
                self.printer.print_bytes(data)
            except OSError as exc:
                log.warning("%s: job %s not printed: %s", self.link.device, job, exc)
                self.link.set_state(False, "offline")
                if self._told.get(job) != "offline":
                    self._told[job] = "offline"
                    self._result(job, False, f"printer unreachable: {exc}", "offline")
                return
            self.spool.done(job)
            self._told.pop(job, None)
            self._result(job, True, None, status)
            log.info("%s: printed job %s", self.link.device, job)
