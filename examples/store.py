"""The key-value store: one file per key in a directory.

brimd runs the TCP workers, the WSGI workers and the daemons as separate
processes, so a dict in memory would give each process its own data. A
directory is shared by all of them, needs no server, and survives restarts.

Invariants:

* A key is 1 to 200 characters of ``A-Z a-z 0-9 _ . -`` and does not start
  with ``.`` (so it is always a plain file name, never ``..``, and never
  one of the store's own ``.tmp-`` files).
* A value is UTF-8 text without line breaks (``\\n`` or ``\\r``), so that it
  fits on one line of the TCP protocol.
* :meth:`Store.set` is atomic: a reader sees the old value or the new one,
  never half of one (the new value is written to a temporary file, then
  ``os.replace`` puts it in place in one step). It does not ``fsync``: a
  power cut may lose the latest writes (the snapshot daemon shows how to
  make a file durable). Value files are readable by brimd's user only
  (mode 0600, as :func:`tempfile.mkstemp` makes them).

Every call is a few small, local system calls. In a brimd worker they block
the worker's event loop for that long, which is fine for local files; a
store on a slow network file system would want ``eventlet.tpool``.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any, Optional

from brim.errors import ConfError
from brim.options import app_option, to_path
from brim.util import make_dirs, unlink

#: What a key may be (see the module docstring).
KEY = re.compile(r'[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}\Z')


#: The ``data_dir`` option, shared by every app of the example (each app's
#: section must set it: app options have no ``[brim]`` default).
DATA_DIR = app_option('data_dir', to_path, '', 'The store directory (required); created if missing.')


def require_data_dir(name: str, parsed_conf: dict[str, Any]) -> dict[str, Any]:
    """Return ``parsed_conf`` (from ``parse_section``) if it names a ``data_dir``.

    Raises:
        brim.errors.ConfError: if ``[name] data_dir`` is not set.
    """
    if not parsed_conf['data_dir']:
        raise ConfError(name, 'data_dir', None, 'is required')
    return parsed_conf


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid key.

    Raises:
        ValueError: saying what a key may be.
    """
    if not KEY.match(key):
        raise ValueError('bad key: 1-200 of A-Z a-z 0-9 _ . - and not starting with .')
    return key


def check_value(value: str) -> str:
    """Return ``value`` if it is a valid value (``str`` without line breaks).

    Raises:
        ValueError: for a line break or a non-``str``.
    """
    if not isinstance(value, str) or '\n' in value or '\r' in value:
        raise ValueError('bad value: text without line breaks')
    return value


class Store:
    """The keys and values in ``data_dir`` (created if missing).

    Args:
        data_dir: An absolute directory path.

    Raises:
        OSError: if ``data_dir`` cannot be created.
    """

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        make_dirs(data_dir)

    def get(self, key: str) -> Optional[str]:
        """Return the value of ``key``, or None if it is not set.

        Raises:
            ValueError: for a bad key.
        """
        try:
            with open(os.path.join(self.data_dir, check_key(key)), encoding='utf-8') as fp:
                return fp.read()
        except FileNotFoundError:
            return None

    def set(self, key: str, value: str) -> bool:
        """Set ``key`` to ``value``, atomically.

        Returns:
            True if ``key`` was not set before (as far as a check just before
            the write can tell: two processes creating the same key at once
            may both say True).

        Raises:
            ValueError: for a bad key or value.
        """
        path = os.path.join(self.data_dir, check_key(key))
        data = check_value(value).encode('utf-8')
        created = not os.path.exists(path)
        # A unique temporary name in the same directory (os.replace does not
        # cross file systems); its leading '.' keeps it out of items().
        fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=self.data_dir)
        try:
            with os.fdopen(fd, 'wb') as fp:
                fp.write(data)
            os.replace(tmp, path)
        except BaseException:
            unlink(tmp)
            raise
        return created

    def delete(self, key: str) -> bool:
        """Remove ``key``; return True if it was set.

        Raises:
            ValueError: for a bad key.
        """
        try:
            os.unlink(os.path.join(self.data_dir, check_key(key)))
        except FileNotFoundError:
            return False
        return True

    def keys(self) -> list[str]:
        """Return every key, sorted."""
        return sorted(name for name in os.listdir(self.data_dir) if KEY.match(name))

    def items(self) -> dict[str, str]:
        """Return ``{key: value}`` for every key (each value read on its own:
        keys set or deleted meanwhile may or may not be in it)."""
        found = {}
        for key in self.keys():
            value = self.get(key)
            if value is not None:  # deleted since listdir
                found[key] = value
        return found
