"""A daemon that writes the whole store to one JSON file, atomically.

Every ``interval`` seconds it reads every key and writes ``snapshot_path``::

    {"time": 1763600000, "items": {"greeting": "hello", "k": "v"}}

(``time``: when the store was read, integer Unix seconds.)

Whatever happens, ``snapshot_path`` is always a complete snapshot, the last
one or the one before: the daemon may be killed at any moment (SIGKILL,
``brimd shutdown``'s SIGHUP, a power cut), and a reader never sees half a
file. How:

1. write ``<snapshot_path>.tmp`` in the same directory, then ``flush`` and
   ``os.fsync`` it (its bytes are on disk);
2. ``os.replace`` it over ``snapshot_path``: a rename, atomic on POSIX;
3. ``os.fsync`` the directory (the rename itself is on disk).

A crash before step 2 leaves the old snapshot and a partial ``.tmp`` file,
which the next round overwrites. All three steps run holding an exclusive
lock (:func:`brim.util.lock_path`) on the snapshot's directory, so two
snapshot daemons writing the same file (two brimd instances, say) take
turns instead of writing one ``.tmp`` file at once.

If brimd kills or loses the daemon, it starts it again (see ``brimd
status`` and the daemon's ``pid``, ``restart_count`` and ``last_exit`` in
``/stats``); if the daemon raises (the disk is full, say), brimd logs the
error and restarts it, backing off while it keeps failing.

``write_delay`` is a testing aid: it sleeps that many seconds halfway
through writing the ``.tmp`` file, so that a test can kill the daemon
mid-write and see the old snapshot survive. Leave it 0.

Configuration::

    [daemons]
    daemons = snapshot

    [snapshot]
    call = examples.snapshot.Snapshot
    data_dir = /tmp/brim-kv/data
    snapshot_path = /tmp/brim-kv/snapshot.json
    # interval = 5
    # lock_timeout = 10
    # write_delay = 0

Stats:

============= ====== ==========================================
Name          Type   Description
============= ====== ==========================================
snapshots     daemon Snapshots written (a restarted daemon counts on).
last_snapshot daemon When the last one was written (Unix seconds).
keys          daemon How many keys it held.
start_time    daemon When the daemon (re)started (set by brimd).
============= ====== ==========================================
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from brim.errors import ConfError
from brim.options import app_option, parse_section, to_path, to_seconds
from brim.util import LockPathTimeout, lock_path, make_dirs

from examples.store import DATA_DIR, Store, require_data_dir


class Snapshot:
    """Writes the store to ``snapshot_path`` every ``interval`` seconds.

    Args:
        name: The daemon's section name.
        parsed_conf: What :meth:`parse_conf` returned.
    """

    OPTIONS = (
        DATA_DIR,
        app_option('snapshot_path', to_path, '', 'The snapshot file (required); its directory is '
                   'created if missing.'),
        app_option('interval', to_seconds, 5.0, 'Seconds between snapshots.', units='seconds', shown='5'),
        app_option('lock_timeout', to_seconds, 10.0, 'Seconds to wait for the lock on the snapshot directory '
                   'before skipping a round.', units='seconds', shown='10'),
        app_option('write_delay', to_seconds, 0.0, 'Testing aid: seconds to sleep halfway through writing, '
                   'so that a test can kill the daemon mid-write. Leave it 0.', units='seconds', shown='0'),
    )

    def __init__(self, name: str, parsed_conf: dict) -> None:
        self.name = name
        self.store = Store(parsed_conf['data_dir'])
        self.path = parsed_conf['snapshot_path']
        self.directory = os.path.dirname(self.path)
        make_dirs(self.directory)
        self.interval = parsed_conf['interval']
        self.lock_timeout = parsed_conf['lock_timeout']
        self.write_delay = parsed_conf['write_delay']

    def __call__(self, subserver: Any, stats: Any) -> None:
        """Write a snapshot, sleep ``interval`` seconds, and again, forever.

        brimd runs each daemon in a process of its own, without Eventlet:
        ``time.sleep`` is fine here (it is not in a worker).

        Args:
            subserver: The :class:`brim.server.DaemonsSubserver` (``logger``...).
            stats: This daemon's stats: ``get``, ``set``, ``incr``, ``add``.

        Raises:
            OSError: if the store cannot be read or the snapshot written
                (brimd logs it and starts the daemon again).
        """
        while True:
            try:
                with lock_path(self.directory, self.lock_timeout):
                    keys = self.write()
            except LockPathTimeout:
                subserver.logger.warning('%s: %s locked for %gs by another snapshot; skipping this round',
                                         self.name, self.directory, self.lock_timeout)
            else:
                stats.incr('snapshots')
                stats.set('last_snapshot', int(time.time()))
                stats.set('keys', keys)
            time.sleep(self.interval)

    def write(self) -> int:
        """Write one snapshot (holding the lock); return how many keys it has.

        Raises:
            OSError: if the store cannot be read or the file written.
        """
        items = self.store.items()
        data = json.dumps({'time': int(time.time()), 'items': items}, sort_keys=True).encode('utf-8')
        tmp = self.path + '.tmp'
        with open(tmp, 'wb') as fp:
            fp.write(data[:len(data) // 2])
            if self.write_delay:
                fp.flush()  # the first half is in the file, for a test to see
                time.sleep(self.write_delay)
            fp.write(data[len(data) // 2:])
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, self.path)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return len(items)

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this daemon's settings.

        Raises:
            brim.errors.ConfError: for a value that cannot be converted, or no
                ``data_dir`` or ``snapshot_path``.
        """
        parsed = require_data_dir(name, parse_section(name, conf, cls.OPTIONS))
        if not parsed['snapshot_path']:
            raise ConfError(name, 'snapshot_path', None, 'is required')
        return parsed

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict) -> list[tuple[str, str]]:
        """Return the stats this daemon keeps."""
        return [('snapshots', 'daemon'), ('last_snapshot', 'daemon'), ('keys', 'daemon')]
