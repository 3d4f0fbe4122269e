"""A sample daemon that logs a status line every ``interval`` seconds.

A template for your own daemons. brimd runs each daemon in its own process
and calls it once; it should loop forever. If it returns or raises, brimd
logs that and starts it again (at most about once a second; waiting 2, 4 ...
up to 60 seconds while it keeps failing within 10 seconds of starting).

On ``shutdown`` and ``restart`` a daemon gets SIGHUP, whose default action
ends it at once. A daemon that must finish a unit of work first sets its own
handler (``signal.signal(signal.SIGHUP, ...)``) and returns when done,
within ``graceful_timeout`` seconds, after which it is killed.

Configuration::

    [daemons]
    daemons = daemon_sample

    [daemon_sample]
    call = brim.daemon_sample.DaemonSample
    # interval = 60
    #   Seconds between status lines.

Stats:

=========== ====== ==========================================
Name        Type   Description
=========== ====== ==========================================
iterations  daemon Status lines logged since the daemon started.
last_run    daemon When the last status line was logged (Unix seconds).
start_time  daemon When the daemon (re)started (set by brimd).
=========== ====== ==========================================

Its supervisor also keeps ``pid``, ``restart_count``, ``last_exit`` and
``backoff`` for it, as for every daemon (see ``brimd status``).
"""

from __future__ import annotations

import time
from typing import Any

from brim.options import app_option, parse_section, to_seconds


class DaemonSample:
    """Logs a status line every ``interval`` seconds.

    Args:
        name: The daemon's section name.
        parsed_conf: What :meth:`parse_conf` returned.
    """

    #: This app's options, declared once; parse_conf, brimd check and
    #: brimd.conf-sample all use them.
    #:
    #: :meta hide-value:
    OPTIONS = (
        app_option('interval', to_seconds, 60.0, 'Seconds between status lines.', units='seconds', shown='60'),
    )

    def __init__(self, name: str, parsed_conf: dict) -> None:
        self.name = name
        self.interval = parsed_conf['interval']

    def __call__(self, subserver: Any, stats: Any) -> None:
        """Loop forever, logging and counting.

        Args:
            subserver: The :class:`brim.server.DaemonsSubserver` (``logger``...).
            stats: This daemon's stats: ``get``, ``set``, ``incr``, ``add``.
        """
        iterations = 0
        while True:
            iterations += 1
            subserver.logger.info('%s sample daemon log line %d', self.name, iterations)
            stats.set('iterations', iterations)
            stats.set('last_run', int(time.time()))
            time.sleep(self.interval)

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this daemon's settings.

        Raises:
            brim.errors.ConfError: for a value that cannot be converted.
        """
        return parse_section(name, conf, cls.OPTIONS)

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict) -> list[tuple[str, str]]:
        """Return the stats this daemon keeps."""
        return [('iterations', 'daemon'), ('last_run', 'daemon')]
