"""The TCP subserver: each worker accepts connections for its handler class.

Every accepted connection runs ``handler(subserver, stats, sock, ip, port)``
in its own green thread, at most ``concurrent_per_worker`` at once (past that
the accept loop waits, and new connections wait in the kernel's backlog).
Connections are spread evenly over the workers
(:class:`~brim.server.subserver.AcceptBalancer`).
The socket has ``client_timeout`` as its timeout, and counts the bytes
its ``recv``, ``recv_into``, ``send`` and ``sendall`` move into the
worker's ``bytes_in`` and ``bytes_out`` stats
(:func:`~brim.server.subserver.counting_socket_class`; not under TLS,
whose socket reads and writes the connection itself). A handler that raises is
logged and replaced by a new instance for later connections (the original
brim's contract).

With TLS (``certfile``), the handshake runs in the connection's own green
thread, never in the accept loop, and must be over within ``client_timeout``
of the accept (a deadline for the whole handshake, not per read, so a client
dripping bytes cannot stretch it). A handshake that fails or runs out of time
closes that connection and is logged as one line (DEBUG when the client
just closed it); the handler never sees the connection and the worker
serves on.

Invariant: Eventlet is imported only when a runner is made, in a worker.
"""

from __future__ import annotations

from typing import Any, Optional

from brim.server.subserver import (HandlerRunner, HandlerSubserver, StreamSubserver, counting_socket_class,
                                   tls_handshake)
from brim.stats import BucketStats


class TCPRunner(HandlerRunner):
    """Accepts connections (balanced over the workers) and runs the handler
    on each, under TLS when the subserver has ``certfile``; see the module
    docstring.
    """
    count = 'connection_count'

    def __init__(self, sub: 'TCPSubserver', stats: BucketStats) -> None:
        super().__init__(sub, stats)
        self.timeout: Optional[float] = sub.values['client_timeout'] or None
        self.open = 0
        self.balancer = sub.balancer(self.eventlet, self.sock, stats, lambda: self.open,
                                     counting_socket_class(self.eventlet))
        #: Where each connection's socket counts ``bytes_in`` and ``bytes_out``.
        self.byte_cells = (stats.cells, stats.cell('bytes_in'), stats.cell('bytes_out'))

    def receive(self) -> tuple:
        """Accept the next connection.

        Returns:
            ``(conn, (ip, port))``: the green socket and the client's address.
        """
        conn, address = self.balancer.accept()
        conn.byte_cells = self.byte_cells
        self.open += 1
        self.balancer.publish()
        return conn, address

    def stop_accepting(self) -> None:
        if self.end_accept_loop():
            self.balancer.stop()

    def sample(self) -> None:
        self.balancer.sample()

    def handle_unit(self, handler: Any, conn: Any, address: tuple) -> None:
        """Set ``client_timeout`` on ``conn``, do the TLS handshake if any, run
        ``handler(subserver, stats, sock, ip, port)``, and close the connection.
        """
        try:
            conn.settimeout(self.timeout)
            if self.sub.ssl_context is not None:
                conn = self.eventlet.green.ssl.GreenSSLSocket(
                    conn, server_side=True, _context=self.sub.ssl_context, do_handshake_on_connect=False)
                if not tls_handshake(self.eventlet, conn, self.timeout, self.sub.logger, address):
                    return
            handler(self.sub, self.stats, conn, address[0], address[1])
        finally:
            self.open -= 1
            self.balancer.publish()
            try:
                conn.close()
            except OSError:
                pass


class TCPSubserver(HandlerSubserver, StreamSubserver):
    """Subserver for a ``[tcp]``, ``[tcp2]``, ``[tcp#name]`` section."""

    kind = 'tcp'
    app_kind = 'tcp'
    runner = TCPRunner
