"""The UDP subserver: each worker receives datagrams for its handler class.

Every datagram (up to ``max_datagram_size`` bytes) runs
``handler(subserver, stats, sock, datagram, ip, port)`` in a green thread,
at most ``concurrent_per_worker`` at once; the handler replies with
``sock.sendto``. A handler that raises is logged and replaced by a new
instance.

Invariant: Eventlet is imported only when a runner is made, in a worker.
"""

from __future__ import annotations

from typing import Any

from brim.server.subserver import DatagramSubserver, HandlerRunner, HandlerSubserver
from brim.stats import BucketStats


class UDPRunner(HandlerRunner):
    count = 'datagram_count'

    def __init__(self, sub: 'UDPSubserver', stats: BucketStats) -> None:
        super().__init__(sub, stats)
        self.size = sub.values['max_datagram_size']

    def receive(self) -> tuple:
        return self.sock.recvfrom(self.size)

    def handle_unit(self, handler: Any, datagram: bytes, address: tuple) -> None:
        handler(self.sub, self.stats, self.sock, datagram, address[0], address[1])


class UDPSubserver(HandlerSubserver, DatagramSubserver):
    """Subserver for a ``[udp]``, ``[udp2]``, ``[udp#name]`` section."""

    kind = 'udp'
    app_kind = 'udp'
    runner = UDPRunner
