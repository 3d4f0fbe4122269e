"""The systemd notification protocol (``sd_notify(3)``), spoken by the main process.

When systemd starts a ``Type=notify`` service it sets ``NOTIFY_SOCKET`` to
the address of a Unix datagram socket: an absolute path, or ``@name`` for
the abstract socket ``\\0name``. A service reports its state by sending one
datagram of newline-separated ``KEY=VALUE`` assignments there. What brimd
sends (see ``contrib/brimd.service`` and the README, "Running under
systemd"):

- ``MAINPID=<pid>``, ``READY=1``, ``STATUS=...`` from a new main process
  once every worker of every subserver serves, just before it tells
  ``start`` or ``restart`` that it does (so systemd follows the daemonized
  main process before the command it started exits);
- ``RELOADING=1`` and ``MONOTONIC_USEC=...`` from ``restart`` when it
  begins taking the running server's sockets over (the new main process's
  ``READY=1`` ends the reload; ``restart`` itself sends ``READY=1`` if the
  new server cannot start and the old one serves on);
- ``STOPPING=1`` from a main process that has reported ready and begins
  stopping (``stop``, ``shutdown``, SIGTERM, SIGHUP), but not from the old
  main process of a restart, which systemd no longer follows.

:meth:`Notifier.from_environ` takes ``NOTIFY_SOCKET`` out of the environment,
so no supervisor, worker, daemon or app inherits it: only brimd's own code
talks to systemd. Sending never raises: a missing or refusing socket is
logged once as a warning, then at debug level.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import MutableMapping, Optional

#: The environment variable naming systemd's notification socket.
ENV_NAME = 'NOTIFY_SOCKET'

_logger = logging.getLogger('brim.sdnotify')


def parse_address(value: Optional[str]) -> Optional[str]:
    """The socket address ``NOTIFY_SOCKET`` names, or None for none.

    Args:
        value: The variable's value: an absolute path, or ``@name`` for an
            abstract socket (returned as ``'\\0name'``).

    Returns:
        The address for :meth:`socket.socket.sendto`, or None if ``value``
        is unset, empty or of a kind brimd does not speak (a relative path,
        ``vsock:``), as ``sd_notify(3)`` ignores those.
    """
    if not value:
        return None
    if value.startswith('@') and len(value) > 1:
        return '\0' + value[1:]
    if value.startswith('/'):
        return value
    return None


def monotonic_usec() -> int:
    """``CLOCK_MONOTONIC`` in microseconds, as ``MONOTONIC_USEC=`` wants it."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends notifications to one systemd notification socket.

    Args:
        address: The socket address (see :func:`parse_address`); None makes
            every send a no-op.
    """

    def __init__(self, address: Optional[str]) -> None:
        self.address = address
        #: True once ``READY=1`` was sent and until ``STOPPING=1`` is.
        self.ready = False
        self._warned = False

    @classmethod
    def from_environ(cls, environ: Optional[MutableMapping[str, str]] = None, unset: bool = True) -> 'Notifier':
        """A notifier for ``NOTIFY_SOCKET`` in ``environ`` (default :data:`os.environ`).

        Args:
            environ: The environment to read.
            unset: Remove the variable from ``environ`` so that processes
                started or forked later do not inherit it.
        """
        env = os.environ if environ is None else environ
        value = env.get(ENV_NAME)
        if unset:
            env.pop(ENV_NAME, None)
        address = parse_address(value)
        if value and address is None:
            _logger.warning('%s=%r: not an absolute path or @name; not notifying systemd', ENV_NAME, value)
        return cls(address)

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to send to."""
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``assignments`` (``'KEY=VALUE'`` strings) in one datagram.

        Returns:
            True if the datagram was sent; False if there is no socket or
            sending failed (logged, never raised).
        """
        if self.address is None or not assignments:
            return False
        data = '\n'.join(assignments).encode('utf-8') + b'\n'
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(data, self.address)
        except OSError as err:
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            _logger.log(level, 'cannot notify systemd at %r (%s): %s', self.address.replace('\0', '@'),
                        ', '.join(a.split('=', 1)[0] for a in assignments), err)
            return False
        return True

    def notify_ready(self, pid: int, status: str = '') -> bool:
        """``MAINPID=pid``, ``READY=1`` and, if given, ``STATUS=status``."""
        self.ready = True
        return self.send('MAINPID=%d' % pid, 'READY=1', *(['STATUS=%s' % status] if status else []))

    def notify_reloading(self, status: str = '') -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (systemd 253 and later want it) and, if given, ``STATUS``."""
        return self.send('RELOADING=1', 'MONOTONIC_USEC=%d' % monotonic_usec(),
                         *(['STATUS=%s' % status] if status else []))

    def notify_stopping(self, status: str = '') -> bool:
        """``STOPPING=1`` (and ``STATUS``), once: only after :meth:`notify_ready`, and not again."""
        if not self.ready:
            return False
        self.ready = False
        return self.send('STOPPING=1', *(['STATUS=%s' % status] if status else []))
