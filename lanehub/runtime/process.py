"""Running a service in the foreground until it is told to stop."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from lanehub.domain.payment_cards import RedactingFilter


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,  # python-escpos calls basicConfig() when imported: ours wins whatever came first
    )
    for handler in logging.getLogger().handlers:  # on the handler: records of every logger pass it
        handler.addFilter(RedactingFilter())  # no payment card number in a log line (lanehub.domain.payment_cards)


def run_until_signalled(service) -> None:
    """Run a started service until SIGTERM/SIGINT, then stop it cleanly."""
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(1):
        pass
    service.stop()
