"""The one way a bad message (or a problem a person must act on) is reported.

Every site publishes the same ``ErrorReport`` on its error topic
(``lanehub/{store}/error``, ``lanehub/hq/error``): the topic it is about, a
one-line reason and the start of the payload, payment card numbers masked in
both (docs/protocol.md, "Errors"). It is logged as a warning too, so a box
without a listener on the error topic still says it in its journal.
"""

from __future__ import annotations

import logging

from lanehub.domain.payment_cards import redact
from lanehub.protocol import topics
from lanehub.protocol.envelope import excerpt
from lanehub.protocol.lane import ErrorReport

MAX_REPORT_REASON = 1000  # characters: an exception's text can be long, a report stays one readable line


def one_line(reason: str, limit: int = MAX_REPORT_REASON) -> str:
    """``reason`` on one line, cut at ``limit`` characters."""
    reason = " ".join(str(reason).split())
    return reason if len(reason) <= limit else reason[:limit - 1] + "…"


def error_report(topic: str, reason: str, payload: bytes | str = b"") -> ErrorReport:
    """The report about ``topic``: a reason may quote the payload (an unknown op...),
    so it is masked like the excerpt."""
    return ErrorReport(topic=topic, reason=redact(one_line(reason)), payload_excerpt=excerpt(payload) if payload else "")


def publish_report(client, site: str, topic: str, reason: str, payload: bytes | str = b"",
                   logger: logging.Logger | None = None) -> ErrorReport:
    """Log and publish a report on ``site``'s error topic (a store id, or "hq");
    ``client`` is the site's ``MqttClient``. Returns the report."""
    report = error_report(topic, reason, payload)
    (logger or logging.getLogger(__name__)).warning("bad message on %s: %s", topic, report.reason)
    client.publish(topics.error(site), report.to_json())
    return report
