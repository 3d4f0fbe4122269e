"""Tests for brim.service: signals, statuses, listening sockets, sustain_workers.

The sustain_workers tests run the supervisor in a forked child of the test
process, with real workers and real signals; every wait is bounded and every
process started is killed by pid in a ``finally``.
"""

import errno
import os
import re
import signal
import socket
import threading
import time

import pytest

from brim.errors import StartupError
from brim.log import get_logger
from brim.server.pidfile import process_state
from brim import service
from brim.service import (
    EXIT_BOOT_FAILED, describe_status, get_listening_tcp_socket, get_listening_udp_socket, signum2str,
    sustain_workers)

DEADLINE = 10.0  # seconds: the longest any single wait here may take


def _ipv6_works():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(('::1', 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_works(), reason='IPv6 on ::1 not available')


# ---- signum2str / describe_status ------------------------------------------------

@pytest.mark.parametrize('signum, name', [
    (signal.SIGHUP, 'SIGHUP'), (1, 'SIGHUP'), (2, 'SIGINT'), (9, 'SIGKILL'), (15, 'SIGTERM'),
    (signal.SIGCHLD, 'SIGCHLD'), (signal.SIGUSR1, 'SIGUSR1'),
    (0, 'UNKNOWN'), (-1, 'UNKNOWN'), (999, 'UNKNOWN'),
])
def test_signum2str(signum, name):
    assert signum2str(signum) == name


@pytest.mark.parametrize('status, text', [
    (0, 'exit status 0'),
    (1 << 8, 'exit status 1'),
    (EXIT_BOOT_FAILED << 8, 'exit status 78'),
    (255 << 8, 'exit status 255'),
    (signal.SIGKILL, 'signal SIGKILL'),
    (signal.SIGTERM, 'signal SIGTERM'),
    (signal.SIGSEGV | 0x80, 'signal SIGSEGV'),  # with core dump
    ((signal.SIGSTOP << 8) | 0x7f, 'status %d' % ((signal.SIGSTOP << 8) | 0x7f)),  # stopped
])
def test_describe_status(status, text):
    assert describe_status(status) == text


@pytest.mark.timeout(30)
@pytest.mark.parametrize('how, text', [
    ('exit3', 'exit status 3'),
    ('kill', 'signal SIGKILL'),
])
def test_describe_status_of_real_child(how, text):
    pid = os.fork()
    if pid == 0:
        try:
            if how == 'kill':
                os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(10)
        finally:
            os._exit(3)
    try:
        status = _wait_pid(pid)
        assert status is not None
        assert describe_status(status) == text
    finally:
        _kill_and_reap(pid)


def test_exit_boot_failed_is_ex_config():
    assert EXIT_BOOT_FAILED == 78


# ---- listening sockets ------------------------------------------------------------

def _check_tcp(sock, host):
    assert sock.type == socket.SOCK_STREAM
    assert sock.get_inheritable() is True
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    port = sock.getsockname()[1]
    assert port != 0
    with socket.create_connection((host, port), timeout=5) as client:
        sock.settimeout(5)
        conn, _ = sock.accept()
        with conn:
            client.sendall(b'ping')
            assert conn.recv(4) == b'ping'


def _check_udp(sock, host, family):
    assert sock.type == socket.SOCK_DGRAM
    assert sock.get_inheritable() is True
    port = sock.getsockname()[1]
    assert port != 0
    with socket.socket(family, socket.SOCK_DGRAM) as client:
        client.sendto(b'datagram', (host, port))
        sock.settimeout(5)
        data, _ = sock.recvfrom(100)
        assert data == b'datagram'


@pytest.mark.parametrize('ip, family, host', [
    ('127.0.0.1', socket.AF_INET, '127.0.0.1'),
    ('localhost', None, 'localhost'),
    pytest.param('::1', socket.AF_INET6, '::1', marks=needs_ipv6),
])
def test_get_listening_tcp_socket(ip, family, host):
    sock = get_listening_tcp_socket(ip, 0, backlog=8, retry=0)
    try:
        if family is not None:
            assert sock.family == family
        _check_tcp(sock, host)
    finally:
        sock.close()


@pytest.mark.parametrize('ip, family, host', [
    ('127.0.0.1', socket.AF_INET, '127.0.0.1'),
    pytest.param('::1', socket.AF_INET6, '::1', marks=needs_ipv6),
])
def test_get_listening_udp_socket(ip, family, host):
    sock = get_listening_udp_socket(ip, 0, retry=0)
    try:
        assert sock.family == family
        _check_udp(sock, host, family)
    finally:
        sock.close()


def test_get_listening_tcp_socket_every_address():
    sock = get_listening_tcp_socket('*', 0, retry=0)
    try:
        if sock.family == socket.AF_INET6:
            assert sock.getsockname()[0] == '::'
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        else:
            assert sock.getsockname()[0] == '0.0.0.0'
        # Dual stack: IPv4 clients reach it too.
        _check_tcp(sock, '127.0.0.1')
    finally:
        sock.close()


def test_get_listening_udp_socket_every_address():
    sock = get_listening_udp_socket('*', 0, retry=0)
    try:
        _check_udp(sock, '127.0.0.1', socket.AF_INET)
    finally:
        sock.close()


@pytest.mark.timeout(30)
def test_get_listening_socket_unresolvable_host():
    with pytest.raises(StartupError) as caught:
        get_listening_tcp_socket('no-such-host.invalid', 0, retry=0)
    text = str(caught.value)
    assert text.startswith('cannot bind no-such-host.invalid:0: ')
    assert '\n' not in text


def test_get_listening_socket_address_not_on_this_host():
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never a local address.
    with pytest.raises(StartupError) as caught:
        get_listening_tcp_socket('192.0.2.1', 0, retry=5)
    text = str(caught.value)
    assert text.startswith('cannot bind 192.0.2.1:0: ')
    assert 'retried' not in text  # only "in use" is retried


def _hold(kind, ip):
    """A socket holding a port (no SO_REUSEADDR)."""
    family = socket.AF_INET6 if ':' in ip else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM if kind == 'tcp' else socket.SOCK_DGRAM)
    holder.bind((ip, 0))
    if kind == 'tcp':
        holder.listen(1)
    return holder, holder.getsockname()[1]


def _get(kind, ip, port, retry):
    if kind == 'tcp':
        return get_listening_tcp_socket(ip, port, retry=retry)
    return get_listening_udp_socket(ip, port, retry=retry)


@pytest.mark.parametrize('kind', ['tcp', 'udp'])
@pytest.mark.parametrize('ip, shown', [
    ('127.0.0.1', '127.0.0.1'),
    pytest.param('::1', '[::1]', marks=needs_ipv6),
])
def test_address_in_use_without_retry(kind, ip, shown):
    holder, port = _hold(kind, ip)
    try:
        started = time.monotonic()
        with pytest.raises(StartupError) as caught:
            _get(kind, ip, port, 0)
        assert time.monotonic() - started < 2
        assert str(caught.value) == 'cannot bind %s:%d: %s' % (shown, port, os.strerror(errno.EADDRINUSE))
    finally:
        holder.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize('kind', ['tcp', 'udp'])
def test_address_in_use_retry_gives_up(kind):
    holder, port = _hold(kind, '127.0.0.1')
    try:
        started = time.monotonic()
        with pytest.raises(StartupError) as caught:
            _get(kind, '127.0.0.1', port, 0.6)
        elapsed = time.monotonic() - started
        assert 0.6 <= elapsed < DEADLINE
        assert str(caught.value) == 'cannot bind 127.0.0.1:%d: %s (retried for 0.6 seconds)' % (
            port, os.strerror(errno.EADDRINUSE))
    finally:
        holder.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize('kind', ['tcp', 'udp'])
def test_address_in_use_retry_succeeds_once_released(kind):
    holder, port = _hold(kind, '127.0.0.1')
    timer = threading.Timer(0.4, holder.close)
    timer.start()
    sock = None
    try:
        started = time.monotonic()
        sock = _get(kind, '127.0.0.1', port, DEADLINE)
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < DEADLINE
        assert sock.getsockname()[1] == port
    finally:
        timer.cancel()
        timer.join(DEADLINE)
        holder.close()
        if sock is not None:
            sock.close()


# ---- process helpers ----------------------------------------------------------------

def _wait_pid(pid, timeout=DEADLINE):
    """Reap our child ``pid``: its wait status, or None if still running at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


def _kill_and_reap(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _gone(pid):
    """True once ``pid`` no longer runs (gone, or a zombie awaiting its reaper)."""
    return process_state(pid) in (None, 'Z', 'X')


def _wait_for(predicate, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Supervised:
    """Runs ``sustain_workers(workers, worker)`` in a forked child.

    Each worker first creates ``tmp/w.<index>.<pid>`` and then runs
    ``body(index, tmp)`` (default: sleep until killed, at most 30 s).
    The supervisor logs to ``tmp/sup.log``.
    """

    def __init__(self, tmp_path, workers, body=None, **kwargs):
        self.tmp = tmp_path
        self.workers = workers
        self.body = body or _sleep_body
        self.kwargs = dict({'respawn_interval': 0.1}, **kwargs)
        self.pid = None
        self.status = None

    def __enter__(self):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                logger = get_logger('svc', level='DEBUG', log_file=str(self.tmp / 'sup.log'))
                sustain_workers(self.workers, self._worker, logger, **self.kwargs)
                code = 0
            finally:
                os._exit(code)
        self.pid = pid
        return self

    def _worker(self, index):
        (self.tmp / ('w.%d.%d' % (index, os.getpid()))).touch()
        return self.body(index, self.tmp)

    def __exit__(self, *exc):
        # Kill by pid: the supervisor first (so it respawns nothing), then
        # every worker it ever started.
        if self.status is None:
            _kill_and_reap(self.pid)
        for _, pid in self.started():
            if not _gone(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return False

    def started(self, index=None):
        """``[(index, pid)]`` of the workers started so far, in start order."""
        found = []
        for entry in os.scandir(self.tmp):
            match = re.fullmatch(r'w\.(\d+)\.(\d+)', entry.name)
            if match and (index is None or int(match.group(1)) == index):
                found.append((entry.stat().st_mtime_ns, int(match.group(1)), int(match.group(2))))
        return [(i, pid) for _, i, pid in sorted(found)]

    def running(self):
        """``{index: pid}`` of started workers still running."""
        return {i: pid for i, pid in self.started() if not _gone(pid)}

    def wait_workers(self, count):
        assert _wait_for(lambda: len(self.running()) == count), self.started()
        return self.running()

    def wait_exit(self, timeout=DEADLINE):
        self.status = _wait_pid(self.pid, timeout)
        return self.status

    def log(self):
        path = self.tmp / 'sup.log'
        return path.read_text(encoding='utf-8') if path.exists() else ''


def _sleep_body(index, tmp):
    time.sleep(30)
    return 0


# ---- sustain_workers ----------------------------------------------------------------

def test_sustain_workers_zero_runs_in_process():
    calls = []

    def worker(index):
        calls.append((index, os.getpid()))
        return 5

    assert sustain_workers(0, worker) is None
    assert calls == [(0, os.getpid())]


@pytest.mark.timeout(60)
@pytest.mark.parametrize('workers', [1, 3])
def test_workers_run_worker_func_with_their_index(tmp_path, workers):
    with Supervised(tmp_path, workers) as sup:
        running = sup.wait_workers(workers)
        assert sorted(running) == list(range(workers))
        assert len(set(running.values())) == workers
        assert sup.pid not in running.values()
        for pid in running.values():
            with open('/proc/%d/stat' % pid, 'rb') as fp:
                ppid = int(fp.read().rsplit(b')', 1)[1].split()[1])
            assert ppid == sup.pid
        # Nothing more is started while they run.
        time.sleep(0.3)
        assert len(sup.started()) == workers


@pytest.mark.timeout(60)
def test_killed_worker_is_replaced(tmp_path):
    with Supervised(tmp_path, 2) as sup:
        running = sup.wait_workers(2)
        victim = running[1]
        os.kill(victim, signal.SIGKILL)
        assert _wait_for(lambda: len(sup.started(1)) == 2), sup.started()
        (_, first), (_, second) = sup.started(1)
        assert first == victim and second != victim
        assert sup.wait_workers(2) == {0: running[0], 1: second}
        assert _wait_for(lambda: 'worker 1 (pid %d) exited: signal SIGKILL; restarting it' % victim in sup.log())


@pytest.mark.timeout(60)
def test_worker_exit_status_logged_and_restarted(tmp_path):
    def body(index, tmp):
        if len(list(tmp.glob('w.%d.*' % index))) == 1:
            if index == 0:
                raise RuntimeError('first boot fails')
            return 7
        time.sleep(30)

    with Supervised(tmp_path, 2, body, name='wsgi', label=lambda i: 'wsgi worker %d' % i) as sup:
        assert _wait_for(lambda: len(sup.started(0)) == 2 and len(sup.started(1)) == 2), sup.started()
        sup.wait_workers(2)
        (_, crashed), _ = sup.started(0)
        (_, seven), _ = sup.started(1)
        assert _wait_for(lambda: 'wsgi worker 0 (pid %d) exited: exit status 1; restarting it' % crashed in sup.log())
        assert 'wsgi worker 1 (pid %d) exited: exit status 7; restarting it' % seven in sup.log()
        # The crash itself is logged, on one line.
        assert re.search(r'wsgi worker 0 crashed RuntimeError: first boot fails \[', sup.log())


@pytest.mark.timeout(60)
def test_respawn_is_throttled(tmp_path):
    with Supervised(tmp_path, 2, respawn_interval=1.0) as sup:
        running = sup.wait_workers(2)
        os.kill(running[0], signal.SIGKILL)
        os.kill(running[1], signal.SIGKILL)
        assert _wait_for(lambda: len(sup.running()) == 2 and len(sup.started()) == 4), sup.started()
        replacements = sup.started()[2:]
        times = sorted(os.stat(tmp_path / ('w.%d.%d' % r)).st_mtime for r in replacements)
        assert times[1] - times[0] >= 0.8


@pytest.mark.timeout(60)
def test_sigterm_stops_supervisor_and_workers(tmp_path):
    with Supervised(tmp_path, 3) as sup:
        running = sup.wait_workers(3)
        os.kill(sup.pid, signal.SIGTERM)
        status = sup.wait_exit()
        assert status is not None, 'supervisor did not exit'
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert _wait_for(lambda: all(_gone(pid) for pid in running.values()))
        assert len(sup.started()) == 3  # nothing respawned
        log = sup.log()
        assert 'worker: SIGTERM received; relaying to 3 children' in log
        for index, pid in running.items():
            assert 'worker %d (pid %d) exited: signal SIGTERM' % (index, pid) in log


@pytest.mark.timeout(60)
def test_sigterm_kills_workers_that_ignore_it(tmp_path):
    def body(index, tmp):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        (tmp / ('ignoring.%d' % index)).touch()
        time.sleep(30)

    with Supervised(tmp_path, 1, body) as sup:
        (index, pid), = sup.wait_workers(1).items()
        assert _wait_for(lambda: (tmp_path / 'ignoring.0').exists())
        started = time.monotonic()
        os.kill(sup.pid, signal.SIGTERM)
        status = sup.wait_exit(timeout=DEADLINE)
        assert status is not None, 'supervisor did not exit'
        assert time.monotonic() - started >= 4  # waited about 5 s before SIGKILL
        assert _wait_for(lambda: _gone(pid))
        assert 'worker 0 (pid %d) exited: signal SIGKILL' % pid in sup.log()


def _hup_body(linger):
    def body(index, tmp):
        got = []
        signal.signal(signal.SIGHUP, lambda signum, frame: got.append(signum))
        (tmp / ('ready.%d' % index)).touch()
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp / ('hup.%d' % index)).touch()
        time.sleep(linger)  # "finishing in-flight work"
        (tmp / ('done.%d' % index)).touch()
        return 0
    return body


@pytest.mark.timeout(60)
def test_sighup_waits_for_workers_to_finish(tmp_path):
    with Supervised(tmp_path, 2, _hup_body(1.0)) as sup:
        running = sup.wait_workers(2)
        assert _wait_for(lambda: all((tmp_path / ('ready.%d' % i)).exists() for i in running))
        os.kill(sup.pid, signal.SIGHUP)
        assert _wait_for(lambda: all((tmp_path / ('hup.%d' % i)).exists() for i in running))
        # Workers are still finishing: the supervisor has not returned.
        assert _wait_pid(sup.pid, timeout=0.3) is None
        status = sup.wait_exit()
        assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert all((tmp_path / ('done.%d' % i)).exists() for i in running)
        assert len(sup.started()) == 2  # nothing respawned after HUP
        log = sup.log()
        for index, pid in running.items():
            assert 'worker %d (pid %d) exited: exit status 0' % (index, pid) in log


@pytest.mark.timeout(60)
def test_sighup_without_wait_on_hup_returns_at_once(tmp_path):
    with Supervised(tmp_path, 1, _hup_body(3.0), wait_on_hup=False) as sup:
        (index, pid), = sup.wait_workers(1).items()
        assert _wait_for(lambda: (tmp_path / 'ready.0').exists())
        os.kill(sup.pid, signal.SIGHUP)
        status = sup.wait_exit()
        assert status is not None and os.WEXITSTATUS(status) == 0
        # The worker got the HUP and is still finishing on its own.
        assert _wait_for(lambda: (tmp_path / 'hup.0').exists())
        assert not (tmp_path / 'done.0').exists()


@pytest.mark.timeout(60)
def test_boot_failed_worker_is_not_restarted(tmp_path):
    def body(index, tmp):
        if index == 0:
            return EXIT_BOOT_FAILED
        time.sleep(30)

    with Supervised(tmp_path, 2, body) as sup:
        assert _wait_for(lambda: 'could not start' in sup.log())
        (_, failed), = sup.started(0)
        assert ('worker 0 (pid %d) could not start (exit status 78); not restarting it' % failed) in sup.log()
        # Many respawn intervals later, still one attempt; the other worker runs on.
        time.sleep(1.0)
        assert sup.started(0) == [(0, failed)]
        assert list(sup.running()) == [1]
        assert _wait_pid(sup.pid, timeout=0) is None
        os.kill(sup.pid, signal.SIGTERM)
        assert sup.wait_exit() is not None


@pytest.mark.timeout(60)
def test_on_spawn_and_on_stop_callbacks(tmp_path):
    def on_spawn(index):
        (tmp_path / ('spawn.%d.%d' % (index, time.monotonic_ns()))).touch()

    def on_stop(signum):
        (tmp_path / ('stop.%s' % signum2str(signum))).touch()

    with Supervised(tmp_path, 2, on_spawn=on_spawn, on_stop=on_stop) as sup:
        sup.wait_workers(2)
        spawns = sorted(p.name.split('.')[1] for p in tmp_path.glob('spawn.*'))
        assert spawns == ['0', '1']
        os.kill(sup.pid, signal.SIGTERM)
        assert sup.wait_exit() is not None
        assert [p.name for p in tmp_path.glob('stop.*')] == ['stop.SIGTERM']


def _in_child(func):
    """Run ``func()`` in a forked child; return what it wrote (or its error)."""
    import json
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            result = {'ok': func()}
        except BaseException as err:  # noqa: B036 - report anything to the parent
            result = {'error': '%s: %s' % (type(err).__name__, err)}
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, 'rb') as fp:
        data = fp.read()
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(os.geteuid() != 0, reason='changing user needs root')
def test_droppriv_to_nobody_sets_ids_umask_session_and_cwd():
    import pwd
    nobody = pwd.getpwnam('nobody')

    def drop():
        service.droppriv('nobody', None, 0o027)
        umask = os.umask(0)
        return [os.getuid(), os.geteuid(), os.getgid(), os.getgroups(), umask, os.getsid(0) == os.getpid(),
                os.getcwd()]
    result = _in_child(drop)
    assert 'ok' in result, result
    uid, euid, gid, groups, umask, leader, cwd = result['ok']
    assert (uid, euid, gid) == (nobody.pw_uid, nobody.pw_uid, nobody.pw_gid)
    assert 0 not in groups  # root's supplementary groups are gone
    assert (umask, leader, cwd) == (0o027, True, '/')


def test_droppriv_unknown_user_is_one_line_error():
    result = _in_child(lambda: service.droppriv('no_such_user_xyz'))
    assert result['error'].startswith('StartupError: cannot drop privileges: no such user or group')


def test_udp_port_in_use_is_refused():
    first = get_listening_udp_socket('127.0.0.1', 0, retry=0)
    try:
        with pytest.raises(StartupError, match='in use'):
            get_listening_udp_socket('127.0.0.1', first.getsockname()[1], retry=0)
    finally:
        first.close()
