"""A simple UDP app that sends each datagram back: a template for your own.

brimd reads each datagram (up to ``max_datagram_size`` bytes) and calls the
instance with it; reply with ``sock.sendto(data, (ip, port))``.

By default the handler runs inline, in the worker's receive loop (no green
thread per datagram): the fastest way, for a handler that computes and
replies. A handler that may wait (``eventlet.sleep``, calls to other
services) sets ``blocks = True`` on its class; each datagram then runs in its
own green thread, at most ``concurrent_per_worker`` at once. Never block the
process itself (``time.sleep``, non-green I/O): the watchdog kills a worker
stuck for ``worker_timeout``.

Configuration::

    [udp]
    call = brim.udp_echo.UDPEcho

Stats:

============== ====== ==========================================
Name           Type   Description
============== ====== ==========================================
byte_count     sum    Bytes received from clients.
datagram_count sum    Datagrams received (set by brimd).
start_time     worker When the worker started (set by brimd).
============== ====== ==========================================
"""

from __future__ import annotations

from typing import Any


class UDPEcho:
    """Sends every datagram back to where it came from.

    It never waits (``sock.sendto`` on a UDP socket returns at once unless
    the send buffer is full), so it runs inline: no ``blocks = True``.

    Args:
        name: The section name.
        parsed_conf: What :meth:`parse_conf` returned.
    """

    #: No options of its own (brimd check then flags any option it does not know).
    OPTIONS = ()

    #: False, the default, means brimd calls this handler inline, in the receive
    #: loop. Set ``blocks = True`` in a handler that may wait.
    blocks = False

    def __init__(self, name: str, parsed_conf: dict) -> None:
        self.name = name

    def __call__(self, subserver: Any, stats: Any, sock: Any, datagram: bytes, ip: str, port: int) -> None:
        """Handle one datagram from ``ip``:``port``.

        Args:
            subserver: The :class:`brim.server.UDPSubserver`.
            stats: This worker's stats: ``get``, ``set``, ``incr``, ``add``.
            sock: The worker's green UDP socket.
            datagram: The bytes received.
            ip, port: The sender's address.
        """
        stats.add('byte_count', len(datagram))
        sock.sendto(datagram, (ip, port))

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this app's settings (none)."""
        return {}

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict) -> list[tuple[str, str]]:
        """Return the stats this app keeps."""
        return [('byte_count', 'sum')]
