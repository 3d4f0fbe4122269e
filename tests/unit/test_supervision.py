"""Tests for brim.service supervision: exit codes, rss, recycling limits,
crash-loop backoff, the watchdog, graceful_timeout, readers, SIGUSR1 and
take_listening_socket.

The supervisor runs in a forked child of the test process (the
``Supervised`` helper of test_service.py), with real workers, signals and
sockets. Whatever the supervisor process reports (status hook calls,
callbacks) it writes to files under tmp_path. Every wait is bounded.
"""

import os
import random
import re
import resource
import signal
import socket
import time

import pytest

from brim.log import reopen_log_files
from brim.service import (
    Recycler, _Child, exit_code, get_listening_tcp_socket, get_listening_udp_socket, heartbeat, rss_bytes,
    take_listening_socket)
from test_service import DEADLINE, Supervised, _gone, _wait_for, _wait_pid, needs_ipv6


def _append(path, text):
    """Append one line atomically (O_APPEND): safe from several processes."""
    fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + '\n').encode())
    finally:
        os.close(fd)


def _read_lines(path):
    return path.read_text().splitlines() if path.exists() else []


def _child_status(body):
    """Fork a child running ``body()``; return its raw waitpid status."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(99)
    status = _wait_pid(pid)
    assert status is not None, 'child %d did not end' % pid
    return status


# ---- exit_code ----------------------------------------------------------------------

@pytest.mark.parametrize('code', [0, 1, 7, 78, 127, 255])
def test_exit_code_of_exit_status(code):
    status = _child_status(lambda: os._exit(code))
    assert os.WIFEXITED(status)
    assert exit_code(status) == code


@pytest.mark.parametrize('signum', [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
def test_exit_code_of_signal(signum):
    def body():
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core dump
        os.kill(os.getpid(), signum)
        time.sleep(DEADLINE)
    status = _child_status(body)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signum
    assert exit_code(status) == 128 + signum


def test_exit_code_of_child_killed_from_outside():
    pid = os.fork()
    if pid == 0:
        time.sleep(DEADLINE)
        os._exit(0)
    os.kill(pid, signal.SIGKILL)
    status = _wait_pid(pid)
    assert status is not None
    assert exit_code(status) == 137


# ---- rss_bytes ----------------------------------------------------------------------

def test_rss_bytes_of_this_process_is_plausible():
    rss = rss_bytes(os.getpid())
    assert isinstance(rss, int)
    assert 1 << 20 < rss < 1 << 36  # more than 1 MiB, less than 64 GiB
    assert rss % os.sysconf('SC_PAGE_SIZE') == 0
    # Never above this process's peak resident size (ru_maxrss: KiB on Linux).
    assert rss <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + (1 << 20)


def test_rss_bytes_grows_with_touched_memory():
    before = rss_bytes(os.getpid())
    block = b'\x01' * (64 << 20)  # written, so resident
    try:
        after = rss_bytes(os.getpid())
        assert after - before >= 48 << 20, (before, after)
    finally:
        del block


def test_rss_bytes_of_a_child():
    pid = os.fork()
    if pid == 0:
        time.sleep(DEADLINE)
        os._exit(0)
    try:
        rss = rss_bytes(pid)
        assert rss is not None and rss > 0
    finally:
        os.kill(pid, signal.SIGKILL)
        _wait_pid(pid)


def test_rss_bytes_of_nonexistent_pid_is_none():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    assert _wait_pid(pid) is not None  # reaped: the pid no longer exists
    assert rss_bytes(pid) is None
    with open('/proc/sys/kernel/pid_max') as fp:
        assert rss_bytes(int(fp.read()) + 1) is None


# ---- Recycler -----------------------------------------------------------------------

def test_recycler_limits_with_jitter_stay_in_range():
    random.seed(12345)
    served = {0: 40, 1: 7}
    recycler = Recycler(served.__getitem__, max_requests=100, max_requests_jitter=10,
                        max_lifetime=5.0, max_lifetime_jitter=2.0)
    requests, lifetimes = set(), []
    for i in range(3000):
        base, limit, lifetime = recycler.limits(i % 2)
        assert base == served[i % 2]
        assert 100 <= limit <= 110
        assert 5.0 <= lifetime <= 7.0
        requests.add(limit)
        lifetimes.append(lifetime)
    assert requests == set(range(100, 111))  # both ends reachable
    assert max(lifetimes) - min(lifetimes) > 1.8  # spread over the jitter
    assert min(lifetimes) < 5.2 and max(lifetimes) > 6.8


def test_recycler_limits_without_jitter_or_off():
    recycler = Recycler(lambda i: 3, max_requests=50, max_lifetime=9.5)
    assert {recycler.limits(0) for _ in range(50)} == {(3, 50, 9.5)}
    # Off (0) stays off whatever the jitter.
    off = Recycler(lambda i: 0, max_requests=0, max_requests_jitter=10, max_lifetime=0.0, max_lifetime_jitter=5.0)
    assert {off.limits(0) for _ in range(50)} == {(0, 0, 0.0)}
    assert not off.active()
    assert not Recycler(lambda i: 0, min_lifetime=5.0).active()
    assert Recycler(lambda i: 0, max_rss=1).active()


def _child(recycler, counts, started=100.0, pid=None):
    child = _Child(pid if pid is not None else os.getpid(), 0, 0, started)
    child.base_served, child.max_requests, child.max_lifetime = recycler.limits(0)
    return child


def test_recycler_max_requests_counts_served_since_start():
    counts = {0: 1000}
    recycler = Recycler(counts.__getitem__, max_requests=10)
    child = _child(recycler, counts)
    assert (child.base_served, child.max_requests) == (1000, 10)
    assert recycler.reason(child, 200.0) is None
    counts[0] = 1009
    assert recycler.reason(child, 200.0) is None
    counts[0] = 1010
    assert recycler.reason(child, 200.0) == 'served 10 requests (max_requests)'
    counts[0] = 1025
    assert recycler.reason(child, 200.0) == 'served 25 requests (max_requests)'


def test_recycler_min_lifetime_respected():
    counts = {0: 0}
    recycler = Recycler(counts.__getitem__, max_requests=1, max_lifetime=2.0, max_rss=1, min_lifetime=30.0)
    child = _child(recycler, counts, started=100.0)
    counts[0] = 500
    # Every limit is passed, but the worker is young.
    assert recycler.reason(child, 100.0) is None
    assert recycler.reason(child, 129.9) is None
    assert recycler.reason(child, 130.0) == 'served 500 requests (max_requests)'


def test_recycler_max_lifetime():
    recycler = Recycler(lambda i: 0, max_lifetime=30.0)
    child = _child(recycler, None, started=100.0)
    assert recycler.reason(child, 129.9) is None
    assert recycler.reason(child, 130.0) == 'ran 30 seconds (max_lifetime)'
    assert recycler.reason(child, 200.4) == 'ran 100 seconds (max_lifetime)'


def test_recycler_max_rss_uses_real_rss():
    tiny = Recycler(lambda i: 0, max_rss=1)
    child = _child(tiny, None, pid=os.getpid())
    reason = tiny.reason(child, 100.0)
    assert reason is not None
    match = re.fullmatch(r'uses (\d+\.\d) MiB resident \(max_rss 0 MiB\)', reason)
    assert match, reason
    assert abs(float(match.group(1)) - rss_bytes(os.getpid()) / 2 ** 20) < 16
    # A limit far above the real size: no reason.
    huge = Recycler(lambda i: 0, max_rss=1 << 45)
    assert huge.reason(_child(huge, None), 100.0) is None
    # A process that is gone (no /proc entry): no reason either.
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    _wait_pid(pid)
    assert tiny.reason(_child(tiny, None, pid=pid), 100.0) is None


# ---- sustain_workers: crash-loop backoff -------------------------------------------------

def _status_hook(tmp_path):
    path = tmp_path / 'status'

    def status(index, pid, restarts, recycles, last_exit, backoff):
        _append(path, '%d %d %d %d %d %r' % (index, pid, restarts, recycles, last_exit, backoff))
    return status, path


def _parse_status(path):
    rows = []
    for line in _read_lines(path):
        index, pid, restarts, recycles, last_exit, backoff = line.split()
        rows.append((int(index), int(pid), int(restarts), int(recycles), int(last_exit), float(backoff)))
    return rows


@pytest.mark.timeout(60)
def test_crash_loop_backoff_doubles_and_caps(tmp_path):
    def body(index, tmp):
        _append(tmp / 'starts', repr(time.monotonic()))
        return 3

    status, status_path = _status_hook(tmp_path)
    with Supervised(tmp_path, 1, body, respawn_interval=0.2, max_backoff=0.8, status=status) as sup:
        assert _wait_for(lambda: len(_read_lines(tmp_path / 'starts')) >= 6), _read_lines(tmp_path / 'starts')
        os.kill(sup.pid, signal.SIGKILL)
        assert sup.wait_exit() is not None
        starts = [float(x) for x in _read_lines(tmp_path / 'starts')][:6]
        log = sup.log()
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    expected = [0.2, 0.4, 0.8, 0.8, 0.8]
    for gap, want in zip(gaps, expected, strict=True):
        assert gap >= 0.9 * want, (gaps, expected)
    # Doubling: the third gap is well over the first; capped: the later
    # gaps did not double again (1.6 s) past max_backoff.
    assert gaps[2] > 2.5 * 0.2
    assert gaps[3] < 1.4 and gaps[4] < 1.4, gaps

    rows = _parse_status(status_path)
    exits = [row for row in rows if row[1] == 0]
    spawns = [row for row in rows if row[1] != 0]
    assert len(spawns) >= 5 and len(exits) >= 5, rows
    # Each exit counts a restart, reports exit status 3 and the backoff in force.
    assert [r[2] for r in exits[:5]] == [1, 2, 3, 4, 5]
    assert {r[4] for r in exits} == {3}
    assert [r[5] for r in exits[:5]] == [0.0, 0.4, 0.8, 0.8, 0.8]
    # A start clears the backoff and keeps the restart count.
    assert [(r[2], r[5]) for r in spawns[:5]] == [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0)]
    assert {r[3] for r in rows} == {0}  # nothing recycled
    assert re.search(r'worker 0 \(pid \d+\) exited: exit status 3; restarting it', log)
    assert re.search(r'worker 0 \(pid \d+\) exited after \d+\.\d s: exit status 3; '
                     r'crash loop \(2 quick exits in a row\): restarting it in 0\.4 s', log), log
    assert re.search(r'crash loop \(4 quick exits in a row\): restarting it in 0\.8 s', log), log


# ---- sustain_workers: watchdog ------------------------------------------------------

def _beat_once_then_block(index, tmp):
    if len(list(tmp.glob('w.%d.*' % index))) == 1:
        heartbeat()
        _append(tmp / ('beat.%d' % os.getpid()), repr(time.monotonic()))
        time.sleep(60)
        return 0
    time.sleep(30)  # the replacement: never beats, never watched
    return 0


@pytest.mark.timeout(60)
def test_watchdog_kills_stuck_worker_and_replaces_it(tmp_path):
    with Supervised(tmp_path, 1, _beat_once_then_block, respawn_interval=0.1, worker_timeout=0.5) as sup:
        (_, stuck), = sup.wait_workers(1).items()
        beat_file = tmp_path / ('beat.%d' % stuck)
        assert _wait_for(lambda: beat_file.exists())
        beat = float(beat_file.read_text())
        assert _wait_for(lambda: _gone(stuck), timeout=5.0), 'stuck worker not killed'
        gone_at = time.monotonic()
        assert gone_at - beat >= 0.5  # not before worker_timeout
        assert gone_at - beat < 0.5 + 2.0
        assert _wait_for(lambda: len(sup.started(0)) == 2, timeout=3.0), sup.started()
        (_, first), (_, second) = sup.started(0)
        assert first == stuck and not _gone(second)
        assert _wait_for(lambda: 'exited: signal SIGKILL' in sup.log())
        log = sup.log()
    assert re.search(r'worker 0 \(pid %d\) is stuck: its event loop has not run for \d+\.\d s '
                     r'\(worker_timeout 0\.5 s\); killing it' % stuck, log), log
    assert re.search(r'worker 0 \(pid %d\) exited: signal SIGKILL \(stuck for \d+\.\d s, worker_timeout 0\.5 s\); '
                     r'restarting it' % stuck, log), log


@pytest.mark.timeout(60)
def test_watchdog_spares_workers_that_beat_or_never_beat(tmp_path):
    def body(index, tmp):
        if index == 0:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                heartbeat()
                time.sleep(0.1)
        else:
            time.sleep(30)  # never calls heartbeat(): not watched
        return 0

    with Supervised(tmp_path, 2, body, worker_timeout=0.4) as sup:
        running = sup.wait_workers(2)
        time.sleep(1.5)  # several worker_timeouts
        assert sup.running() == running
        assert len(sup.started()) == 2
        assert 'stuck' not in sup.log()


def test_heartbeat_outside_a_sustained_child_does_nothing():
    heartbeat()  # no supervisor: must not raise


# ---- sustain_workers: graceful_timeout ----------------------------------------------

def _ignore_hup(index, tmp):
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    (tmp / ('ready.%d' % index)).touch()
    time.sleep(30)
    return 0


@pytest.mark.timeout(60)
def test_graceful_timeout_kills_worker_ignoring_sighup(tmp_path):
    with Supervised(tmp_path, 1, _ignore_hup, graceful_timeout=0.6) as sup:
        (_, pid), = sup.wait_workers(1).items()
        assert _wait_for(lambda: (tmp_path / 'ready.0').exists())
        hup_at = time.monotonic()
        os.kill(sup.pid, signal.SIGHUP)
        status = sup.wait_exit(timeout=5.0)
        elapsed = time.monotonic() - hup_at
        assert status is not None, 'supervisor still waiting'
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert elapsed >= 0.6 * 0.9
        assert _gone(pid)
        log = sup.log()
    # 'still running 0.6 s after SIGHUP (graceful_timeout)', or 'past graceful_timeout (0.6 s)'.
    assert re.search(r'worker 0 \(pid %d\) still running .*\b0\.6 s\b.*SIGHUP.*; killing it' % pid, log), log
    assert re.search(r'worker 0 \(pid %d\) still running .*graceful_timeout.*; killing it' % pid, log), log
    assert 'worker 0 (pid %d) exited: signal SIGKILL' % pid in log
    assert len(re.findall(r'worker 0 \(pid \d+\) exited', log)) == 1  # nothing respawned


@pytest.mark.timeout(60)
def test_graceful_timeout_zero_waits_until_term(tmp_path):
    with Supervised(tmp_path, 1, _ignore_hup, graceful_timeout=0) as sup:
        (_, pid), = sup.wait_workers(1).items()
        assert _wait_for(lambda: (tmp_path / 'ready.0').exists())
        os.kill(sup.pid, signal.SIGHUP)
        assert _wait_for(lambda: 'SIGHUP received' in sup.log())
        # Waits for ever: still waiting well after the HUP, worker untouched.
        assert _wait_pid(sup.pid, timeout=1.5) is None
        assert not _gone(pid)
        assert 'graceful_timeout' not in sup.log()
        os.kill(sup.pid, signal.SIGTERM)
        status = sup.wait_exit(timeout=DEADLINE)
        assert status is not None and os.WIFEXITED(status)
        assert _wait_for(lambda: _gone(pid))
        log = sup.log()
    assert 'worker: SIGTERM received; relaying to 1 children' in log
    assert 'worker 0 (pid %d) exited: signal SIGTERM' % pid in log


# ---- sustain_workers: recycling -----------------------------------------------------

def _beating_until_hup(index, tmp):
    got = []
    signal.signal(signal.SIGHUP, lambda signum, frame: got.append(signum))
    _append(tmp / 'events', 'start %d' % os.getpid())
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        heartbeat()
        time.sleep(0.02)
    _append(tmp / 'events', 'hup %d' % os.getpid())
    return 0


@pytest.mark.timeout(60)
def test_recycling_max_lifetime_replacement_serves_first(tmp_path):
    status, status_path = _status_hook(tmp_path)
    recycler = Recycler(lambda i: 0, max_lifetime=0.6)
    with Supervised(tmp_path, 1, _beating_until_hup, recycler=recycler, status=status) as sup:
        (_, first), = sup.wait_workers(1).items()
        assert _wait_for(lambda: 'retired' in sup.log()), sup.log()
        log = sup.log()
        events = _read_lines(tmp_path / 'events')
    second = [pid for _, pid in sup.started(0) if pid != first][0]
    assert re.search(r'worker 0 \(pid %d\) ran \d+ seconds \(max_lifetime\); starting its replacement' % first, log)
    assert 'worker 0 (pid %d) is serving; retiring pid %d gracefully' % (second, first) in log
    assert re.search(r'worker 0 \(pid %d\) retired \(ran \d+ seconds \(max_lifetime\)\): exit status 0' % first, log)
    assert 'restarting it' not in log
    # The replacement started before the old one was told to go.
    assert events[:3] == ['start %d' % first, 'start %d' % second, 'hup %d' % first], events
    rows = _parse_status(status_path)
    assert any(r[3] == 1 and r[2] == 0 for r in rows), rows  # a recycle, not a restart


# ---- sustain_workers: readers and SIGUSR1 -------------------------------------------

@pytest.mark.timeout(60)
def test_readers_callback_called_when_fd_readable(tmp_path):
    read_end, write_end = os.pipe()

    def on_readable():
        _append(tmp_path / 'got', os.read(read_end, 100).decode())

    def body(index, tmp):
        try:
            os.fstat(read_end)
            state = 'open'
        except OSError:
            state = 'closed'
        _append(tmp / 'child_fd', state)
        time.sleep(30)

    try:
        with Supervised(tmp_path, 1, body, readers={read_end: on_readable}) as sup:
            sup.wait_workers(1)
            assert _wait_for(lambda: (tmp_path / 'child_fd').exists())
            os.write(write_end, b'first')
            assert _wait_for(lambda: _read_lines(tmp_path / 'got') == ['first']), _read_lines(tmp_path / 'got')
            os.write(write_end, b'second')
            assert _wait_for(lambda: _read_lines(tmp_path / 'got') == ['first', 'second'])
            # The worker does not hold the supervisor's watched descriptor.
            assert _read_lines(tmp_path / 'child_fd') == ['closed']
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.timeout(60)
def test_sigusr1_calls_on_usr1_and_is_relayed(tmp_path):
    def body(index, tmp):
        got = []
        signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
        (tmp / ('ready.%d.%d' % (index, os.getpid()))).touch()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if got:
                _append(tmp / ('usr1.%d' % os.getpid()), str(len(got)))
                got.clear()
            time.sleep(0.01)
        return 0

    def on_usr1():
        _append(tmp_path / 'on_usr1', str(os.getpid()))
        reopen_log_files()

    with Supervised(tmp_path, 2, body, on_usr1=on_usr1) as sup:
        running = sup.wait_workers(2)
        assert _wait_for(lambda: len(list(tmp_path.glob('ready.*'))) == 2)
        # logrotate-style: move the supervisor's log away, then SIGUSR1.
        assert (tmp_path / 'sup.log').exists()
        os.rename(tmp_path / 'sup.log', tmp_path / 'sup.log.1')
        os.kill(sup.pid, signal.SIGUSR1)
        assert _wait_for(lambda: _read_lines(tmp_path / 'on_usr1') == [str(sup.pid)])
        for pid in running.values():
            assert _wait_for(lambda pid=pid: (tmp_path / ('usr1.%d' % pid)).exists()), pid
        assert sup.running() == running  # relayed, nobody died of it
        # The supervisor's next log line goes to a new file at the old path.
        os.kill(running[1], signal.SIGKILL)
        assert _wait_for(lambda: 'worker 1 (pid %d) exited: signal SIGKILL' % running[1] in sup.log())
        assert 'exited' not in (tmp_path / 'sup.log.1').read_text()


# ---- take_listening_socket ----------------------------------------------------------

def test_take_listening_socket_matches_type_address_port(sockets):
    tcp = get_listening_tcp_socket('127.0.0.1', 0, retry=0)
    udp = get_listening_udp_socket('127.0.0.1', 0, retry=0)
    sockets += [tcp, udp]
    tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
    pool = [udp, tcp]
    # Wrong type, wrong address, wrong port, port 0: no match, nothing removed.
    if udp_port != tcp_port:
        assert take_listening_socket(pool, '127.0.0.1', tcp_port, socket.SOCK_DGRAM) is None
        assert take_listening_socket(pool, '127.0.0.1', udp_port, socket.SOCK_STREAM) is None
    assert take_listening_socket(pool, '127.0.0.2', tcp_port, socket.SOCK_STREAM) is None
    assert take_listening_socket(pool, '127.0.0.1', tcp_port ^ 1, socket.SOCK_STREAM) is None
    assert take_listening_socket(pool, '127.0.0.1', 0, socket.SOCK_STREAM) is None
    assert take_listening_socket(pool, '127.0.0.1', 0, socket.SOCK_DGRAM) is None
    assert pool == [udp, tcp]
    # Matches remove the socket from the list.
    assert take_listening_socket(pool, '127.0.0.1', tcp_port, socket.SOCK_STREAM) is tcp
    assert pool == [udp]
    assert take_listening_socket(pool, '127.0.0.1', tcp_port, socket.SOCK_STREAM) is None
    assert take_listening_socket(pool, '127.0.0.1', udp_port, socket.SOCK_DGRAM) is udp
    assert pool == []


def test_take_listening_socket_wildcard_and_closed_sockets(sockets):
    any_tcp = get_listening_tcp_socket('*', 0, retry=0)
    closed = get_listening_tcp_socket('*', 0, retry=0)  # same family: skipped as closed
    sockets += [any_tcp, closed]
    port = any_tcp.getsockname()[1]
    closed.close()
    pool = [closed, any_tcp]
    assert take_listening_socket(pool, '127.0.0.1', port, socket.SOCK_STREAM) is None  # '*' is not 127.0.0.1
    assert take_listening_socket(pool, '*', port, socket.SOCK_STREAM) is any_tcp  # the closed one is skipped
    assert pool == [closed]


@needs_ipv6
def test_take_listening_socket_ipv6(sockets):
    v6 = get_listening_tcp_socket('::1', 0, retry=0)
    v6udp = get_listening_udp_socket('::1', 0, retry=0)
    sockets += [v6, v6udp]
    port = v6.getsockname()[1]
    pool = [v6udp, v6]
    assert take_listening_socket(pool, '127.0.0.1', port, socket.SOCK_STREAM) is None
    assert take_listening_socket(pool, '::2', port, socket.SOCK_STREAM) is None
    assert take_listening_socket(pool, '::1', port, socket.SOCK_STREAM) is v6
    assert take_listening_socket(pool, '0:0:0:0:0:0:0:1', v6udp.getsockname()[1], socket.SOCK_DGRAM) is v6udp
    assert pool == []
