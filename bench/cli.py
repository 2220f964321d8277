"""`lanehub bench ...`: benchmarks (not tests); figures go to docs/benchmarks.md."""

import click


@click.group()
def bench():
    """Measure sync speed on this machine."""
