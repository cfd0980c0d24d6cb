"""The event time a stream has reached (its watermark), robust to wrong clocks.

A stream's watermark is the ``rank``-th newest of its last ``2 * rank - 1`` event times,
taken in the stream's own order (the median of a full window), and it never goes back;
minus infinity until ``rank`` events have come. Events stamped ahead by a wrong clock (a
model server whose clock is 15 minutes fast, a producer that stamps with another time
zone) move it only when they are at least half of a window: the newest time alone, or a
fixed rank among all the times seen, were moved for good by a few such events, and every
event stamped right was then taken for late. The price is a lag of about ``rank`` events
behind the newest time: what waits is released that much later, never earlier.

It depends on the stream's events and their order alone, not on their batching nor on
what was read of another stream.

>>> clock = Watermark(rank=3)
>>> [clock.see(t) for t in (10.0, 11.0, 12.0)], clock.value      # the 3rd newest of 10, 11, 12
([False, False, True], 10.0)
>>> clock.see(900.0), clock.see(13.0), clock.value             # one stamped far ahead: passed over
(True, True, 12.0)
>>> clock.see(901.0), clock.see(902.0), clock.value            # three of the last five ahead: it moves
(True, True, 900.0)
"""

from __future__ import annotations

import bisect
from array import array

#: The rank a partition's join uses: its watermarks ignore fewer than 64 events stamped
#: ahead among any 127 in a row (a fast server whose events are interleaved with the
#: others'; not one that sends 64 or more in a row).
RANK = 64
_NEVER = float("-inf")


class Watermark:
    """One stream's watermark (``value``, epoch seconds): see the module. Picklable."""

    __slots__ = ("rank", "value", "_recent", "_ordered")

    def __init__(self, rank: int = RANK, times: list | None = None, value: float = _NEVER):
        if rank < 1:
            raise ValueError(f"rank must be 1 or more, got {rank!r}")
        self.rank = rank
        self.value = value
        # Arrays of doubles, not lists of float objects: a third of the memory, for a model
        # of a thousand in one process.
        self._recent = array("d")  # the last 2 * rank - 1 times, in the stream's order
        self._ordered = array("d")  # the same, sorted
        for ts in times or ():
            self.see(ts)

    def see(self, ts: float) -> bool:
        """Take the stream's next event time (epoch seconds); True if the watermark moved."""
        ordered = self._window(ts)
        if len(ordered) >= self.rank and ordered[-self.rank] > self.value:
            self.value = ordered[-self.rank]
            return True
        return False

    def last(self, n: int) -> tuple[float, list]:
        """(``value``, the last ``n`` times seen, at most a window of them): what
        :meth:`advance` takes to bring a copy of this watermark from ``n`` events ago up
        to date (a changelog's record, in size proportional to the events since)."""
        recent = self._recent
        return self.value, recent[len(recent) - min(n, len(recent)):].tolist()

    def advance(self, value: float, times: list) -> None:
        """Take ``times`` (see :meth:`last`) as seen, and ``value`` as the watermark."""
        for ts in times:
            self._window(ts)
        self.value = value

    def _window(self, ts: float) -> array:
        """Put ``ts`` in the window (the oldest out of a full one); the window, sorted."""
        recent, ordered = self._recent, self._ordered
        if len(recent) == 2 * self.rank - 1:
            del ordered[bisect.bisect_left(ordered, recent.pop(0))]
        recent.append(ts)
        bisect.insort(ordered, ts)
        return ordered

    def __getstate__(self):
        return self.rank, self.value, self._recent.tolist()

    def __setstate__(self, state) -> None:
        rank, value, times = state
        self.__init__(rank)
        self.advance(value, times)

    def __eq__(self, other) -> bool:
        return isinstance(other, Watermark) and self.__getstate__() == other.__getstate__()

    def __repr__(self) -> str:
        return f"Watermark(rank={self.rank}, value={self.value!r}, seen={len(self._recent)})"
