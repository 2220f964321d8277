"""What asking HQ can end in, beside an answer (edge.hq_link, edge.snapshot)."""


class HQUnavailable(Exception):
    pass


class HQRefused(HQUnavailable):
    """HQ answered, and said no (the reason is the message)."""
