"""The main process's control socket: how ``restart`` takes over the
listening sockets, and how ``status`` and ``stats`` read the live stats
(the running server's shared memory is inherited by its own processes
only, so other commands ask its main process).

Address: the abstract Unix socket ``\\0brimd.<main pid>`` (Linux), found
from the pid file; nothing on disk to clean up. Protocol: the client sends
one line, ``sockets`` or ``stats``, and reads one JSON document until the
server closes. For ``stats`` it is :meth:`brim.stats.SharedStats.snapshot`
(the JSON of SPEC §5). For ``sockets`` the listening sockets travel with it
as ``SCM_RIGHTS`` descriptors (:func:`socket.send_fds`), in the order of the
document's entries ``{"section", "family", "type", "address"}``.

Only a peer running as root, as the server's user, or as the user that
started it is answered (``SO_PEERCRED``). The main process answers in its
supervision loop, with a 1-second timeout per exchange.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brim.server.master import Server

#: Seconds the main process gives a client to send its request.
ANSWER_TIMEOUT = 1.0
_CREDENTIALS = struct.Struct('3i')  # struct ucred: pid, uid, gid
_STARTED_BY = [os.getuid()]


def address(pid: int) -> str:
    """The abstract socket address of main process ``pid``."""
    return '\0brimd.%d' % pid


def listen(pid: int) -> socket.socket:
    """Create the control socket of main process ``pid`` (non-blocking).

    Raises:
        OSError: if the address is taken.
    """
    _STARTED_BY[0] = os.getuid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address(pid))
        sock.listen(8)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def answer(listener: socket.socket, server: 'Server') -> None:
    """Answer one client of ``listener`` (called when it is readable)."""
    try:
        conn, _ = listener.accept()
    except (BlockingIOError, InterruptedError):
        return
    with conn:
        conn.settimeout(ANSWER_TIMEOUT)
        _, uid, _ = _CREDENTIALS.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size))
        if uid not in (0, os.geteuid(), _STARTED_BY[0]):
            server.logger.warning('control socket: refused a client running as uid %d', uid)
            return
        try:
            request = conn.recv(64).strip()
            if request == b'sockets':
                entries, fds = [], []
                for sub in server.ip_subservers():
                    sock = sub.sock
                    if sock is None or sock.fileno() < 0:
                        continue
                    entries.append({'section': sub.name, 'family': int(sock.family), 'type': int(sock.type),
                                    'address': list(sock.getsockname())})
                    fds.append(sock.fileno())
                socket.send_fds(conn, [json.dumps(entries).encode('utf-8')], fds)
            elif request == b'stats':
                assert server.stats is not None
                conn.sendall(json.dumps(server.stats.snapshot()).encode('utf-8'))
        except OSError as err:
            server.logger.warning('control socket: %s', err)


def ask(pid: int, request: str, timeout: float = 5.0) -> tuple[Any, list[socket.socket]]:
    """Send ``request`` to main process ``pid``; return (document, sockets).

    Raises:
        OSError: if there is no such control socket or the exchange fails.
        ValueError: if the answer is not JSON.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address(pid))
        sock.sendall(request.encode('ascii') + b'\n')
        data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 64)
        chunks = [data]
        while data:
            data = sock.recv(1 << 16)
            chunks.append(data)
    received = []
    for fd in fds:
        received.append(socket.socket(fileno=fd))
    try:
        return json.loads(b''.join(chunks).decode('utf-8')), received
    except ValueError:
        for each in received:
            each.close()
        raise
