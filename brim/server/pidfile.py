"""Pid file reading and process liveness, as ``start``/``stop``/``status`` need.

Liveness reads ``/proc/PID/stat`` where there is one: a process that has
exited but not yet been reaped (a zombie, state ``Z``) is not running, though
``kill(pid, 0)`` still finds it. A live pid is only taken as brimd's when its
command line mentions brim, so a stale pid file never makes brimd signal an
unrelated process that reused the pid.
"""

from __future__ import annotations

import os
from typing import Optional


def read_pid(path: str) -> Optional[int]:
    """Return the pid in ``path``, or None if absent, unreadable or garbled."""
    try:
        with open(path) as fp:
            text = fp.read(64).strip()
    except (OSError, UnicodeDecodeError):  # a garbled (binary) file too
        return None
    # isascii: str.isdigit() accepts digits such as '\xb2' that int() refuses.
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


def write_pid(path: str, pid: int) -> None:
    """Write ``pid`` to ``path`` atomically (temp file, then rename).

    Raises:
        OSError: if the file cannot be written.
    """
    tmp = '%s.%d.tmp' % (path, pid)
    with open(tmp, 'w') as fp:
        fp.write('%d\n' % pid)
    os.replace(tmp, path)


def remove_pid(path: str, pid: int) -> None:
    """Remove ``path`` if it still names ``pid``."""
    if read_pid(path) == pid:
        try:
            os.unlink(path)
        except OSError:
            pass


def process_state(pid: int) -> Optional[str]:
    """Return the one-letter state of ``pid`` from /proc, '' without /proc, None if gone."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as fp:
            data = fp.read()
    except FileNotFoundError:
        return None if os.path.isdir('/proc/self') else ''
    except OSError:
        return ''
    # The command name may hold spaces and parentheses: state follows the last ')'.
    return data[data.rfind(b')') + 2:][:1].decode('ascii', 'replace')


def is_running(pid: Optional[int]) -> bool:
    """True if ``pid`` is a live (not zombie) brimd process."""
    if not pid:
        return False
    state = process_state(pid)
    if state is None or state in ('Z', 'X'):
        return False
    if state == '':
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as fp:
            cmdline = fp.read()
    except OSError:
        return True
    return b'brim' in cmdline
