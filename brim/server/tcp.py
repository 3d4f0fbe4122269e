"""The TCP subserver: each worker accepts connections for its handler class.

Every accepted connection runs ``handler(subserver, stats, sock, ip, port)``
in its own green thread, at most ``concurrent_per_worker`` at once (past that
the accept loop waits, and new connections wait in the kernel's backlog).
The socket has ``client_timeout`` as its timeout. A handler that raises is
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

import logging
import ssl
from typing import Any, Optional

from brim.server.subserver import HandlerRunner, HandlerSubserver, StreamSubserver, tls_reason
from brim.stats import BucketStats


class TCPRunner(HandlerRunner):
    count = 'connection_count'

    def __init__(self, sub: 'TCPSubserver', stats: BucketStats) -> None:
        super().__init__(sub, stats)
        self.timeout: Optional[float] = sub.values['client_timeout'] or None

    def receive(self) -> tuple:
        return self.sock.accept()

    def handle_unit(self, handler: Any, conn: Any, address: tuple) -> None:
        try:
            conn.settimeout(self.timeout)
            if self.sub.ssl_context is not None:
                conn = self.eventlet.green.ssl.GreenSSLSocket(
                    conn, server_side=True, _context=self.sub.ssl_context, do_handshake_on_connect=False)
                if not self.handshake(conn, address):
                    return
            handler(self.sub, self.stats, conn, address[0], address[1])
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handshake(self, conn: Any, address: tuple) -> bool:
        """Do the TLS handshake on ``conn`` within ``client_timeout``.

        Args:
            conn: The accepted connection, a GreenSSLSocket not yet shaken hands.
            address: The client's address, for the log line.

        Returns:
            True if the handshake succeeded; False if it failed or ran out
            of time, which is logged as one line: at INFO, or at DEBUG when
            the client just closed (a port check, a scanner). The caller
            closes the connection.
        """
        deadline = self.eventlet.Timeout(self.timeout) if self.timeout else None
        level, late = logging.INFO, 'not done within client_timeout (%g s)' % (self.timeout or 0)
        try:
            conn.do_handshake()
            return True
        except TimeoutError:  # one read waited client_timeout
            reason = late
        except OSError as err:  # ssl.SSLError, ECONNRESET ...
            reason = tls_reason(err) or type(err).__name__
            if isinstance(err, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError)):
                level = logging.DEBUG
        except self.eventlet.Timeout as err:
            if err is not deadline:
                raise
            reason = late
        finally:
            if deadline is not None:
                deadline.cancel()
        self.sub.logger.log(level, 'TLS handshake with %s failed: %s', _address(address), reason)
        return False


def _address(address: tuple) -> str:
    ip, port = address[0], address[1]
    return '[%s]:%s' % (ip, port) if ':' in ip else '%s:%s' % (ip, port)


class TCPSubserver(HandlerSubserver, StreamSubserver):
    """Subserver for a ``[tcp]``, ``[tcp2]``, ``[tcp#name]`` section."""

    kind = 'tcp'
    app_kind = 'tcp'
    runner = TCPRunner
