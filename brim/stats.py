"""Live counters in memory shared by every brimd process.

Only this module knows the shared-memory layout. The main process computes a
:class:`StatsLayout` from every subserver's built-in stats and its apps'
``stats_conf`` before it forks, then creates one :class:`SharedStats` (an
anonymous shared ``mmap``); every supervisor, worker and daemon inherits it.

Layout: one unsigned 64-bit cell per (subserver, bucket, stat), plus one for
the server's own ``start_time``. A bucket is a worker index (``"0"``,
``"1"``, ...) or a daemon name.

Invariants: each bucket is written by one process only (its worker or
daemon, or the supervisor setting ``start_time`` before the fork); an aligned
8-byte store is atomic on every platform brimd runs on, so readers never
lock and never block writers. Values wrap modulo 2**64.
"""

from __future__ import annotations

import mmap
import socket
import struct
import sys
from bisect import bisect_left
from typing import Any, Iterable, Sequence

#: Stat types, per-bucket only or rolled up over a subserver's buckets.
STAT_TYPES = ('worker', 'daemon', 'sum', 'min', 'max')
_MASK = (1 << 64) - 1
#: Cell values are taken modulo 2**64: ``value & MASK``.
MASK = _MASK

#: ``[(stat_name, stat_type)]`` as returned by an app's ``stats_conf``.
StatsConf = Sequence[tuple[str, str]]


#: Upper bounds, in seconds, of the request-duration histogram of every WSGI
#: worker; one more bucket, ``inf``, takes what is slower than the last.
DURATION_BOUNDS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The stat of each histogram bucket, in bound order, ``inf`` last:
#: ``request_duration_bucket_0.001`` ... ``request_duration_bucket_10``,
#: ``request_duration_bucket_inf``. Each counts the requests whose duration
#: ``d`` was more than the previous bound and at most its own (non-cumulative,
#: so one request writes one cell; :mod:`brim.metrics` makes them cumulative).
DURATION_BUCKETS: tuple[str, ...] = tuple('request_duration_bucket_%g' % bound for bound in DURATION_BOUNDS) + (
    'request_duration_bucket_inf',)
#: The sum of the durations counted in the histogram, in microseconds.
DURATION_SUM = 'request_duration_sum_us'


def duration_bucket(seconds: float) -> int:
    """Index in :data:`DURATION_BUCKETS` of a request that took ``seconds``
    (a duration equal to a bound goes to that bound's bucket, as Prometheus's
    ``le`` says)."""
    return bisect_left(DURATION_BOUNDS, seconds)


#: ``getsockopt(IPPROTO_TCP, TCP_INFO)`` where the kernel has it (Linux).
TCP_INFO = getattr(socket, 'TCP_INFO', None) if sys.platform.startswith('linux') else None
_TCP_LISTEN = 10  # tcpi_state of a listening socket (include/net/tcp_states.h)
_TCP_INFO_HEAD = struct.Struct('=B7x6I')  # 8 u8 fields; rto ato snd_mss rcv_mss unacked sacked


def accept_backlog(sock: Any) -> int:
    """Connections waiting in the accept queue of listening TCP socket ``sock``.

    Linux reports it in ``struct tcp_info`` of a listening socket:
    ``tcpi_unacked`` is the queue's length now (``tcpi_sacked`` its limit,
    the ``backlog`` option capped by ``net.core.somaxconn``). Elsewhere,
    or when the socket is closed or not listening, 0.
    """
    if TCP_INFO is None:
        return 0
    try:
        data = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, _TCP_INFO_HEAD.size)
    except (OSError, ValueError, AttributeError):
        return 0
    if len(data) < _TCP_INFO_HEAD.size:
        return 0
    state, _, _, _, _, unacked, _ = _TCP_INFO_HEAD.unpack_from(data)
    return unacked if state == _TCP_LISTEN else 0


class StatsLayout:
    """Where each (subserver, bucket, stat) cell lives.

    Args:
        subservers: ``[(subserver_name, [(bucket_name, stats_conf)])]`` in
            the order reported; a stat named twice in one bucket gets one cell
            (the first type wins).

    Raises:
        ValueError: for an unknown stat type.
    """

    def __init__(self, subservers: Iterable[tuple[str, Iterable[tuple[str, StatsConf]]]]) -> None:
        self.index: dict[tuple[str, str], dict[str, int]] = {}
        self.types: dict[str, dict[str, str]] = {}
        self.buckets: dict[str, list[str]] = {}
        cell = 1  # cell 0 is the server's start_time
        for subserver, buckets in subservers:
            self.buckets[subserver] = []
            types = self.types.setdefault(subserver, {})
            for bucket, stats in buckets:
                self.buckets[subserver].append(bucket)
                cells = self.index[(subserver, bucket)] = {}
                for name, stat_type in stats:
                    if stat_type not in STAT_TYPES:
                        raise ValueError('stat %r has type %r, not one of %s' % (name, stat_type, ' '.join(STAT_TYPES)))
                    if name not in cells:
                        cells[name] = cell
                        cell += 1
                        types.setdefault(name, stat_type)
        self.cells = cell

    def to_json(self) -> list:
        """The layout as JSON-able data; :meth:`from_json` rebuilds it."""
        out = []
        for subserver, buckets in self.buckets.items():
            rows = []
            for bucket in buckets:
                cells = self.index[(subserver, bucket)]
                rows.append([bucket, [[name, self.types[subserver][name]] for name in cells]])
            out.append([subserver, rows])
        return out

    @classmethod
    def from_json(cls, data: list) -> 'StatsLayout':
        """Rebuild a layout from :meth:`to_json` data (as the main process gets it from the probe)."""
        return cls((sub, [(bucket, [tuple(s) for s in stats]) for bucket, stats in buckets]) for sub, buckets in data)


class BucketStats:
    """The stats of one bucket: what apps get as ``stats``/``env['brim.stats']``.

    Values are unsigned 64-bit integers. Only the process owning the bucket
    may call :meth:`set` and :meth:`incr`.
    """

    __slots__ = ('_cells', '_index')

    def __init__(self, cells: memoryview, index: dict[str, int]) -> None:
        self._cells = cells
        self._index = index

    def same_cells(self, other: 'BucketStats') -> bool:
        """True if ``other`` reads and writes this bucket's cells."""
        return self._index is other._index and self._cells.obj is other._cells.obj

    def _cell(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError('stat %r is not declared (add it to stats_conf)' % name) from None

    @property
    def cells(self) -> memoryview:
        """The shared cells (unsigned 64-bit) that :meth:`cell` indexes: for
        code on the request path that writes a cell without a dict lookup
        (``cells[i] = (cells[i] + n) & 0xffffffffffffffff``)."""
        return self._cells

    def cell(self, name: str) -> int:
        """The index in :attr:`cells` of stat ``name``.

        Raises:
            KeyError: if ``name`` was not declared.
        """
        return self._cell(name)

    def has(self, name: str) -> bool:
        """True if stat ``name`` was declared in this bucket."""
        return name in self._index

    def get(self, name: str) -> int:
        """Return the value of stat ``name``.

        Raises:
            KeyError: if ``name`` was not declared.
        """
        return self._cells[self._cell(name)]

    def set(self, name: str, value: int) -> None:
        """Set stat ``name`` to ``value`` (taken modulo 2**64).

        Raises:
            KeyError: if ``name`` was not declared.
        """
        self._cells[self._cell(name)] = int(value) & _MASK

    def incr(self, name: str) -> None:
        """Add 1 to stat ``name``.

        Raises:
            KeyError: if ``name`` was not declared.
        """
        try:
            cell = self._index[name]
        except KeyError:
            raise KeyError('stat %r is not declared (add it to stats_conf)' % name) from None
        cells = self._cells
        cells[cell] = (cells[cell] + 1) & _MASK

    def add(self, name: str, amount: int) -> None:
        """Add ``amount`` to stat ``name`` (taken modulo 2**64): one call
        where ``set(name, get(name) + amount)`` takes two.

        Raises:
            KeyError: if ``name`` was not declared.
        """
        try:
            cell = self._index[name]
        except KeyError:
            raise KeyError('stat %r is not declared (add it to stats_conf)' % name) from None
        cells = self._cells
        cells[cell] = (cells[cell] + int(amount)) & _MASK


class SharedStats:
    """The shared cells of a :class:`StatsLayout`, created before fork.

    Raises:
        OSError: if the anonymous shared mapping cannot be created.
    """

    def __init__(self, layout: StatsLayout) -> None:
        self.layout = layout
        self._mmap = mmap.mmap(-1, 8 * layout.cells)
        self.cells = memoryview(self._mmap).cast('Q')

    @property
    def start_time(self) -> int:
        """When the server started serving, as integer Unix time (seconds); settable."""
        return self.cells[0]

    @start_time.setter
    def start_time(self, value: int) -> None:
        self.cells[0] = int(value)

    def bucket(self, subserver: str, bucket: str) -> BucketStats:
        """Return the :class:`BucketStats` of one worker or daemon.

        Raises:
            KeyError: for an unknown subserver or bucket.
        """
        return BucketStats(self.cells, self.layout.index[(subserver, bucket)])

    def snapshot(self) -> dict:
        """Read every cell into the JSON shape of SPEC §5.

        Returns:
            ``{"start_time": int, subserver: {rolled-up stat: int, ...,
            bucket: {stat: int}}}``: ``sum``/``min``/``max`` stats rolled up
            over the buckets that have them; zeros reported.
        """
        out: dict = {'start_time': self.cells[0]}
        cells = self.cells
        for subserver, buckets in self.layout.buckets.items():
            types = self.layout.types[subserver]
            per_bucket: dict = {}
            rolled: dict[str, list[int]] = {}
            for bucket in buckets:
                values = {name: cells[i] for name, i in self.layout.index[(subserver, bucket)].items()}
                per_bucket[bucket] = values
                for name, value in values.items():
                    if types[name] in ('sum', 'min', 'max'):
                        rolled.setdefault(name, []).append(value)
            entry: dict = {}
            for name, seen in rolled.items():
                kind = types[name]
                entry[name] = sum(seen) if kind == 'sum' else min(seen) if kind == 'min' else max(seen)
            entry.update(per_bucket)
            out[subserver] = entry
        return out
