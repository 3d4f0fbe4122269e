"""Helpers for functional tests: real brimd processes on free 127.0.0.1 ports.

Every brimd a test starts is stopped by its own process group id in
teardown (never by name); every wait has a deadline.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / 'brimd.conf-sample'


#: A WSGI app module (``slowapp.Slow``): GET /slow?s logs "slow start <s>",
#: sleeps s seconds (green), answers ``done``; GET /pid answers the worker pid;
#: GET /boom raises RuntimeError.
SLOW_APP = '''
import os
import eventlet


class Slow:
    """GET /slow?s logs "slow start <s>" then sleeps s seconds (green)
    before answering; GET /pid answers the worker's pid."""

    def __init__(self, name, parsed_conf, next_app):
        self.next_app = next_app

    def __call__(self, env, start_response):
        if env['PATH_INFO'] == '/slow':
            seconds = env.get('QUERY_STRING') or '1'
            env['brim.logger'].info('slow start %s', seconds)
            eventlet.sleep(float(seconds))
            start_response('200 OK', [('Content-Length', '4')])
            return [b'done']
        if env['PATH_INFO'] == '/pid':
            body = str(os.getpid()).encode()
            start_response('200 OK', [('Content-Length', str(len(body)))])
            return [body]
        if env['PATH_INFO'] == '/boom':
            raise RuntimeError('boom from the app')
        return self.next_app(env, start_response)
'''


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (checked when picked)."""
    for _ in range(50):
        tcp = socket.socket()
        tcp.bind(('127.0.0.1', 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(('127.0.0.1', port))
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
        return port
    raise RuntimeError('no free port')


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
               what: str = 'condition') -> Any:
    """Poll ``predicate`` until it returns a true value; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError('timed out after %gs waiting for %s' % (timeout, what))
        time.sleep(interval)


def port_accepts(port: int, host: str = '127.0.0.1') -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def process_state(pid: int) -> Optional[str]:
    """One-letter state from /proc (None once gone). Zombies are 'Z'."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as fp:
            data = fp.read()
    except OSError:
        return None
    return data[data.rfind(b')') + 2:][:1].decode()


def alive(pid: int) -> bool:
    return process_state(pid) not in (None, 'Z', 'X')


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, 'rb') as fp:
                data = fp.read()
        except OSError:
            continue
        fields = data[data.rfind(b')') + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in (b'Z', b'X'):
            pids.append(int(entry))
    return pids


def http_request(port: int, method: str = 'GET', path: str = '/', body: Optional[bytes] = None,
                 headers: Optional[dict] = None, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_stats(port: int, path: str = '/stats') -> dict:
    status, _, body = http_request(port, path=path)
    assert status == 200, body
    return json.loads(body)


def tcp_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b''
        while len(received) < len(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def udp_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, ('127.0.0.1', port))
        return sock.recvfrom(65536)[0]


class Brimd:
    """One brimd deployment in a temporary directory.

    ``conf`` text is written to ``brimd.conf``; pid file and log file are in
    the directory unless the conf sets them. ``run(...)`` runs a command and
    returns the CompletedProcess; ``foreground()`` starts ``brimd`` without a
    command as a Popen in its own session.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.conf_path = tmp_path / 'brimd.conf'
        self.pid_path = tmp_path / 'brimd.pid'
        self.log_path = tmp_path / 'brimd.log'
        self.extra_confs: list[Path] = []
        self.started_groups: set[int] = set()
        self.popens: list[subprocess.Popen] = []
        self.env = dict(os.environ)
        self.cwd: Optional[Path] = None  # where brimd commands run (None: the tests' own)
        self.env['PYTHONPATH'] = os.pathsep.join([str(tmp_path), str(REPO)] + (
            [os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else []))

    def write_conf(self, text: str, defaults: bool = True) -> Path:
        head = ''
        if defaults:
            settings = ''.join('%s = %s\n' % (name, value) for name, value in (
                ('ip', '127.0.0.1'), ('pid_file', self.pid_path), ('log_file', self.log_path))
                if '\n%s =' % name not in '\n' + text)
            if '[brim]\n' in text:
                text = text.replace('[brim]\n', '[brim]\n' + settings, 1)
            else:
                head = '[brim]\n%s\n' % settings
        self.conf_path.write_text(head + text)
        return self.conf_path

    def write_module(self, name: str, source: str) -> None:
        (self.dir / ('%s.py' % name)).write_text(source)

    def args(self, *command: str) -> list[str]:
        argv = [sys.executable, '-m', 'brim']
        for conf in [self.conf_path] + self.extra_confs:
            argv += ['-c', str(conf)]
        return argv + list(command)

    def run(self, *command: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        result = subprocess.run(self.args(*command), capture_output=True, text=True, timeout=timeout,
                                env=self.env, stdin=subprocess.DEVNULL, cwd=self.cwd)
        pid = self.pid()
        if pid:
            self.started_groups.add(pid)
        return result

    def start(self) -> int:
        result = self.run('start')
        assert result.returncode == 0, result.stderr
        pid = wait_until(self.pid, 10, what='pid file')
        self.started_groups.add(pid)
        return pid

    def foreground(self, *extra: str) -> subprocess.Popen:
        proc = subprocess.Popen(self.args(*extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=self.env, stdin=subprocess.DEVNULL, start_new_session=True)
        self.popens.append(proc)
        return proc

    def pid(self) -> Optional[int]:
        try:
            text = self.pid_path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ''

    def wait_log(self, needle: str, timeout: float = 10.0) -> str:
        return wait_until(lambda: needle in self.log() and self.log(), timeout, what='log line %r' % needle)

    def cleanup(self) -> None:
        for proc in self.popens:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdout:
                proc.stdout.close()
        for pgid in self.started_groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class Load:
    """Clients loading a server from threads until :meth:`stop` (bounded by
    ``max_seconds`` in any case), counting what succeeded and what failed.

    Kinds: ``keepalive`` (HTTP/1.1 requests on one connection, reconnecting
    when the server closes it), ``fresh`` (one HTTP request per connection)
    and ``tcp`` (connect, one echo round trip, close). A keep-alive client
    retries a request once on a new connection when a *reused* connection
    was closed before any byte of the response came: what RFC 9112 §9.3.1
    allows clients for idempotent requests, and what HTTP client libraries
    do. Those are counted as ``retried``, not failed; anything else (refused
    connection, error status, short or wrong answer, reset mid-response) is
    a failure, recorded with its reason.

    ``bodies`` counts each distinct HTTP response body seen.
    """

    def __init__(self, port: int, kinds: tuple[str, ...] = ('keepalive', 'fresh'), path: str = '/',
                 tcp_port: Optional[int] = None, max_seconds: float = 60.0) -> None:
        import threading
        self.port, self.path, self.tcp_port = port, path, tcp_port
        self.deadline = time.monotonic() + max_seconds
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.ok = self.retried = 0
        self.failures: list[str] = []
        self.bodies: dict[bytes, int] = {}
        self.local = threading.local()
        self.threads = [threading.Thread(target=getattr(self, '_' + kind), daemon=True) for kind in kinds]

    def __enter__(self) -> 'Load':
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def running(self) -> bool:
        return not self.done.is_set() and time.monotonic() < self.deadline

    def stop(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(15)

    def _count(self, body: Optional[bytes] = None, failure: Optional[str] = None) -> None:
        with self.lock:
            if failure is not None:
                self.failures.append(failure)
            else:
                self.ok += 1
                if body is not None:
                    self.bodies[body] = self.bodies.get(body, 0) + 1

    def _request(self, conn: socket.socket, buffer: bytearray) -> Optional[bytes]:
        """One GET on ``conn``; the body, or None if closed before any byte
        came. Sets ``self.must_close`` for a response with Connection: close."""
        conn.sendall(('GET %s HTTP/1.1\r\nHost: load\r\n\r\n' % self.path).encode())
        while b'\r\n\r\n' not in buffer:
            data = conn.recv(65536)
            if not data:
                if buffer:
                    raise OSError('closed mid-response')
                return None
            buffer += data
        head, _, rest = bytes(buffer).partition(b'\r\n\r\n')
        status = head.split(b'\r\n')[0]
        fields = dict(line.split(b':', 1) for line in head.split(b'\r\n')[1:] if b':' in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        length = int(fields[b'content-length'])
        self.local.must_close = fields.get(b'connection', b'').lower() == b'close'
        while len(rest) < length:
            data = conn.recv(65536)
            if not data:
                raise OSError('closed mid-body')
            rest += data
        del buffer[:]
        buffer += rest[length:]
        if not status.startswith(b'HTTP/1.1 200'):
            raise OSError('status %r' % status)
        return rest[:length]

    def _keepalive(self) -> None:
        conn: Optional[socket.socket] = None
        buffer = bytearray()
        reused = False
        while self.running():
            try:
                if conn is None:
                    conn = socket.create_connection(('127.0.0.1', self.port), timeout=10)
                    buffer, reused = bytearray(), False
                body = self._request(conn, buffer)
                if body is None:
                    conn.close()
                    conn = None
                    if reused:
                        with self.lock:
                            self.retried += 1
                        continue
                    self._count(failure='fresh connection closed before any response')
                    continue
                reused = True
                self._count(body)
                if self.local.must_close:  # as RFC 9112 §9.6 asks of a client
                    conn.close()
                    conn = None
            except (OSError, ValueError, KeyError) as err:
                self._count(failure='keepalive: %s (reused %s, %d bytes of response)' % (err, reused, len(buffer)))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _fresh(self) -> None:
        while self.running():
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=10) as conn:
                    body = self._request(conn, bytearray())
                if body is None:
                    self._count(failure='fresh: closed before any response')
                else:
                    self._count(body)
            except (OSError, ValueError, KeyError) as err:
                self._count(failure='fresh: %s' % err)

    def _tcp(self) -> None:
        assert self.tcp_port is not None
        n = 0
        while self.running():
            n += 1
            data = b'load %d\n' % n
            try:
                answer = tcp_exchange(self.tcp_port, data, timeout=10)
                if answer.endswith(data):
                    self._count()
                else:
                    self._count(failure='tcp: answered %r to %r' % (answer, data))
            except OSError as err:
                self._count(failure='tcp: %s' % err)
