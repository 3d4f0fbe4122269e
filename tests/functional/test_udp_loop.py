"""The UDP receive loop (issue 7): handlers run inline in the worker's loop
unless their class says ``blocks = True``, then one green thread each.

Real brimd processes on 127.0.0.1; every reply says which worker (pid),
which green thread and which handler instance answered, so the tests check
how datagrams ran from what came back, never from elapsed time.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from typing import Optional

import pytest

from brim.server.udp import BURST, handler_blocks
from brim.udp_echo import UDPEcho
from harness import REPO, free_port, get_stats, group_members, port_accepts, process_state, wait_until

APPS = '''
import os
import time

import eventlet

#: Every green thread that has run a handler in this worker. Holding them
#: keeps them alive, so no two can share an id() and the count is exact.
THREADS = set()
MADE = [0]


class Inline:
    """Inline (no blocks attribute). Replies b'<pid> <threads> <instance> <payload>':
    threads is how many green threads have run a handler in this worker,
    instance the number of this instance in the worker (1, 2 ...).
    b'boom' raises; b'slow' logs "slow start", waits 1 s (green), then replies;
    b'burn' computes for 1 ms (never yielding) and does not reply."""

    def __init__(self, name, parsed_conf):
        MADE[0] += 1
        self.number = MADE[0]

    def __call__(self, subserver, stats, sock, datagram, ip, port):
        THREADS.add(eventlet.getcurrent())
        if datagram == b'boom':
            raise RuntimeError('boom on purpose')
        if datagram == b'burn':
            until = time.perf_counter() + 0.001
            while time.perf_counter() < until:
                pass
            return
        if datagram == b'slow':
            subserver.logger.info('slow start')
            eventlet.sleep(1)
        sock.sendto(b'%d %d %d %s' % (os.getpid(), len(THREADS), self.number, datagram), (ip, port))


class InlineBlocks(Inline):
    """Inline's answers, each datagram in its own green thread."""

    blocks = True


class Sleeper:
    """blocks = True. For b'<want>:<tag>': sleeps 0.5 s (green), then until
    <want> datagrams have been in progress at once (10 s at most), then
    replies b'<pid> <green thread id> <most in progress at once> <tag>'."""

    blocks = True
    active = 0
    peak = 0

    def __init__(self, name, parsed_conf):
        pass

    def __call__(self, subserver, stats, sock, datagram, ip, port):
        cls = type(self)
        cls.active += 1
        cls.peak = max(cls.peak, cls.active)
        try:
            want, _, tag = datagram.partition(b':')
            eventlet.sleep(0.5)
            deadline = time.monotonic() + 10
            while cls.peak < int(want) and time.monotonic() < deadline:
                eventlet.sleep(0.05)
            sock.sendto(b'%d %d %d %s' % (os.getpid(), id(eventlet.getcurrent()), cls.peak, tag), (ip, port))
        finally:
            cls.active -= 1
'''

CONF = '''
[udp]
port = %(udp)d
workers = %(workers)d
call = udploopapps.%(call)s
%(options)s

[wsgi]
port = %(wsgi)d
apps = stats

[stats]
call = brim.wsgi_stats.WSGIStats
'''


def deploy(brimd, call: str = 'Inline', workers: int = 1, **options: object) -> tuple[int, int, int]:
    """Start brimd with ``[udp] call = udploopapps.<call>`` (``options`` in
    [udp]) and a /stats WSGI port; return (main pid, udp port, wsgi port)
    once it serves (``brimd start`` returns when every worker serves)."""
    udp, wsgi = free_port(), free_port()
    brimd.write_module('udploopapps', APPS)
    brimd.write_conf(CONF % dict(udp=udp, wsgi=wsgi, workers=workers, call=call,
                                 options=''.join('%s = %s\n' % item for item in options.items())))
    main = brimd.start()
    wait_until(lambda: port_accepts(wsgi), what='wsgi port')
    return main, udp, wsgi


def client(timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    return sock


def exchange(sock: socket.socket, port: int, payload: bytes) -> list[bytes]:
    """Send ``payload``; the reply split into its fields."""
    sock.sendto(payload, ('127.0.0.1', port))
    return sock.recvfrom(65536)[0].split()


def answer(sock: socket.socket, port: int, payload: bytes) -> Optional[list[bytes]]:
    """Send ``payload``; its reply split into fields, or None if none came
    within the socket's timeout (replies to earlier sends are skipped)."""
    sock.sendto(payload, ('127.0.0.1', port))
    try:
        while True:
            reply = sock.recvfrom(65536)[0].split()
            if reply[-1] == payload:
                return reply
    except TimeoutError:
        return None


def gone(pid: int) -> bool:
    return process_state(pid) in (None, 'Z')


def test_handler_blocks_is_read_from_the_class():
    class Plain:
        pass

    class Waits:
        blocks = True

    class SaysNo:
        blocks = False

    assert [handler_blocks(cls) for cls in (Plain, Waits, SaysNo)] == [False, True, False]
    assert handler_blocks(UDPEcho) is False  # the sample app runs inline
    assert BURST >= 1


REPLY_SOCKET_CHECK = """
from brim.server.subserver import import_eventlet
from brim.server.udp import reply_socket


class Raw:
    \"\"\"A raw socket whose send buffer is full for the first ``full`` sendto calls.\"\"\"

    def __init__(self, full, error=None):
        self.full, self.error, self.sent = full, error, []

    def sendto(self, data, address):
        if self.error is not None:
            raise self.error
        if self.full:
            self.full -= 1
            raise BlockingIOError(11, 'full')
        self.sent.append((data, address))
        return len(data)

    def gettimeout(self):
        return None

    def fileno(self):
        return -1

    bind = close = getsockname = getsockopt = listen = setsockopt = shutdown = None


eventlet = import_eventlet()
for full in (0, 1):
    raw = Raw(full)
    sock = reply_socket(eventlet, raw)
    assert isinstance(sock, eventlet.greenio.GreenSocket)
    assert sock.sendto(b'abc', ('127.0.0.1', 9)) == 3
    assert raw.sent == [(b'abc', ('127.0.0.1', 9))] and raw.full == 0
try:
    reply_socket(eventlet, Raw(0, ConnectionRefusedError(111, 'refused'))).sendto(b'x', ('127.0.0.1', 9))
except ConnectionRefusedError:
    print('ok')
"""


def test_reply_socket_sends_at_once_and_waits_only_when_full():
    """``sock.sendto`` in a handler: the raw socket first, Eventlet's
    (waiting) path after a BlockingIOError; errors as they come. In a child
    process: Eventlet stays out of the test process."""
    result = subprocess.run([sys.executable, '-c', REPLY_SOCKET_CHECK], capture_output=True, text=True, timeout=60,
                            cwd=str(REPO))
    assert (result.returncode, result.stdout.strip()) == (0, 'ok'), result.stderr


def test_inline_handler_answers_everything_from_the_loops_own_green_thread(brimd):
    _, udp, wsgi = deploy(brimd, workers=2)
    sent = 0
    by_pid: dict[int, list[int]] = {}
    with client() as sock:
        for window in range(40):  # 40 windows of 50 outstanding datagrams
            payloads = {b'%d' % (window * 50 + i) for i in range(50)}
            for payload in payloads:
                sock.sendto(payload, ('127.0.0.1', udp))
            sent += len(payloads)
            while payloads:
                pid, threads, _, payload = sock.recvfrom(65536)[0].split()
                payloads.remove(payload)
                by_pid.setdefault(int(pid), []).append(int(threads))
    # In each worker every datagram ran in one and the same green thread.
    assert {pid: set(threads) for pid, threads in by_pid.items()} == {pid: {1} for pid in by_pid}

    def counted():
        stats = get_stats(wsgi)['udp']
        return stats if stats['datagram_count'] == sent else None
    stats = wait_until(counted, what='datagram_count to reach %d' % sent)
    per_worker = {stats[bucket]['pid']: stats[bucket]['datagram_count'] for bucket in ('0', '1')}
    assert {pid: len(threads) for pid, threads in by_pid.items()} == {
        pid: count for pid, count in per_worker.items() if count}


def test_blocking_handler_gets_a_green_thread_per_datagram(brimd):
    _, udp, _ = deploy(brimd, 'Sleeper')
    with client(30) as sock:
        tags = {b'a', b'b', b'c', b'd'}
        for tag in tags:
            sock.sendto(b'4:' + tag, ('127.0.0.1', udp))
        replies = [sock.recvfrom(65536)[0].split() for _ in tags]
    # All four were in progress at once, each in a green thread of its own.
    assert {reply[3] for reply in replies} == tags
    assert {int(reply[2]) for reply in replies} == {4}
    assert len({reply[1] for reply in replies}) == 4 and len({reply[0] for reply in replies}) == 1


def test_blocking_handler_is_capped_by_concurrent_per_worker(brimd):
    _, udp, _ = deploy(brimd, 'Sleeper', concurrent_per_worker=2)
    with client(30) as sock:
        tags = {b'a', b'b', b'c', b'd', b'e'}
        for tag in tags:
            sock.sendto(b'2:' + tag, ('127.0.0.1', udp))
        replies = [sock.recvfrom(65536)[0].split() for _ in tags]
    # Every datagram was answered; never more than two were in progress.
    assert {reply[3] for reply in replies} == tags
    assert {int(reply[2]) for reply in replies} == {2}


def test_inline_handler_that_raises_is_replaced_in_the_same_worker(brimd):
    _, udp, wsgi = deploy(brimd)
    with client() as sock:
        pid, threads, instance, payload = exchange(sock, udp, b'before')
        assert (threads, instance, payload) == (b'1', b'1', b'before')
        sock.sendto(b'boom', ('127.0.0.1', udp))
        # The next datagram is answered by a new instance, in the same
        # worker and the same green thread.
        assert exchange(sock, udp, b'after') == [pid, b'1', b'2', b'after']
    log = brimd.wait_log('udp raised: ')
    assert 'boom on purpose' in log and 'using a new instance for what comes next' in log
    stats = get_stats(wsgi)['udp']
    assert stats['datagram_count'] == 3 and stats['restart_count'] == 0 and stats['0']['pid'] == int(pid)


def test_flood_does_not_starve_the_watchdog(brimd):
    """Datagrams always waiting (each takes the handler 1 ms of computing;
    they come far faster): the inline loop never finds the socket empty,
    yet it yields to the hub every BURST datagrams, so the heartbeat goes
    on and the watchdog (worker_timeout = 1 s) leaves the worker alone."""
    _, udp, wsgi = deploy(brimd, worker_timeout=1)
    with client() as sock:
        pid = exchange(sock, udp, b'first')[0]
    done = threading.Event()

    def flood() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flooder:
            flooder.setblocking(False)
            deadline = time.monotonic() + 3  # three worker_timeouts
            while time.monotonic() < deadline:  # some 10,000 a second: ten times what it handles
                for _ in range(50):
                    try:
                        flooder.sendto(b'burn', ('127.0.0.1', udp))
                    except BlockingIOError:
                        break
                time.sleep(0.005)
        done.set()
    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    thread.join(20)
    assert done.is_set()
    with client(1) as sock:
        # The receive buffer may still be full of the flood: resend until answered.
        assert wait_until(lambda: answer(sock, udp, b'last'), 20, interval=0, what='an answer')[0] == pid
    stats = get_stats(wsgi)['udp']
    assert stats['datagram_count'] > 2 and stats['restart_count'] == 0
    assert 'killing it' not in brimd.log()


@pytest.mark.parametrize('call', ['Inline', 'InlineBlocks'])
def test_graceful_shutdown_lets_the_datagram_in_hand_reply(brimd, call):
    main, udp, _ = deploy(brimd, call)
    with client() as sock:
        pid = int(exchange(sock, udp, b'hello')[0])
        sock.sendto(b'slow', ('127.0.0.1', udp))
        brimd.wait_log('slow start')
        shutdown = brimd.run('shutdown')
        assert shutdown.returncode == 0, shutdown.stderr
        # Answered although the shutdown came while it waited.
        assert sock.recvfrom(65536)[0].split() == [b'%d' % pid, b'1' if call == 'Inline' else b'2', b'1', b'slow']
    wait_until(lambda: gone(pid), 10, what='the worker to exit')
    wait_until(lambda: not group_members(main), 10, what='every brimd process to exit')
    log = brimd.log()
    assert 'cutting' not in log and 'raised' not in log


def test_graceful_shutdown_of_an_idle_inline_loop_releases_the_port(brimd):
    main, udp, _ = deploy(brimd, workers=2)
    with client() as sock:
        exchange(sock, udp, b'hello')
    shutdown = brimd.run('shutdown')
    assert shutdown.returncode == 0, shutdown.stderr
    wait_until(lambda: not group_members(main), 10, what='every brimd process to exit')

    def bindable() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(('127.0.0.1', udp))
                return True
            except OSError:
                return False
    wait_until(bindable, 5, what='the UDP port to be released')
    assert 'cutting' not in brimd.log()


def test_restart_with_an_inline_handler_loses_no_datagram(brimd):
    old_main, udp, _ = deploy(brimd, workers=2)
    with client() as sock:
        old_pids = {int(exchange(sock, udp, b'%d' % i)[0]) for i in range(20)}
    failures: list[str] = []
    answered_by: list[int] = []  # the pid of each answer (list.append is atomic)
    stop = threading.Event()

    def load() -> None:
        n = 0
        with client(10) as sock:
            while not stop.is_set():
                n += 1
                payload = b'load%d' % n
                try:
                    reply = exchange(sock, udp, payload)
                except OSError as err:
                    failures.append('%r: %s' % (payload, err))
                    continue
                if reply[3] != payload:
                    failures.append('%r answered %r' % (payload, reply))
                answered_by.append(int(reply[0]))
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(answered_by) >= 20, what='the load to run')
        restart = brimd.run('restart')
        assert restart.returncode == 0, restart.stderr
        assert brimd.pid() != old_main
        wait_until(lambda: gone(old_main) and all(gone(pid) for pid in old_pids), 40,
                   what='the old server to retire')
        seen = len(answered_by)
        wait_until(lambda: len(answered_by) >= seen + 20, what='the new workers to answer')
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and not failures
    assert set(answered_by[-20:]).isdisjoint(old_pids)
    log = brimd.log()
    assert 'cutting' not in log and 'raised' not in log
