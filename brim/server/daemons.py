"""The daemons subserver: one supervised process per daemon named in ``[daemons]``.

Each daemon process builds ``cls(name, parsed_conf)`` and calls
``instance(subserver, stats)``, which should never return. When it returns
or raises, the process exits (logged) and its supervisor starts it again, at
most about once a second, backing off up to a minute while it keeps
failing (:func:`brim.service.sustain_workers`). On a graceful stop a
daemon gets SIGHUP, whose default action ends it. Daemons are plain processes: Eventlet is not
imported for them unless ``eventlet_hub`` is set.
"""

from __future__ import annotations

import logging
import sys

from brim.log import sysloggable_excinfo
from brim.server.subserver import Subserver, import_eventlet
from brim.stats import BucketStats


class DaemonsSubserver(Subserver):
    """Subserver for the ``[daemons]`` section; buckets are daemon names."""

    kind = 'daemons'
    app_kind = 'daemon'

    def app_specs(self) -> list[tuple[str, str]]:
        conf = self.server.conf
        return [(name, conf.get(name, 'call')) for name in self.values['daemons']]

    def builtin_stats(self) -> list[tuple[str, str]]:
        return [('start_time', 'daemon')] + [(name, 'daemon') for name, _ in self.supervision_stats('daemon')]

    def bucket_names(self) -> list[str]:
        """One stats bucket per daemon, named by its section (the ``daemons`` option)."""
        return list(self.values['daemons'])

    def worker_count(self) -> int:
        """One process per daemon named by the ``daemons`` option."""
        return len(self.values['daemons'])

    def stats_rows(self) -> list[tuple[str, list[tuple[str, str]]]]:
        return [(app.section, self.builtin_stats() + list(app.stats)) for app in self.apps]

    def describe(self) -> str:
        return '[%s] %s' % (self.name, ', '.join(
            '%s (%s)' % (section, dotted) for section, dotted in self.app_specs()) or 'none')

    def run_daemon(self, index: int, stats: BucketStats, logger: logging.Logger) -> int:
        """Run daemon ``index`` in this process; returns the exit status."""
        loaded = self.apps[index]
        if self.values['eventlet_hub']:
            import_eventlet().hubs.use_hub(self.values['eventlet_hub'])
        try:
            daemon = loaded.cls(loaded.section, loaded.parsed_conf)
            daemon(self, stats)
        except Exception:
            logger.error('daemon %s raised: %s', loaded.section, sysloggable_excinfo(*sys.exc_info()))
            return 1
        logger.warning('daemon %s returned; it will be started again', loaded.section)
        return 0
