"""A lane's ticket as a lane client holds it (docs/protocol.md §18, decisions D48):
the whole state from ``ticket/state`` (retained), then each ``ticket/change``
applied on top, in ``seq`` order.

The rules, in full:

- a full state replaces whatever is held (it is the edge's word);
- a change whose ``seq`` follows the held one applies: its small fields replace
  the held ones, its ``removed`` lines go, its ``lines`` replace or join theirs;
  one at or below the held ``seq`` is held already (QoS 1 redelivers);
- a change for another ticket than the held one applies to an empty ticket (a
  new ticket starts empty), whatever its ``seq``, when its lines are then all the
  ticket's (``line_count``): so a client that starts, or missed changes, is in step
  again at the next ticket;
- any other change is not applied (``behind``) until the next full state, which
  the edge publishes within about a second of a lane's last change.

Holding costs the client per change what the change carries, not the ticket's
size: the lines stay in a dict and a ``TicketState`` is built only when asked for.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lanehub.protocol.lane import TicketChange, TicketLine, TicketState

# The fields a state and a change both carry whole.
_SHARED = tuple(f.name for f in dataclasses.fields(TicketState) if f.name not in ("lines", "seq"))


class TicketView:
    """One lane's ticket, from its full states and changes (not thread-safe: callers lock)."""

    def __init__(self) -> None:
        self._fields: dict[str, Any] | None = None  # the shared fields of the last state or change applied
        self._lines: dict[int, TicketLine] = {}  # by line number, in line order
        self.seq = 0
        self.behind = False  # a change could not be applied: waiting for a full state
        self._built: TicketState | None = None

    def full(self, state: TicketState) -> None:
        self._fields = {name: getattr(state, name) for name in _SHARED}
        self._lines = {line.line: line for line in state.lines}
        self.seq, self.behind, self._built = state.seq, False, state

    def change(self, change: TicketChange) -> bool:
        """Apply ``change``; False when it cannot be (the view is then ``behind``)."""
        held = self._fields["ticket"] if self._fields is not None else None
        if self._fields is not None and change.ticket == held and change.seq <= self.seq:
            return not self.behind  # held already (a redelivery, or one a full state included)
        if self._fields is not None and change.ticket == held and change.seq == self.seq + 1 and not self.behind:
            lines = self._lines
        elif self._fields is None or change.ticket != held or change.ticket is None:
            lines = {}  # another ticket (or none): it starts empty
        else:
            self.behind = True
            return False
        for number in change.removed:
            lines.pop(number, None)
        for line in change.lines:
            lines[line.line] = line
        if len(lines) != change.line_count:  # changes of this ticket were missed
            self.behind = True
            return False
        self._fields = {name: getattr(change, name) for name in _SHARED}
        self._lines, self.seq, self.behind, self._built = lines, change.seq, False, None
        return True

    def state(self) -> TicketState | None:
        """The ticket as held, None before anything arrived."""
        if self._fields is None:
            return None
        if self._built is None:
            self._built = TicketState(**self._fields, lines=tuple(self._lines.values()), seq=self.seq)
        return self._built
