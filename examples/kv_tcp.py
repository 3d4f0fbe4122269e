"""A TCP line protocol for the key-value store.

Each request is one line, each answer one line; lines end with ``\\n`` (a
``\\r`` before it is ignored, so ``\\r\\n`` works too) and are UTF-8:

================ ===================================================
Request          Answer
================ ===================================================
``SET key text`` ``OK`` (``text`` is the rest of the line, spaces and all)
``GET key``      ``VALUE text``, or ``NOT_FOUND``
``DEL key``      ``DELETED``, or ``NOT_FOUND``
anything else    ``ERROR reason``; the connection stays open
================ ===================================================

Commands are case-sensitive. A line longer than ``max_line`` bytes is
answered ``ERROR line too long`` and the connection is closed (the rest of
it cannot be told from the next request). A client may send several
requests without waiting (pipelining); answers come in order. An idle
connection is closed after ``client_timeout`` seconds (a ``[tcp]`` option
of brimd's).

Configuration (brimd's ``[tcp]`` options such as ``port`` go in the same
section)::

    [tcp]
    call = examples.kv_tcp.KVServer
    data_dir = /tmp/brim-kv/data
    # max_line = 65536

Stats:

================ ====== ==========================================
Name             Type   Description
================ ====== ==========================================
sets             sum    SET requests that stored a value.
gets             sum    GET requests answered (found or not).
deletes          sum    DEL requests answered (found or not).
errors           sum    Requests answered ERROR.
connection_count sum    Connections accepted (set by brimd).
================ ====== ==========================================
"""

from __future__ import annotations

from typing import Any

from brim.options import app_option, parse_section, to_positive_int

from examples.store import DATA_DIR, Store, require_data_dir


class KVServer:
    """Serves the line protocol over one connection per call.

    brimd makes one instance per worker and calls it once per connection,
    each call in its own green thread: a blocking read here waits for this
    client only.

    Args:
        name: The section name (``tcp``).
        parsed_conf: What :meth:`parse_conf` returned.
    """

    OPTIONS = (
        DATA_DIR,
        app_option('max_line', to_positive_int, 65536, 'The longest request line, newline included.',
                   units='bytes'),
    )

    def __init__(self, name: str, parsed_conf: dict) -> None:
        self.name = name
        self.store = Store(parsed_conf['data_dir'])
        self.max_line = parsed_conf['max_line']

    def __call__(self, subserver: Any, stats: Any, sock: Any, ip: str, port: int) -> None:
        """Answer requests on ``sock`` until the client closes it.

        Args:
            subserver: The :class:`brim.server.TCPSubserver`.
            stats: This worker's stats: ``get``, ``set``, ``incr``, ``add``.
            sock: The connected green socket (timeout ``client_timeout``).
            ip, port: The client's address.

        Raises:
            OSError: if the store fails (a full disk, say); brimd logs it,
                the connection closes, and a new instance serves the next.
        """
        # A buffered reader over the socket: readline() returns one whole
        # line however the bytes arrive, and keeps what follows for the next.
        with sock.makefile('rb') as reader:
            while True:
                try:
                    line = reader.readline(self.max_line + 1)
                except OSError:  # timed out (client_timeout) or reset
                    return
                if not line:  # the client closed its side
                    return
                too_long = len(line) > self.max_line
                if too_long:
                    stats.incr('errors')
                    answer = 'ERROR line too long'
                else:
                    answer = self.answer(line.rstrip(b'\n').rstrip(b'\r'), stats)
                try:
                    sock.sendall(answer.encode('utf-8') + b'\n')
                except OSError:  # the client went away
                    return
                if too_long:  # the rest of that line can't be told from the next request
                    return

    def answer(self, line: bytes, stats: Any) -> str:
        """Return the answer to one request line (without its newline)."""
        try:
            command, _, rest = line.decode('utf-8').partition(' ')
            if command == 'SET':
                key, space, value = rest.partition(' ')
                if not space:
                    raise ValueError('usage: SET key value')
                self.store.set(key, value)
                stats.incr('sets')
                return 'OK'
            if command == 'GET':
                found = self.store.get(rest)
                stats.incr('gets')
                return 'NOT_FOUND' if found is None else 'VALUE ' + found
            if command == 'DEL':
                deleted = self.store.delete(rest)
                stats.incr('deletes')
                return 'DELETED' if deleted else 'NOT_FOUND'
            raise ValueError('unknown command: use SET, GET or DEL')
        except UnicodeDecodeError:
            stats.incr('errors')
            return 'ERROR not UTF-8'
        except ValueError as err:  # a bad key or value, or a malformed request
            stats.incr('errors')
            return 'ERROR %s' % err

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this handler's settings.

        Raises:
            brim.errors.ConfError: for a value that cannot be converted, or no ``data_dir``.
        """
        return require_data_dir(name, parse_section(name, conf, cls.OPTIONS))

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict) -> list[tuple[str, str]]:
        """Return the stats this handler keeps."""
        return [('sets', 'sum'), ('gets', 'sum'), ('deletes', 'sum'), ('errors', 'sum')]

