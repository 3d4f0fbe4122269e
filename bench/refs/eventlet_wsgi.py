#!/usr/bin/env python3
"""Bare pre-forked ``eventlet.wsgi`` server: the WSGI reference of ``bench/compare.py``.

The parent imports Eventlet and the app, binds 127.0.0.1:PORT and forks
``--workers`` children (see ``prefork.py``); each wraps the shared listening
socket in a green socket and
runs ``eventlet.wsgi.server(sock, hello_app.app, log_output=False)``: no
access log at all (brimd, in the bench, writes one line per request), and
otherwise Eventlet's defaults (keep-alive on, a green pool of 1024).

Usage: python bench/refs/eventlet_wsgi.py --port PORT [--workers 2]
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from hello_app import app
from prefork import import_eventlet, listen_tcp, prefork


def serve(eventlet: Any, sock: socket.socket) -> None:
    """Run in a child: serve hello_app.app on the shared socket until killed."""
    eventlet.wsgi.server(eventlet.greenio.GreenSocket(sock), app, log_output=False)


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
