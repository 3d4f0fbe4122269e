"""A UDP handler that counts statsd counters into brimd's ``/stats``.

Send it statsd counter lines (the format of the statsd daemon and its many
clients), one or more per datagram, separated by ``\\n``::

    requests:1|c
    logins:3|c
    errors:1|c|@0.1

``name:N|c`` adds ``N`` (a non-negative integer) to the stat ``name``. A
sample rate ``|@R`` (``0 < R <= 1``) is honoured as statsd does: the line
stands for ``N / R`` events (rounded), so ``errors:1|c|@0.1`` adds 10.

Only the names listed in ``counters`` are counted (each is a stat, declared
in :meth:`StatsdCounter.stats_conf`: brimd's stats live in shared memory
laid out before the workers start, so no stat can be made up on the fly).
A well-formed line with another name adds 1 to ``statsd_unknown``; any other
line (not ``name:N|c``, a bad rate, another statsd type such as ``|g`` or
``|ms``, or a datagram that is not UTF-8) adds 1 to ``statsd_malformed``.
Empty lines are ignored. It never replies (statsd clients don't wait for
one).

It only counts, never waits, so it runs inline in the receive loop (no
``blocks = True``): the fastest way brimd has.

Configuration (brimd's ``[udp]`` options such as ``port`` go in the same
section)::

    [udp]
    call = examples.statsd_udp.StatsdCounter
    counters = requests errors logins

Stats:

================ ====== ==========================================
Name             Type   Description
================ ====== ==========================================
<each counter>   sum    The counter's total (one stat per name in counters).
statsd_unknown   sum    Lines naming a counter not in ``counters``.
statsd_malformed sum    Lines that are not statsd counter lines.
datagram_count   sum    Datagrams received (set by brimd).
================ ====== ==========================================
"""

from __future__ import annotations

import re
from typing import Any, Optional

from brim.errors import ConfError
from brim.options import app_option, parse_section, to_words

#: What a counter name may be.
NAME = re.compile(r'[A-Za-z0-9_.-]{1,200}\Z')
#: Stat names a counter may not take: this handler's own, and those brimd
#: keeps for every UDP worker (one name would share one stat).
RESERVED = frozenset(('statsd_unknown', 'statsd_malformed', 'datagram_count', 'start_time', 'pid',
                      'restart_count', 'last_exit', 'backoff', 'recycle_count'))


def parse_line(line: str) -> Optional[tuple[str, int]]:
    """Parse one statsd counter line.

    Args:
        line: ``name:N|c`` or ``name:N|c|@R``, without its newline.

    Returns:
        ``(name, count)`` with the sample rate applied, or None if ``line``
        is not a counter line.
    """
    name, colon, rest = line.partition(':')
    fields = rest.split('|')
    if not colon or len(fields) not in (2, 3) or fields[1] != 'c':
        return None
    number = fields[0]
    if not (number.isascii() and number.isdigit()):
        return None
    count = int(number)
    if len(fields) == 3:
        try:
            rate = float(fields[2][1:]) if fields[2].startswith('@') else 0.0
        except ValueError:
            return None
        if not 0 < rate <= 1:
            return None
        count = round(count / rate)
    return name, count


class StatsdCounter:
    """Adds the counter lines of each datagram to this worker's stats.

    Args:
        name: The section name (``udp``).
        parsed_conf: What :meth:`parse_conf` returned.
    """

    OPTIONS = (
        app_option('counters', to_words, [], 'The counter names to count, space-separated; each becomes a '
                   'stat (sum). Lines naming others are counted in statsd_unknown.', shown=''),
    )

    #: False: the handler never waits, so brimd runs it inline.
    blocks = False

    def __init__(self, name: str, parsed_conf: dict) -> None:
        self.name = name
        self.counters = frozenset(parsed_conf['counters'])

    def __call__(self, subserver: Any, stats: Any, sock: Any, datagram: bytes, ip: str, port: int) -> None:
        """Count the lines of one datagram from ``ip``:``port``.

        Args:
            subserver: The :class:`brim.server.UDPSubserver`.
            stats: This worker's stats: ``get``, ``set``, ``incr``, ``add``.
            sock: The worker's green UDP socket (unused: no reply).
            datagram: The bytes received.
            ip, port: The sender's address.
        """
        try:
            text = datagram.decode('utf-8')
        except UnicodeDecodeError:
            stats.incr('statsd_malformed')
            return
        for line in text.split('\n'):
            if not line:
                continue
            parsed = parse_line(line)
            if parsed is None:
                stats.incr('statsd_malformed')
            elif parsed[0] in self.counters:
                stats.add(parsed[0], parsed[1])
            else:
                stats.incr('statsd_unknown')

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this handler's settings: ``{'counters': [names]}``.

        Raises:
            brim.errors.ConfError: for a counter name that is not 1-200 of
                ``A-Z a-z 0-9 _ . -``, or is a reserved stat name.
        """
        parsed = parse_section(name, conf, cls.OPTIONS)
        for counter in parsed['counters']:
            if not NAME.match(counter) or counter in RESERVED:
                raise ConfError(name, 'counters', counter, 'is not a name a counter may have')
        return parsed

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict) -> list[tuple[str, str]]:
        """Return the stats this handler keeps: one per counter, and the two of its own."""
        return [(counter, 'sum') for counter in parsed_conf['counters']] + [
            ('statsd_unknown', 'sum'), ('statsd_malformed', 'sum')]
