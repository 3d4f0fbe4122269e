"""Tests for brim.server.control (the main process's control socket) and
brim.server.master.status_table.

The control socket is real (an abstract Unix socket, descriptors passed
with SCM_RIGHTS); the "server" answering on it is a small stand-in with
just what :func:`control.answer` reads (``ip_subservers()``, ``stats``,
``logger``): the real Server needs a whole conf. The answering side runs
in a thread of the test process; every wait is bounded.
"""

import errno
import gc
import json
import logging
import os
import pwd
import select
import socket
import threading
import time
import warnings

import pytest

from brim.server import control
from brim.server.master import status_table
from brim.service import get_listening_tcp_socket, get_listening_udp_socket

TIMEOUT = 5.0


class _Sub:
    def __init__(self, name, sock):
        self.name = name
        self.sock = sock


class _Stats:
    def __init__(self, snapshot):
        self._snapshot = snapshot

    def snapshot(self):
        return self._snapshot


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append((record.levelname, record.getMessage()))


class FakeServer:
    def __init__(self, subs, snapshot=None):
        self.subs = subs
        self.stats = _Stats(snapshot or {'start_time': 1})
        self.logger = logging.getLogger('brim.test_control.%d' % id(self))
        self.logger.propagate = False
        self.records = _Records()
        self.logger.addHandler(self.records)

    def ip_subservers(self):
        return list(self.subs)


class Answering:
    """Answers clients of ``control.listen(pid)`` in a thread, as the main
    process's supervision loop does (answer() when the listener is readable)."""

    def __init__(self, server, pid=None):
        self.server = server
        self.pid = pid if pid is not None else os.getpid()
        self.listener = None
        self.thread = None
        self.done = threading.Event()
        self.answered = 0

    def __enter__(self):
        self.listener = control.listen(self.pid)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def _loop(self):
        deadline = time.monotonic() + 30
        while not self.done.is_set() and time.monotonic() < deadline:
            if select.select([self.listener], [], [], 0.05)[0]:
                control.answer(self.listener, self.server)
                self.answered += 1

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()
        self.listener.close()
        return False


def test_address_is_abstract_per_pid():
    assert control.address(1234) == '\0brimd.1234'


def test_listen_is_nonblocking_and_exclusive():
    listener = control.listen(os.getpid())
    try:
        assert listener.getblocking() is False
        assert listener.getsockname() == b'\0brimd.%d' % os.getpid()
        with warnings.catch_warnings():
            # listen() leaves its socket unclosed when bind() fails (see
            # test_listen_on_taken_address_closes_its_socket): not this test's concern.
            warnings.simplefilter('ignore', ResourceWarning)
            with pytest.raises(OSError) as excinfo:
                control.listen(os.getpid())
            assert excinfo.value.errno == errno.EADDRINUSE
            del excinfo
            gc.collect()
        # Nobody waiting: answer() returns at once, without error.
        server = FakeServer([])
        started = time.monotonic()
        control.answer(listener, server)
        assert time.monotonic() - started < 0.5
        assert server.records.messages == []
    finally:
        listener.close()
    # Closed: the address is free again (nothing on disk to clean up).
    control.listen(os.getpid()).close()


def test_listen_on_taken_address_closes_its_socket():
    listener = control.listen(os.getpid())
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                control.listen(os.getpid())
            except OSError:
                pass
            gc.collect()
    finally:
        listener.close()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_ask_sockets_hands_over_listening_sockets(sockets):
    tcp = get_listening_tcp_socket('127.0.0.1', 0, retry=0)
    udp = get_listening_udp_socket('127.0.0.1', 0, retry=0)
    closed = get_listening_tcp_socket('127.0.0.1', 0, retry=0)
    closed.close()
    sockets += [tcp, udp]
    server = FakeServer([_Sub('web', tcp), _Sub('none', None), _Sub('gone', closed), _Sub('dgram', udp)])
    with Answering(server):
        document, received = control.ask(os.getpid(), 'sockets', timeout=TIMEOUT)
    sockets += received
    assert document == [
        {'section': 'web', 'family': int(socket.AF_INET), 'type': int(socket.SOCK_STREAM),
         'address': ['127.0.0.1', tcp.getsockname()[1]]},
        {'section': 'dgram', 'family': int(socket.AF_INET), 'type': int(socket.SOCK_DGRAM),
         'address': ['127.0.0.1', udp.getsockname()[1]]},
    ]
    assert len(received) == 2
    got_tcp, got_udp = received
    # New descriptors for the same sockets, in the document's order.
    assert got_tcp.fileno() not in (tcp.fileno(), udp.fileno())
    assert got_tcp.getsockname() == tcp.getsockname() and got_tcp.type == socket.SOCK_STREAM
    assert got_udp.getsockname() == udp.getsockname() and got_udp.type == socket.SOCK_DGRAM
    assert got_tcp.family == socket.AF_INET and got_udp.family == socket.AF_INET
    assert os.fstat(got_tcp.fileno()).st_ino == os.fstat(tcp.fileno()).st_ino
    # The originals closed, the received ones still serve the same ports.
    tcp.close()
    udp.close()
    with socket.create_connection(got_tcp.getsockname(), timeout=TIMEOUT) as client:
        got_tcp.settimeout(TIMEOUT)
        conn, peer = got_tcp.accept()
        with conn:
            assert peer == client.getsockname()
            client.sendall(b'ping')
            assert conn.recv(4) == b'ping'
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b'datagram', got_udp.getsockname())
        got_udp.settimeout(TIMEOUT)
        data, peer = got_udp.recvfrom(64)
        assert (data, peer) == (b'datagram', ('127.0.0.1', client.getsockname()[1]))
    assert server.records.messages == []


def test_ask_sockets_with_none_to_give():
    with Answering(FakeServer([_Sub('none', None)])):
        document, received = control.ask(os.getpid(), 'sockets', timeout=TIMEOUT)
    assert (document, received) == ([], [])


def test_ask_stats_returns_snapshot():
    snapshot = {'start_time': 1700000000,
                'web': {'request_count': 12, '0': {'pid': 4321, 'restart_count': 2, 'last_exit': 137, 'backoff': 4}}}
    with Answering(FakeServer([], snapshot)) as answering:
        document, received = control.ask(os.getpid(), 'stats', timeout=TIMEOUT)
        # Several clients, one after the other.
        again, _ = control.ask(os.getpid(), 'stats', timeout=TIMEOUT)
    assert document == snapshot and again == snapshot
    assert received == []
    assert answering.answered == 2


def test_ask_stats_larger_than_one_read():
    big = {'start_time': 1, 'web': {str(i): {'pid': i, 'name': 'x' * 100} for i in range(2000)}}
    assert len(json.dumps(big)) > 1 << 17
    with Answering(FakeServer([], big)):
        document, _ = control.ask(os.getpid(), 'stats', timeout=TIMEOUT)
    assert document == big


def test_ask_unknown_request_is_value_error():
    with Answering(FakeServer([])):
        with pytest.raises(ValueError):
            control.ask(os.getpid(), 'bogus', timeout=TIMEOUT)


def test_ask_nonexistent_pid_raises_oserror():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)  # that pid is gone: nobody listens there
    with pytest.raises(OSError):
        control.ask(pid, 'stats', timeout=TIMEOUT)


@pytest.mark.skipif(os.geteuid() != 0, reason='switching to another user needs root')
def test_client_of_another_user_is_refused():
    nobody = pwd.getpwnam('nobody').pw_uid
    listener = control.listen(os.getpid())
    server = FakeServer([], {'secret': 1})
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()  # no threads running in this test: fork is safe
        if pid == 0:
            os.close(read_end)
            try:
                os.setuid(nobody)
                try:
                    control.ask(os.getppid(), 'stats', timeout=TIMEOUT)
                    result = 'answered'
                except ValueError:
                    result = 'refused'  # closed on it with no answer
                except (BrokenPipeError, ConnectionResetError):
                    result = 'refused'  # closed on it before it had sent its request
                except OSError as err:
                    result = 'oserror %s' % err
            except BaseException as err:  # noqa: B036 - report anything to the parent
                result = 'error %r' % err
            os.write(write_end, result.encode())
            os._exit(0)
        os.close(write_end)
        write_end = None
        assert select.select([listener], [], [], TIMEOUT)[0], 'the client never connected'
        control.answer(listener, server)
        assert select.select([read_end], [], [], TIMEOUT)[0]
        result = os.read(read_end, 200).decode()
        os.waitpid(pid, 0)
    finally:
        listener.close()
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)
    assert result == 'refused'
    assert server.records.messages == [
        ('WARNING', 'control socket: refused a client running as uid %d' % nobody)]


def test_silent_client_times_out_without_hanging_the_server(monkeypatch):
    monkeypatch.setattr(control, 'ANSWER_TIMEOUT', 0.3)
    listener = control.listen(os.getpid())
    server = FakeServer([])
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(control.address(os.getpid()))  # and says nothing
            started = time.monotonic()
            control.answer(listener, server)
            assert 0.25 <= time.monotonic() - started < 3
            client.settimeout(TIMEOUT)
            assert client.recv(10) == b''  # closed on it
    finally:
        listener.close()
    assert [level for level, _ in server.records.messages] == ['WARNING']
    assert server.records.messages[0][1].startswith('control socket: ')


# ---- status_table -------------------------------------------------------------------

SNAPSHOT = {
    'start_time': 1700000000,
    'web': {
        'request_count': 99, 'restart_count': 5,  # rolled up: not rows
        '0': {'pid': 4321, 'restart_count': 2, 'last_exit': 137, 'backoff': 4, 'start_time': 17},
        '1': {'pid': 0, 'restart_count': 3, 'last_exit': 1, 'backoff': 0},
    },
    'echo': {
        '0': {'pid': 65000, 'restart_count': 0, 'last_exit': 0, 'backoff': 0},
    },
    'daemons': {
        'cleaner': {'pid': 7, 'restart_count': 12, 'last_exit': 143, 'backoff': 60},
        'nopid': {'start_time': 3, 'restart_count': 1},
    },
    'odd': 'not a dict',
}


def test_status_table_rows_and_formatting():
    assert status_table(SNAPSHOT) == [
        'subserver  worker   pid    restarts  last exit  backoff',
        'web        0        4321   2         signal 9   4s',
        'web        1        -      3         1          -',
        'echo       0        65000  0         0          -',
        'daemons    cleaner  7      12        signal 15  60s',
    ]


def test_status_table_columns_aligned():
    lines = status_table(SNAPSHOT)
    header = lines[0]
    starts = [header.index(name) for name in ('worker', 'pid', 'restarts', 'last exit', 'backoff')]
    for line in lines[1:]:
        for start in starts:
            assert line[start - 2:start] == '  ' and line[start] != ' ', (line, start)
    assert all(line == line.rstrip() for line in lines)


def test_status_table_empty_and_defaults():
    assert status_table({'start_time': 1}) == ['subserver  worker  pid  restarts  last exit  backoff']
    # Missing counts read as zero; exactly 128 is an exit status, not a signal.
    assert status_table({'s': {'0': {'pid': 5}, '1': {'pid': 6, 'last_exit': 128}}})[1:] == [
        's          0       5    0         0          -',
        's          1       6    0         128        -',
    ]
