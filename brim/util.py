"""Miscellaneous file-system helpers: an advisory lock and forgiving mkdir/unlink.

Invariant: :func:`lock_path` never blocks longer than its timeout (it polls a
non-blocking ``flock``), so it is safe in green threads once Eventlet has
patched ``time.sleep``.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

# How long to wait between attempts to take the lock; short enough that a
# freed lock is picked up promptly, long enough not to spin.
_LOCK_POLL_INTERVAL = 0.01  # seconds


class LockPathTimeout(Exception):
    """Raised by :func:`lock_path` if its timeout is reached."""


@contextmanager
def lock_path(path: str, timeout: float) -> Iterator[bool]:
    """Hold an advisory exclusive lock (``flock``) on ``path`` for the ``with`` block.

    Others using the same mechanism on the same path are kept out until the
    block ends; the lock goes with the open file, so it is released even if
    the process dies. For example::

        with lock_path('/var/lib/myapp', 10):
            ...  # work inside /var/lib/myapp

    Args:
        path: An existing file or directory to lock (it is opened read-only).
        timeout: Seconds to keep trying; 0 tries once.

    Yields:
        True, once the lock is held.

    Raises:
        LockPathTimeout: if the lock was not gained within ``timeout``.
        OSError: if ``path`` cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockPathTimeout('Timeout %ss trying to lock %r.' % (timeout, path)) from None
                time.sleep(_LOCK_POLL_INTERVAL)
        yield True
    finally:
        # Closing the descriptor releases the flock.
        os.close(fd)


def make_dirs(path: str, mode: int = 0o777) -> None:
    """Like :func:`os.makedirs`, but no error if ``path`` is already a directory.

    Args:
        path: The directory to create, with any missing parents.
        mode: Permission bits for created directories (the umask applies).

    Raises:
        OSError: for any other failure, including ``path`` existing as a file.
    """
    os.makedirs(path, mode=mode, exist_ok=True)


def unlink(path: str) -> None:
    """Like :func:`os.unlink`, but no error if ``path`` already doesn't exist.

    Raises:
        OSError: for any other failure (e.g. ``path`` is a directory).
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
