#!/usr/bin/env python3
"""Bare pre-forked Eventlet TCP echo server: the TCP reference of ``bench/compare.py``.

The parent imports Eventlet, binds 127.0.0.1:PORT and forks ``--workers``
children (see ``prefork.py``); each accepts on the shared socket and runs
every connection in a green thread of a ``GreenPool(1024)`` (brimd's default
``concurrent_per_worker``): ``recv(65536)`` (brimd's ``TCPEcho`` default
``chunk_read``), add the byte count to the worker's shared counter (brimd's
``TCPEcho`` counts ``byte_count`` too), ``sendall``, until the client closes.
No socket timeout (brimd sets ``client_timeout``, 60 s by default).

Usage: python bench/refs/eventlet_tcp_echo.py --port PORT [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prefork import SharedCount, import_eventlet, listen_tcp, prefork

BYTES = SharedCount()


def echo(conn: Any) -> None:
    """Echo one connection until EOF (or an error)."""
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            BYTES.add(len(data))
            conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()


def serve(eventlet: Any, sock: Any) -> None:
    """Run in a child: accept on the shared socket, a green thread per connection."""
    listener = eventlet.greenio.GreenSocket(sock)
    pool = eventlet.GreenPool(1024)
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        pool.spawn_n(echo, conn)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args()
    eventlet = import_eventlet()
    sock = listen_tcp(args.port)
    return prefork(args.workers, lambda index: serve(eventlet, sock))


if __name__ == '__main__':
    sys.exit(main())
