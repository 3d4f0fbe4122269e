"""A simple TCP app that echoes what it reads: a template for your own.

brimd calls one instance per worker for each connection, each call in its
own green thread, so blocking socket calls here only pause this connection.

Configuration::

    [tcp]
    call = brim.tcp_echo.TCPEcho
    # chunk_read = 65536
    #   The most bytes to read at once before echoing them back.

Stats:

================ ====== ==========================================
Name             Type   Description
================ ====== ==========================================
byte_count       sum    Bytes read from clients.
connection_count sum    Connections accepted (set by brimd).
start_time       worker When the worker started (set by brimd).
================ ====== ==========================================
"""

from __future__ import annotations

from typing import Any

from brim.options import app_option, parse_section, to_positive_int


class TCPEcho:
    """Echoes incoming bytes back until the client closes.

    Args:
        name: The section name.
        parsed_conf: What :meth:`parse_conf` returned.
    """

    #: This app's options, declared once; parse_conf, brimd check and
    #: brimd.conf-sample all use them.
    #:
    #: :meta hide-value:
    OPTIONS = (
        app_option('chunk_read', to_positive_int, 65536, 'The most bytes to read at once before echoing them back.',
                   units='bytes'),
    )

    def __init__(self, name: str, parsed_conf: dict) -> None:
        self.name = name
        self.chunk_read = parsed_conf['chunk_read']

    def __call__(self, subserver: Any, stats: Any, sock: Any, ip: str, port: int) -> None:
        """Handle one connection from ``ip``:``port`` on ``sock``.

        Args:
            subserver: The :class:`brim.server.TCPSubserver` (``logger``, ``json_dumps``...).
            stats: This worker's stats: ``get``, ``set``, ``incr``, ``add``.
            sock: The connected green socket (timeout ``client_timeout``).
            ip, port: The client's address.
        """
        while True:
            data = sock.recv(self.chunk_read)
            if not data:
                return
            stats.add('byte_count', len(data))
            sock.sendall(data)

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this app's settings.

        Raises:
            brim.errors.ConfError: for a value that cannot be converted.
        """
        return parse_section(name, conf, cls.OPTIONS)

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict) -> list[tuple[str, str]]:
        """Return the stats this app keeps."""
        return [('byte_count', 'sum')]
