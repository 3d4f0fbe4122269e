"""brimd's live stats in the Prometheus text exposition format, version 0.0.4.

Pure: :class:`Exposition` turns a :class:`~brim.stats.StatsLayout` and the
values of its cells (:attr:`brim.stats.SharedStats.cells`) into the text;
no I/O. :class:`brim.wsgi_stats.WSGIStats` serves it.

Naming. Each stat becomes one metric family, whatever subservers have it:

* ``brim_<stat>``, one series per worker or daemon (a *bucket*), labelled
  ``subserver`` and ``worker="0"``, ``"1"``... or, in the ``[daemons]``
  subserver, ``daemon="<name>"``;
* ``brim_subserver_<stat>``, the roll-up of the ``sum``, ``min`` and ``max``
  stats over each subserver's buckets, as ``/stats`` reports it, labelled
  ``subserver`` only.

The roll-ups are separate families, so neither ``sum(brim_x_total)`` nor
``sum(brim_subserver_x_total)`` counts anything twice (PromQL's
``sum by (subserver) (brim_x_total)`` gives the roll-up too).
``brim_server_start_time`` (no labels) is the server's own ``start_time``.

The request-duration histogram of each WSGI worker (the stats
``request_duration_bucket_<le>``, non-cumulative counts, and
``request_duration_sum_us``, see :data:`brim.stats.DURATION_BUCKETS`) is
one family of type ``histogram``, ``brim_request_duration_seconds``: per
worker, ``_bucket`` series with an ``le`` label (made cumulative here, up to
``+Inf``), ``_sum`` in seconds and ``_count`` (the ``+Inf`` bucket), and
the roll-up ``brim_subserver_request_duration_seconds`` summing each
subserver's workers. Those stats have no family of their own.

Counters end in ``_total``, as Prometheus's conventions (and ``promtool
check metrics``) ask: ``request_count`` is ``brim_request_count_total``;
gauges do not. Counters: ``request_count``, ``status_*_count``,
``connection_count``, ``datagram_count``, ``restart_count`` and
``recycle_count``, ``bytes_in`` and ``bytes_out``, and every app stat of
type ``sum``. Gauges: ``start_time`` (Unix seconds), ``pid``,
``last_exit``, ``backoff`` (seconds), ``open_connections``,
``free_slots``, ``in_flight``, ``accept_backlog``, and app stats of type
``worker``, ``daemon``, ``min`` and ``max``.

Sanitizing: a stat name becomes snake case (``_`` between a lower-case
letter or digit and an upper-case letter), lower case, and every character
outside ``[a-z0-9_]`` becomes ``_``: ``auth.requests`` is
``brim_auth_requests_total``, ``cacheHits`` ``brim_cache_hits``. Names
never contain ``:`` (reserved for recording rules).

Collisions: when two families would get the same name (``auth.requests``
and ``auth_requests``; a stat that is a counter in one subserver and a
gauge in another; a bucket stat named ``subserver_x`` and the roll-up of
``x``), compared without the ``_total`` suffix so that the names stay
distinct in OpenMetrics too, the name goes to the first of them in this
order: the server's start time, bucket families before roll-ups, stat
names that needed no sanitizing before those that did, then by stat name
and type. Each other one gets ``_`` and the first 8 hex digits of a SHA-1
of its stat name, type and kind appended (before ``_total``), say
``brim_auth_requests_5f41f96d_total``: stable, whatever else the server
counts. Every family's ``# HELP`` names its stat as ``/stats`` does.

``promtool check metrics`` passes with brim's own stats and apps; an app
stat's name is kept as far as it can be, so one named like ``queue_count``
(a gauge ending in ``_count``) or ``wait_ms`` draws promtool's naming lint.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any, Sequence

from brim.stats import DURATION_BOUNDS, DURATION_BUCKETS, DURATION_SUM

if TYPE_CHECKING:
    from brim.stats import StatsLayout

#: The Content-Type of the text exposition format 0.0.4.
CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
#: Prefix of every metric name; :data:`ROLLUP_PREFIX` of the roll-ups.
PREFIX = 'brim_'
ROLLUP_PREFIX = 'brim_subserver_'
#: The family of the server's own start time.
SERVER_START_TIME = 'brim_server_start_time'
#: The name of the daemons subserver, whose buckets are labelled ``daemon``.
DAEMONS = 'daemons'

#: Built-in stats: ``{stat: (Prometheus type, HELP sentence)}``
#: (``status_<code>_count`` and ``status_<n>xx_count`` are matched apart).
BUILTIN: dict[str, tuple[str, str]] = {
    'start_time': ('gauge', 'When the worker or daemon last started serving, Unix time in seconds (0 until then).'),
    'pid': ('gauge', 'Process id of the worker or daemon (0 while none runs).'),
    'restart_count': ('counter', 'Unplanned restarts of the worker or daemon (it exited or died).'),
    'last_exit': ('gauge', 'Last exit status of the worker or daemon (128 + N for signal N).'),
    'backoff': ('gauge', 'Seconds until a crash-looping worker or daemon is started again (0 when not backing off).'),
    'recycle_count': ('counter', 'Workers retired by max_requests, max_lifetime or max_rss.'),
    'open_connections': ('gauge', 'Connections the worker has open now.'),
    'request_count': ('counter', 'HTTP requests answered.'),
    'connection_count': ('counter', 'TCP connections handled.'),
    'datagram_count': ('counter', 'UDP datagrams handled.'),
    'in_flight': ('gauge', 'HTTP requests being handled now: the green threads busy with a request.'),
    'free_slots': ('gauge', 'Connections the worker can still take: concurrent_per_worker minus open connections.'),
    'bytes_in': ('counter', 'Bytes received from clients.'),
    'bytes_out': ('counter', 'Bytes sent to clients.'),
    'accept_backlog': ('gauge', 'Connections waiting in the listening socket\'s accept queue, sampled about '
                                'every second (Linux only; 0 elsewhere).'),
}
#: The histogram family's name (after the prefix), made of the stats
#: :data:`brim.stats.DURATION_BUCKETS` and :data:`brim.stats.DURATION_SUM`.
HISTOGRAM = 'request_duration_seconds'
_HISTOGRAM_HELP = ('Seconds from the start of an HTTP request in the pipeline to its response closed. '
                   'Stats "request_duration_bucket_<le>" (non-cumulative counts) and "request_duration_sum_us" '
                   '(microseconds), %s.')
_STATUS_CLASS = re.compile(r'status_([1-5])xx_count')
_STATUS_CODE = re.compile(r'status_([0-9]{3})_count')
_CAMEL = re.compile(r'(?<=[a-z0-9])(?=[A-Z])')
_INVALID = re.compile(r'[^a-z0-9_]')
_ROLLUP_HELP = {'sum': 'summed', 'min': 'the lowest', 'max': 'the highest'}


def builtin(stat: str) -> tuple[str, str] | None:
    """``(Prometheus type, HELP sentence)`` of a built-in stat, else None."""
    if stat in BUILTIN:
        return BUILTIN[stat]
    match = _STATUS_CLASS.fullmatch(stat)
    if match:
        return 'counter', 'HTTP responses with a %sxx status.' % match.group(1)
    match = _STATUS_CODE.fullmatch(stat)
    if match:
        return 'counter', 'HTTP responses with status %s.' % match.group(1)
    return None


def metric_type(stat: str, stat_type: str) -> str:
    """``'counter'`` or ``'gauge'``: fixed for a built-in stat, else
    ``counter`` for an app stat of type ``sum``, ``gauge`` for the rest."""
    known = builtin(stat)
    if known:
        return known[0]
    return 'counter' if stat_type == 'sum' else 'gauge'


def sanitize(stat: str) -> str:
    """``stat`` as the part of a metric name after the prefix: snake case,
    lower case, ``[a-z0-9_]`` only (anything else becomes ``_``)."""
    return _INVALID.sub('_', _CAMEL.sub('_', stat).lower())


def escape_help(text: str) -> str:
    r"""``text`` escaped for a ``# HELP`` line (``\`` and line feed)."""
    return text.replace('\\', '\\\\').replace('\n', '\\n')


def escape_label(value: str) -> str:
    r"""``value`` escaped for a label value (``\``, ``"`` and line feed)."""
    return value.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    return '{%s}' % ','.join('%s="%s"' % (name, escape_label(value)) for name, value in pairs) if pairs else ''


class Family:
    """One metric family: its name, type, HELP and where its samples' values are.

    Attributes:
        name: The metric name (counters end in ``_total``).
        type: ``'counter'``, ``'gauge'`` or ``'histogram'``.
        stat: The stat's name in ``/stats`` (``''`` for the server's start time).
        rollup: True for a ``brim_subserver_`` family.
        help: The ``# HELP`` text (unescaped).
        samples: ``[(labels, cells, how)]``: label pairs, cell indexes, and
            ``'value'`` (one cell) or ``'sum'``/``'min'``/``'max'`` over the
            cells; for a histogram, ``cells`` holds one ``(bucket cells...,
            sum cell)`` tuple per worker summed, and ``how`` is ``'histogram'``.
    """

    def __init__(self, stat: str, prom_type: str, rollup: bool) -> None:
        self.stat = stat
        self.type = prom_type
        self.rollup = rollup
        self.name = ''
        self.help = ''
        self.stat_types: list[str] = []
        self.samples: list[tuple[tuple[tuple[str, str], ...], tuple[Any, ...], str]] = []

    def wanted_name(self, suffix: str = '') -> str:
        """The name this family asks for, with ``suffix`` (for collisions) before ``_total``."""
        name = (ROLLUP_PREFIX if self.rollup else PREFIX) + sanitize(self.stat) + suffix
        return name + '_total' if self.type == 'counter' else name

    def describe(self) -> str:
        """The HELP text: what the stat is, its name in ``/stats``, and how it is split or rolled up."""
        known = builtin(self.stat)
        what = known[1] if known else 'App stat (type %s).' % ', '.join(self.stat_types)
        if self.rollup:
            hows = sorted({how for _, _, how in self.samples})
            return '%s Stat "%s", %s over each subserver\'s workers or daemons.' % (
                what, self.stat, ' or '.join(_ROLLUP_HELP[how] for how in hows))
        return '%s Stat "%s", per worker or daemon.' % (what, self.stat)


class Exposition:
    """The metric families of one :class:`~brim.stats.StatsLayout`, worked
    out once; :meth:`render` reads the values each time.

    Args:
        layout: The layout of the server's :class:`~brim.stats.SharedStats`.
    """

    def __init__(self, layout: 'StatsLayout') -> None:
        self.layout = layout
        server = Family('', 'gauge', False)
        server.name = SERVER_START_TIME
        server.help = 'When the server started serving, Unix time in seconds.'
        server.samples.append(((), (0,), 'value'))
        buckets: dict[tuple[str, str], Family] = {}
        rollups: dict[tuple[str, str], Family] = {}
        histogram = Family(HISTOGRAM, 'histogram', False)
        histogram_rollup = Family(HISTOGRAM, 'histogram', True)
        for subserver, names in layout.buckets.items():
            types = layout.types[subserver]
            label = 'daemon' if subserver == DAEMONS or types.get('start_time') == 'daemon' else 'worker'
            groups = []
            for bucket in names:
                index = layout.index[(subserver, bucket)]
                hist = _HISTOGRAM_STATS.issubset(index)
                if hist:
                    group = tuple(index[stat] for stat in DURATION_BUCKETS) + (index[DURATION_SUM],)
                    groups.append(group)
                    histogram.samples.append(((('subserver', subserver), (label, bucket)), (group,), 'histogram'))
                for stat, cell in index.items():
                    if hist and stat in _HISTOGRAM_STATS:
                        continue
                    family = self._family(buckets, stat, types[stat], False)
                    family.samples.append(((('subserver', subserver), (label, bucket)), (cell,), 'value'))
            if groups:
                histogram_rollup.samples.append(((('subserver', subserver),), tuple(groups), 'histogram'))
            for stat, stat_type in types.items():
                if stat_type not in _ROLLUP_HELP or (groups and stat in _HISTOGRAM_STATS):
                    continue
                cells = tuple(layout.index[(subserver, b)][stat] for b in names
                              if stat in layout.index[(subserver, b)])
                if cells:
                    family = self._family(rollups, stat, stat_type, True)
                    family.samples.append(((('subserver', subserver),), cells, stat_type))
        #: Every family, in the order rendered.
        self.families: list[Family] = [server] + ([histogram] if histogram.samples else []) + list(
            buckets.values()) + ([histogram_rollup] if histogram_rollup.samples else []) + list(rollups.values())
        taken = {SERVER_START_TIME}
        for family in sorted(self.families[1:], key=lambda f: (
                f.rollup, f.type != 'histogram', sanitize(f.stat) != f.stat, f.stat, f.type)):
            name = family.wanted_name()
            digest = hashlib.sha1(('%s\0%s\0%s' % (family.rollup, family.stat, family.type)).encode()).hexdigest()
            length = 8
            while not taken.isdisjoint(_sample_names(name, family.type)):
                name = family.wanted_name('_' + digest[:length])
                length += 1
            taken.update(_sample_names(name, family.type))
            family.name = name
            if family.type == 'histogram':
                family.help = _HISTOGRAM_HELP % (
                    'summed over each subserver\'s workers' if family.rollup else 'per worker')
            else:
                family.help = family.describe()
        self._lines = [(('# HELP %s %s\n# TYPE %s %s' % (f.name, escape_help(f.help), f.name, f.type)),
                        [(_histogram_series(f.name, labels) if how == 'histogram' else f.name + _labels(labels),
                          cells, how) for labels, cells, how in f.samples])
                       for f in self.families]

    @staticmethod
    def _family(families: dict[tuple[str, str], Family], stat: str, stat_type: str, rollup: bool) -> Family:
        prom_type = metric_type(stat, stat_type)
        family = families.get((stat, prom_type))
        if family is None:
            family = families[(stat, prom_type)] = Family(stat, prom_type, rollup)
        if stat_type not in family.stat_types:
            family.stat_types.append(stat_type)
        return family

    def render(self, cells: Sequence[int]) -> str:
        """The exposition text of ``cells`` (the layout's cell values, such as
        :attr:`brim.stats.SharedStats.cells`; copied first, so a roll-up is
        the sum, lowest or highest of the very values shown per bucket)."""
        values = cells.tolist() if isinstance(cells, memoryview) else list(cells)
        out = []
        for head, samples in self._lines:
            out.append(head)
            for series, indexes, how in samples:
                if how == 'histogram':
                    _render_histogram(out, series, indexes, values)
                    continue
                if how == 'value':
                    value = values[indexes[0]]
                else:
                    seen = [values[i] for i in indexes]
                    value = sum(seen) if how == 'sum' else min(seen) if how == 'min' else max(seen)
                out.append('%s %d' % (series, value))
        return '\n'.join(out) + '\n'


def _base(name: str) -> str:
    return name[:-6] if name.endswith('_total') else name


_HISTOGRAM_STATS = frozenset(DURATION_BUCKETS + (DURATION_SUM,))
#: The ``le`` label of each histogram bucket, as Prometheus's clients write them.
LE = tuple(repr(float(bound)) for bound in DURATION_BOUNDS) + ('+Inf',)


def _sample_names(name: str, prom_type: str) -> set[str]:
    """The sample names a family of ``name`` uses (without ``_total``)."""
    if prom_type == 'histogram':
        return {name, name + '_bucket', name + '_sum', name + '_count'}
    return {_base(name)}


def _histogram_series(name: str, labels: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The series of one histogram sample: one ``_bucket`` per ``le``, then ``_sum`` and ``_count``."""
    out = tuple(name + '_bucket' + _labels(tuple(labels) + (('le', le),)) for le in LE)
    return out + (name + '_sum' + _labels(labels), name + '_count' + _labels(labels))


def _render_histogram(out: list[str], series: Sequence[str], groups: Sequence, values: Sequence[int]) -> None:
    """Append one histogram sample: the non-cumulative bucket cells of each
    group (worker) summed and made cumulative; the sum in seconds."""
    buckets = len(LE)
    total = 0
    for i in range(buckets):
        total += sum(values[group[i]] for group in groups)
        out.append('%s %d' % (series[i], total))
    micros = sum(values[group[buckets]] for group in groups)
    out.append('%s %s' % (series[buckets], _seconds(micros)))
    out.append('%s %d' % (series[buckets + 1], total))


def _seconds(micros: int) -> str:
    """``micros`` microseconds as exact decimal seconds (``'1.5'``, ``'0.000001'``)."""
    whole, frac = divmod(micros, 1000000)
    return '%d.%06d' % (whole, frac) if frac else '%d' % whole


def render(layout: 'StatsLayout', cells: Sequence[int]) -> str:
    """The exposition text of a layout's cell values (see :class:`Exposition`)."""
    return Exposition(layout).render(cells)
