#!/usr/bin/env python3
"""Bare pre-forked Eventlet UDP echo loop: the UDP reference of ``bench/compare.py``.

The parent imports Eventlet, binds 127.0.0.1:PORT (UDP) and forks
``--workers`` children (see ``prefork.py``), all reading the one shared
socket (no SO_REUSEPORT). Each wraps it in a green socket and loops, in one
green thread, no spawn per datagram: ``recvfrom(65536)`` (brimd's default ``max_datagram_size``),
count it in the worker's shared counter (brimd counts ``datagram_count``),
``sendto`` it back.

Usage: python bench/refs/eventlet_udp_echo.py --port PORT [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prefork import SharedCount, bind_udp, import_eventlet, prefork

DATAGRAMS = SharedCount()


def serve(eventlet: Any, sock: Any) -> None:
    """Run in a child: the recvfrom/sendto loop on the shared socket."""
    green = eventlet.greenio.GreenSocket(sock)
    recvfrom, sendto, count = green.recvfrom, green.sendto, DATAGRAMS.add
    while True:
        try:
            data, address = recvfrom(65536)
            count()
            sendto(data, address)
        except OSError:
            continue


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args()
    eventlet = import_eventlet()
    sock = bind_udp(args.port)
    return prefork(args.workers, lambda index: serve(eventlet, sock))


if __name__ == '__main__':
    sys.exit(main())
