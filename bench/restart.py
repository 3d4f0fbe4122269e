#!/usr/bin/env python3
"""Measure ``brimd restart`` under full load: lost requests, time taken.

Starts one brimd (``python -m brim -c CONF start``; conf, app module, pid
file and log in a temporary directory, free 127.0.0.1 ports) with:

* ``[wsgi]`` ``workers = 2``, ``apps = hello stats``: ``hello`` answers every
  path but ``/stats`` with the conf's ``text`` (so a changed conf shows in
  the body), ``stats`` is ``brim.wsgi_stats.WSGIStats``;
* ``[tcp]`` ``workers = 2``, ``brim.tcp_echo.TCPEcho``.

Three client *processes* (multiprocessing, spawned), ``--threads`` threads
each, load it flat out (no pauses) for the whole run:

* ``keepalive``: HTTP/1.1 GETs on one connection per thread, a new
  connection only when the server closes it (a response with
  ``Connection: close`` is honoured, RFC 9112 §9.6);
* ``fresh``: one HTTP GET per connection;
* ``tcp``: connect, one echo round trip, close.

Every request counts as ok, failed (with its reason) or retried. Retried
is only what RFC 9112 §9.3.1 lets a client retry on its own: a *reused*
keep-alive connection closed (EOF) before any byte of the response; the
request is then sent again on a new connection, and if that fails it is a
failure. Anything else -- refused or reset connection, a timeout, EOF on
a fresh connection, a short answer, a status other than 200, a body that is
not one of the conf texts, a wrong echo -- is a failure.

Then ``--restarts`` times, ``--seconds-between`` apart: the conf is
rewritten with a new text and ``brimd restart`` run. Per restart: the wall
time of the command, the time from launching it until a request on a new
connection (polled every 10 ms from this process; those probes are
counted too) returns the new text, the time until the old main
process has exited (``/proc/PID/stat``; a zombie counts as exited) and
the time until every process of the old server (its session) has: the
old main exits once it has relayed SIGHUP, its workers once their
in-flight work is done. Both are waited for before the next restart.

CPU: each client process reports ``os.times()`` of itself (all its
threads); the server's is sampled every 50 ms from ``/proc/PID/stat``
(utime + stime of every process of every brimd session this run started;
what an exiting process spends after its last sample is missed); brimd
commands (start, restart, with their app probes) are
``RUSAGE_CHILDREN`` before the clients are reaped.

The TCP and fresh HTTP clients open thousands of connections a second,
each leaving a TIME_WAIT on the client side: that needs Linux's
``net.ipv4.tcp_tw_reuse`` (default 2, loopback only) or a failure reason
"Cannot assign requested address" is the client running out of ephemeral
ports, not brim. Both settings are written into the results.

At the end brimd is stopped (``brimd stop``; failing that, SIGKILL to the
process group of every main pid seen, never by name). Every wait has a
timeout, and the whole run is killed after ``--hard-cap`` seconds.
Prints the results and writes them to ``bench/results-restart.md``
(``--out``); exits 1 if anything failed.

Usage: python bench/restart.py [--restarts 10] [--seconds-between 1.0] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT_TIMEOUT = 10.0  # seconds, every client socket operation
KINDS = ('keepalive', 'fresh', 'tcp')

HELLO_APP = '''
class Hello:
    """WSGI: answers every path but /stats with the conf's text."""

    def __init__(self, name, parsed_conf, next_app):
        self.body = parsed_conf['text'].encode()
        self.next_app = next_app

    def __call__(self, env, start_response):
        if env['PATH_INFO'] == '/stats':
            return self.next_app(env, start_response)
        start_response('200 OK', [('Content-Length', str(len(self.body))), ('Content-Type', 'text/plain')])
        return [self.body]

    @classmethod
    def parse_conf(cls, name, conf):
        return {'text': conf.get(name, 'text', '')}
'''

CONF = '''[brim]
ip = 127.0.0.1
pid_file = {pid_file}
log_file = {log_file}
log_level = {log_level}

[wsgi]
port = {wsgi_port}
workers = 2
apps = hello stats

[hello]
call = benchhello.Hello
text = {text}

[stats]
call = brim.wsgi_stats.WSGIStats

[tcp]
port = {tcp_port}
workers = 2
call = brim.tcp_echo.TCPEcho
'''

TEXT_PREFIX = b'bench-text-'


# -- clients (run in the spawned client processes) ------------------------------------------


class Client:
    """One client process: ``threads`` threads of one kind, counting."""

    def __init__(self, kind: str, port: int, counters: Any, stop: Any) -> None:
        self.kind, self.port, self.counters, self.stop = kind, port, counters, stop
        self.lock = threading.Lock()
        self.ok = self.failed = self.retried = 0
        self.reasons: Counter = Counter()
        self.samples: list[tuple[float, str]] = []  # (unix time, reason), the first 50
        self.bodies: Counter = Counter()
        self.request = b'GET / HTTP/1.1\r\nHost: bench\r\n\r\n'

    def count(self, body: Optional[bytes] = None, failure: Optional[str] = None, retried: bool = False) -> None:
        with self.lock:
            if retried:
                self.retried += 1
                self.counters[2] = self.retried
            elif failure is not None:
                self.failed += 1
                self.counters[1] = self.failed
                self.reasons[failure] += 1
                if len(self.samples) < 50:
                    self.samples.append((time.time(), failure))
            else:
                self.ok += 1
                self.counters[0] = self.ok
                if body is not None:
                    self.bodies[body] += 1

    def connect(self) -> socket.socket:
        sock = socket.create_connection(('127.0.0.1', self.port), timeout=CLIENT_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def keepalive(self) -> None:
        conn: Optional[socket.socket] = None
        buffer = bytearray()
        reused = False
        while not self.stop.is_set():
            phase = 'connect'
            try:
                if conn is None:
                    conn = self.connect()
                    buffer, reused = bytearray(), False
                phase = 'send'
                conn.sendall(self.request)
                phase = 'response'
                answer = read_response(conn, buffer)
            except (OSError, ValueError, KeyError) as err:
                self.count(failure='keepalive: %s on a %s connection: %s' % (
                    phase, 'reused' if reused else 'new', describe(err)))
                if conn is not None:
                    conn.close()
                conn = None
                continue
            if answer is None:  # EOF before any byte of the response
                conn.close()
                conn = None
                if reused:
                    self.count(retried=True)  # RFC 9112 §9.3.1: sent again on a new connection
                else:
                    self.count(failure='keepalive: new connection closed before any response byte')
                continue
            status, body, must_close = answer
            reused = True
            self.check_http(status, body, 'keepalive')
            if must_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def fresh(self) -> None:
        while not self.stop.is_set():
            phase = 'connect'
            try:
                with self.connect() as conn:
                    phase = 'send'
                    conn.sendall(self.request)
                    phase = 'response'
                    answer = read_response(conn, bytearray())
            except (OSError, ValueError, KeyError) as err:
                self.count(failure='fresh: %s: %s' % (phase, describe(err)))
                continue
            if answer is None:
                self.count(failure='fresh: connection closed before any response byte')
                continue
            self.check_http(answer[0], answer[1], 'fresh')

    def check_http(self, status: bytes, body: bytes, kind: str) -> None:
        if not status.startswith(b'HTTP/1.1 200 '):
            self.count(failure='%s: status %r' % (kind, status.decode('latin-1')))
        elif not body.startswith(TEXT_PREFIX):
            self.count(failure='%s: unexpected body %r' % (kind, body[:60]))
        else:
            self.count(body)

    def tcp(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            data = b'echo %d from %d\n' % (n, threading.get_ident())
            phase = 'connect'
            try:
                with self.connect() as conn:
                    phase = 'send'
                    conn.sendall(data)
                    phase = 'echo'
                    received = b''
                    while len(received) < len(data):
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        received += chunk
            except OSError as err:
                self.count(failure='tcp: %s: %s' % (phase, describe(err)))
                continue
            if received == data:
                self.count()
            else:
                self.count(failure='tcp: %d of %d bytes echoed%s' % (
                    len(received), len(data), '' if data.startswith(received) else ' (wrong bytes)'))


def describe(err: BaseException) -> str:
    if isinstance(err, socket.timeout):
        return 'timeout'
    if isinstance(err, OSError) and err.errno:
        return '%s (errno %d)' % (os.strerror(err.errno), err.errno)
    return '%s: %s' % (type(err).__name__, err)


def read_response(conn: socket.socket, buffer: bytearray) -> Optional[tuple[bytes, bytes, bool]]:
    """Read one Content-Length framed response: (status line, body, Connection: close),
    or None if the connection closed before any byte of it came."""
    while b'\r\n\r\n' not in buffer:
        data = conn.recv(65536)
        if not data:
            if buffer:
                raise ConnectionError('closed after %d bytes of the response head' % len(buffer))
            return None
        buffer += data
    head, _, rest = bytes(buffer).partition(b'\r\n\r\n')
    lines = head.split(b'\r\n')
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b':')
        fields[name.strip().lower()] = value.strip()
    length = int(fields[b'content-length'])
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError('closed after %d of %d body bytes' % (len(rest), length))
        rest += data
    del buffer[:]
    buffer += rest[length:]
    return lines[0], rest[:length], fields.get(b'connection', b'').lower() == b'close'


def client_main(kind: str, port: int, threads: int, counters: Any, stop: Any, results: Any,
                max_seconds: float) -> None:
    """Entry point of a client process: load until ``stop`` is set (or ``max_seconds``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    client = Client(kind, port, counters, stop)
    began = time.monotonic()
    workers = [threading.Thread(target=getattr(client, kind), daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    stop.wait(max_seconds)
    stop.set()
    for thread in workers:
        thread.join(CLIENT_TIMEOUT + 5)
    times = os.times()
    with client.lock:
        results.put({'kind': kind, 'ok': client.ok, 'failed': client.failed, 'retried': client.retried,
                     'reasons': dict(client.reasons), 'samples': client.samples,
                     'bodies': {body.decode(): n for body, n in client.bodies.items()},
                     'cpu': times.user + times.system, 'wall': time.monotonic() - began,
                     'stuck_threads': sum(thread.is_alive() for thread in workers)})


# -- the bench (main process) ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def proc_stat(pid: int) -> Optional[list[bytes]]:
    """Fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as fp:
            data = fp.read()
    except OSError:
        return None
    return data[data.rfind(b')') + 2:].split()


def exited(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is None or fields[0] in (b'Z', b'X')


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    pids = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            fields = proc_stat(int(entry))
            if fields and int(fields[3]) == sid and fields[0] not in (b'Z', b'X'):
                pids.append(int(entry))
    return pids


def wait_for(predicate: Any, timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class ServerCPU(threading.Thread):
    """Samples the CPU time of brimd's processes every ``interval`` seconds.

    A process is a candidate if it is a child of a brimd command this run
    launched (``commands``), or in the session of one: the daemonized main
    process is its own session's leader and still the command's child
    until it serves. Only the sessions whose leader became a main pid
    (``mains``, from the pid file) are counted, which leaves out the
    command's app probe (counted with the command, a reaped child)."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.commands: set[int] = set()
        self.mains: set[int] = set()
        self.sessions: set[int] = set()
        self.cpu: dict[int, tuple[int, int]] = {}  # pid -> (session, utime + stime ticks), the last seen
        self.done = threading.Event()
        self.tick = os.sysconf('SC_CLK_TCK')

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            fields = proc_stat(int(entry))
            if not fields or len(fields) < 13:
                continue
            ppid, sid = int(fields[1]), int(fields[3])
            if ppid in self.commands:
                self.sessions.add(sid)
            if sid in self.sessions or sid in self.mains:
                self.cpu[int(entry)] = (sid, int(fields[11]) + int(fields[12]))

    def seconds(self) -> float:
        return sum(ticks for sid, ticks in self.cpu.values() if sid in self.mains) / self.tick


class Timeline(threading.Thread):
    """Records (monotonic time, OK count per client process) every ``interval`` seconds."""

    def __init__(self, counters: list[Any], interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.counters, self.interval = counters, interval
        self.points: list[tuple[float, list[int]]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            self.points.append((time.monotonic(), [c[0] for c in self.counters]))
            if self.done.wait(self.interval):
                self.points.append((time.monotonic(), [c[0] for c in self.counters]))
                return

    def rates(self, start: float, end: float) -> Optional[list[float]]:
        """OK requests/s per client process between the samples nearest ``start`` and ``end``."""
        inside = [p for p in self.points if start <= p[0] <= end]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] <= 0:
            return None
        elapsed = inside[-1][0] - inside[0][0]
        return [(b - a) / elapsed for a, b in zip(inside[0][1], inside[-1][1], strict=True)]


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: str) -> None:
        self.args = args
        self.tmp = tmp
        self.conf_path = os.path.join(tmp, 'brimd.conf')
        self.pid_path = os.path.join(tmp, 'brimd.pid')
        self.log_path = os.path.join(tmp, 'brimd.log')
        self.wsgi_port, self.tcp_port = free_port(), free_port()
        while self.tcp_port == self.wsgi_port:
            self.tcp_port = free_port()
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [tmp, REPO] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else [])))
        self.sampler = ServerCPU()
        self.mains: list[int] = []
        self.probe_ok = 0
        self.probe_failures: Counter = Counter()
        self.notes: list[str] = []
        self.command_log: list[str] = []
        with open(os.path.join(tmp, 'benchhello.py'), 'w') as fp:
            fp.write(HELLO_APP)

    def write_conf(self, text: str) -> None:
        tmp_path = self.conf_path + '.tmp'
        with open(tmp_path, 'w') as fp:
            fp.write(CONF.format(pid_file=self.pid_path, log_file=self.log_path, log_level=self.args.log_level,
                                 wsgi_port=self.wsgi_port, tcp_port=self.tcp_port, text=text))
        os.replace(tmp_path, self.conf_path)

    def launch(self, command: str) -> tuple[subprocess.Popen, Any, Any]:
        out = tempfile.TemporaryFile(dir=self.tmp)
        err = tempfile.TemporaryFile(dir=self.tmp)
        proc = subprocess.Popen([sys.executable, '-m', 'brim', '-c', self.conf_path, command], env=self.env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self.sampler.commands.add(proc.pid)
        return proc, out, err

    def finish(self, command: str, launched: tuple[subprocess.Popen, Any, Any], timeout: float) -> int:
        """Wait for a launched command; log its output; return its exit status (-9 if killed at timeout)."""
        proc, out, err = launched
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            code = -9
            self.notes.append('`brimd %s` did not finish within %g s; killed' % (command, timeout))
        texts = []
        for stream in (out, err):
            stream.seek(0)
            texts.append(stream.read().decode('utf-8', 'replace').strip())
            stream.close()
        self.command_log.append('brimd %s -> %d: %s%s' % (command, code, texts[0],
                                                           (' / stderr: ' + texts[1]) if texts[1] else ''))
        return code

    def pid(self) -> Optional[int]:
        try:
            with open(self.pid_path) as fp:
                text = fp.read().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def note_main(self, pid: Optional[int]) -> None:
        if pid and pid not in self.mains:
            self.mains.append(pid)
            self.sampler.mains.add(pid)

    def probe(self) -> Optional[bytes]:
        """One GET on a new connection; the body, or None (counted as a probe failure)."""
        try:
            with socket.create_connection(('127.0.0.1', self.wsgi_port), timeout=CLIENT_TIMEOUT) as conn:
                conn.sendall(b'GET / HTTP/1.1\r\nHost: probe\r\n\r\n')
                answer = read_response(conn, bytearray())
        except (OSError, ValueError, KeyError) as err:
            self.probe_failures['probe: %s' % describe(err)] += 1
            return None
        if answer is None:
            self.probe_failures['probe: closed before any response byte'] += 1
            return None
        if not answer[0].startswith(b'HTTP/1.1 200 '):
            self.probe_failures['probe: status %r' % answer[0].decode('latin-1')] += 1
            return None
        self.probe_ok += 1
        return answer[1]

    def start(self) -> None:
        self.write_conf(text(0))
        code = self.finish('start', self.launch('start'), 60)
        if code != 0:
            raise RuntimeError('brimd start failed: %s' % self.command_log[-1])
        self.note_main(self.pid())
        if not wait_for(lambda: self.probe() == text(0).encode(), 15, 0.05):
            raise RuntimeError('brimd never served the first text')

    def restart(self, number: int) -> dict:
        old = self.pid()
        wanted = text(number)
        self.write_conf(wanted)
        began = time.monotonic()
        launched = self.launch('restart')
        launched_at = time.monotonic()
        proc = launched[0]
        # Until the command has exited, every 10 ms: a probe (until it gets the new text), the pid file
        # (the new main writes it once all its workers serve, then the command SIGHUPs the old one) and
        # the old main process's state.
        new_at = ready_at = old_gone = command_time = None
        deadline = began + 120
        while time.monotonic() < deadline:
            if new_at is None and self.probe() == wanted.encode():
                new_at = time.monotonic() - began
            if ready_at is None and self.pid() not in (old, None):
                ready_at = time.monotonic() - began
            if old_gone is None and old is not None and exited(old):
                old_gone = time.monotonic() - began
            if command_time is None and proc.poll() is not None:
                command_time = time.monotonic() - began
                if proc.returncode != 0 or new_at is not None:
                    break
            time.sleep(0.01)
        code = self.finish('restart', launched, 10)
        if command_time is None:
            command_time = time.monotonic() - began
        if code != 0:
            raise RuntimeError('brimd restart %d failed: %s' % (number, self.command_log[-1]))
        if new_at is None:
            raise RuntimeError('restart %d: the new text was not served within 120 s' % number)
        new = self.pid()
        self.note_main(new)
        if new == old or old is None:
            raise RuntimeError('restart %d: pid file says %s before and %s after' % (number, old, new))
        if ready_at is None:
            ready_at = command_time  # the pid file changed between two looks: at the latest then
        if not wait_for(lambda: exited(old), 60):
            raise RuntimeError('restart %d: old main process %d still running 60 s after the restart' % (number, old))
        if old_gone is None:
            old_gone = time.monotonic() - began
        # The old main process exits once it has relayed SIGHUP; its supervisors and
        # workers finish what is in flight first (graceful_timeout at the most).
        if wait_for(lambda: not session_members(old), 40, 0.02):
            old_server_gone: Optional[float] = time.monotonic() - began
        else:
            old_server_gone = None
            self.notes.append('restart %d: processes of the old server %d still ran 40 s after its main process '
                              'exited: %s' % (number, old, session_members(old)))
        return {'number': number, 'old': old, 'new': new, 'command': command_time, 'new_conf': new_at,
                'ready': ready_at, 'old_exited': old_gone, 'old_server_gone': old_server_gone,
                'launched_at': launched_at}

    def final_stats(self) -> dict:
        try:
            with socket.create_connection(('127.0.0.1', self.wsgi_port), timeout=CLIENT_TIMEOUT) as conn:
                conn.sendall(b'GET /stats HTTP/1.1\r\nHost: probe\r\n\r\n')
                answer = read_response(conn, bytearray())
            return json.loads(answer[1]) if answer else {}
        except (OSError, ValueError, KeyError) as err:
            self.notes.append('GET /stats failed: %s' % describe(err))
            return {}

    def stop(self) -> None:
        pid = self.pid()
        self.note_main(pid)
        try:
            self.finish('stop', self.launch('stop'), 60)
        except OSError as err:
            self.notes.append('brimd stop could not run: %s' % err)
        self.kill_leftovers()

    def kill_leftovers(self) -> None:
        """SIGKILL the process group of every main pid seen that still has live processes."""
        for main in self.mains:
            members = session_members(main)
            if members:
                self.notes.append('after stop, the server of main pid %d still had processes %s; killed its '
                                  'process group' % (main, members))
                try:
                    os.killpg(main, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def log_summary(self) -> tuple[Counter, list[str]]:
        levels: Counter = Counter()
        notable = []
        try:
            with open(self.log_path, 'rb') as fp:
                for raw in fp:
                    line = raw.decode('utf-8', 'replace').rstrip('\n')
                    parts = line.split(' ', 3)
                    level = parts[2] if len(parts) > 2 else '?'
                    levels[level] += 1
                    if level in ('WARNING', 'ERROR', 'CRITICAL') and len(notable) < 30:
                        notable.append(line)
        except OSError as err:
            self.notes.append('cannot read the log: %s' % err)
        return levels, notable


def text(number: int) -> str:
    return '%s%d' % (TEXT_PREFIX.decode(), number)


def machine() -> dict:
    model = '?'
    try:
        with open('/proc/cpuinfo') as fp:
            for line in fp:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import importlib.metadata
        eventlet_version = importlib.metadata.version('eventlet')
    except Exception:  # not installed: the run fails anyway
        eventlet_version = '?'
    try:
        date = subprocess.run(['date', '-u'], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        date = time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime())
    try:
        uname = subprocess.run(['uname', '-a'], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        uname = ' '.join(platform.uname())
    try:
        commit = subprocess.run(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                                timeout=10).stdout.strip() or '?'
        dirty = subprocess.run(['git', '-C', REPO, 'status', '--porcelain', '--', 'brim'], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        commit += ' (brim/ has uncommitted changes)' if dirty else ''
    except (OSError, subprocess.TimeoutExpired):
        commit = '?'
    sysctls = []
    for name in ('tcp_tw_reuse', 'ip_local_port_range'):
        try:
            with open('/proc/sys/net/ipv4/' + name) as fp:
                sysctls.append('net.ipv4.%s = %s' % (name, ' '.join(fp.read().split())))
        except OSError:
            pass
    return {'commit': commit, 'sysctls': '; '.join(sysctls) or '?', 'nproc': os.cpu_count() or 0, 'cpu': model,
            'kernel': platform.release(),
            'python': platform.python_version(), 'eventlet': eventlet_version, 'date': date,
            'uname': uname}


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    mp = multiprocessing.get_context('spawn')
    stop = mp.Event()
    results_queue = mp.Queue()
    with tempfile.TemporaryDirectory(prefix='brim-bench-restart-') as tmp:
        bench = Bench(args, tmp)
        clients: list[tuple[str, Any, Any]] = []

        def hard_stop() -> None:
            print('hard cap of %g s reached: killing the clients and brimd' % args.hard_cap, file=sys.stderr)
            stop.set()
            for _, proc, _ in clients:
                if proc.pid and proc.is_alive():
                    os.kill(proc.pid, signal.SIGKILL)
            bench.note_main(bench.pid())
            bench.kill_leftovers()
            shutil.rmtree(tmp, ignore_errors=True)
            os._exit(2)
        cap = threading.Timer(args.hard_cap, hard_stop)
        cap.daemon = True
        cap.start()

        bench.sampler.start()
        restarts: list[dict] = []
        error = None
        load_began = load_ended = time.monotonic()
        base_ok = 0
        steady_rate = 0.0
        timeline = Timeline([])
        client_results: list[dict] = []
        try:
            bench.start()
            ports = {'keepalive': bench.wsgi_port, 'fresh': bench.wsgi_port, 'tcp': bench.tcp_port}
            max_seconds = args.hard_cap  # the clients stop on their own at the latest here
            for kind in KINDS:
                counters = mp.RawArray('q', 3)
                proc = mp.Process(target=client_main, name='client-' + kind, daemon=True,
                                  args=(kind, ports[kind], args.threads, counters, stop, results_queue, max_seconds))
                proc.start()
                clients.append((kind, proc, counters))
            if not wait_for(lambda: all(c[0] >= 100 for _, _, c in clients), 30, 0.05):
                raise RuntimeError('the clients did not get going: %s' % [list(c) for _, _, c in clients])
            timeline = Timeline([c for _, _, c in clients])
            timeline.start()
            load_began = time.monotonic()
            base_ok = sum(c[0] for _, _, c in clients)
            time.sleep(args.seconds_between)
            steady_rate = (sum(c[0] for _, _, c in clients) - base_ok) / (time.monotonic() - load_began)
            for number in range(1, args.restarts + 1):
                row = bench.restart(number)
                restarts.append(row)
                print('restart %2d: new conf served after %.3f s, new server ready after %.2f s, old main %d exited '
                      'after %.2f s, command after %.2f s, old server\'s last process after %s s' % (
                          number, row['new_conf'], row['ready'], row['old'], row['old_exited'], row['command'],
                          '?' if row['old_server_gone'] is None else '%.2f' % row['old_server_gone']), flush=True)
                time.sleep(args.seconds_between)
        except Exception as err:  # reported, and the run still cleans up
            error = '%s: %s' % (type(err).__name__, err)
        finally:
            load_ended = time.monotonic()
            timeline.done.set()
            if timeline.is_alive():
                timeline.join(5)
            stop.set()
            deadline = time.monotonic() + 60
            while len(client_results) < len(clients) and time.monotonic() < deadline:
                try:
                    client_results.append(results_queue.get(timeout=max(0.1, deadline - time.monotonic())))
                except Exception:
                    break
            command_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
            command_cpu_s = command_cpu.ru_utime + command_cpu.ru_stime
            for kind, proc, _ in clients:
                proc.join(15)
                if proc.is_alive():
                    bench.notes.append('client process %s did not exit; killed' % kind)
                    proc.kill()
                    proc.join(5)
            stats = bench.final_stats() if error is None else {}
            bench.sampler.done.set()
            bench.sampler.join(5)
            bench.sampler.sample()
            server_cpu_s = bench.sampler.seconds()
            bench.stop()
            cap.cancel()
        levels, notable = bench.log_summary()
        bench_times = os.times()
        report = Report(args, machine(), bench, restarts, client_results, error, (load_began, load_ended),
                        base_ok, steady_rate, timeline, stats, levels, notable, server_cpu_s, command_cpu_s,
                        bench_times.user + bench_times.system, time.monotonic() - began)
    text_out = report.markdown()
    print(text_out)
    with open(args.out, 'w') as fp:
        fp.write(text_out)
    print('written to %s' % os.path.relpath(args.out))
    return 0 if report.passed() else 1


class Report:
    def __init__(self, args: argparse.Namespace, host: dict, bench: Bench, restarts: list[dict],
                 clients: list[dict], error: Optional[str], load_span: tuple[float, float], base_ok: int,
                 steady_rate: float, timeline: Timeline, stats: dict, levels: Counter, notable: list[str],
                 server_cpu: float, command_cpu: float, bench_cpu: float,
                 total_seconds: float) -> None:
        self.args, self.host, self.bench, self.restarts, self.clients = args, host, bench, restarts, clients
        self.error, self.steady_rate, self.stats = error, steady_rate, stats
        self.load_span, self.load_seconds = load_span, load_span[1] - load_span[0]
        self.base_ok, self.timeline = base_ok, timeline
        self.levels, self.notable = levels, notable
        self.server_cpu, self.command_cpu, self.bench_cpu = server_cpu, command_cpu, bench_cpu
        self.total_seconds = total_seconds
        self.ok = sum(c['ok'] for c in clients)
        self.failed = sum(c['failed'] for c in clients) + sum(bench.probe_failures.values())
        self.retried = sum(c['retried'] for c in clients)
        self.reasons: Counter = Counter(bench.probe_failures)
        for c in clients:
            self.reasons.update(c['reasons'])
        self.worker_restarts = {name: sum(bucket.get('restart_count', 0) for bucket in entry.values()
                                          if isinstance(bucket, dict))
                                for name, entry in stats.items() if name in ('wsgi', 'tcp') and isinstance(entry, dict)}

    def passed(self) -> bool:
        return (self.error is None and self.failed == 0 and len(self.clients) == len(KINDS)
                and len(self.restarts) == self.args.restarts and not any(self.worker_restarts.values()))

    def markdown(self) -> str:
        args, host = self.args, self.host
        out = ['# brimd restart under full load', '']
        out += ['Run: `.venv/bin/python bench/restart.py --restarts %d --seconds-between %g --threads %d%s`'
                % (args.restarts, args.seconds_between, args.threads,
                   '' if args.log_level == 'INFO' else ' --log-level %s' % args.log_level), '']
        out += ['One brimd: `[wsgi]` 2 workers (a hello app answering the conf\'s text, plus `WSGIStats`), '
                '`[tcp]` 2 workers (`TCPEcho`), log_level %s (INFO writes an access line per request). Three client '
                'processes, %d threads each, flat out: HTTP keep-alive, HTTP one request per connection, TCP echo '
                'one round trip per connection. Each restart rewrites the conf with a new text and runs `brimd '
                'restart`; the next one starts %g s after every process of the old server has exited. '
                '"Retried" is only a '
                'reused keep-alive connection closed before any response byte (RFC 9112 §9.3.1), sent again on a '
                'new connection; everything else that is not a 200 with a conf text (or a correct echo) is '
                'failed. See the docstring of `bench/restart.py`.' % (args.log_level, args.threads,
                                                                     args.seconds_between), '']
        out += ['- date: `%s`' % host['date'],
                '- machine: `nproc` %d, %s, Linux %s' % (host['nproc'], host['cpu'], host['kernel']),
                '- Python %s, eventlet %s; brim at commit %s' % (host['python'], host['eventlet'], host['commit']),
                '- `uname -a`: `%s`' % host['uname'],
                '- `%s`' % host['sysctls'],
                '- the bench took %.1f s in all (load ran %.1f s)' % (self.total_seconds, self.load_seconds), '']
        if self.error:
            out += ['**The run stopped early: %s**' % self.error, '']
        commands = [r['command'] for r in self.restarts]
        new_conf = [r['new_conf'] for r in self.restarts]
        old_exit = [r['old_exited'] for r in self.restarts]
        old_gone = [r['old_server_gone'] for r in self.restarts if r['old_server_gone'] is not None]
        # OK responses from the moment every client had 100 until the clients stopped.
        rate = (self.ok - self.base_ok) / self.load_seconds if self.load_seconds > 0 else 0.0

        def med_max(values: list[float], fmt: str) -> str:
            if not values:
                return 'n/a'
            return (fmt + ' / ' + fmt) % (statistics.median(values), max(values))
        by_kind = {c['kind']: c for c in self.clients}
        out += ['| measure | value |', '|---|---|',
                '| restarts | %d of %d |' % (len(self.restarts), args.restarts),
                '| requests OK (HTTP keep-alive / HTTP fresh / TCP echo) | %s (%s) |' % (
                    '{:,}'.format(self.ok), ' / '.join('{:,}'.format(by_kind[k]['ok']) if k in by_kind else '?'
                                                       for k in KINDS)),
                '| failed (target 0) | **%d** |' % self.failed,
                '| retried (RFC 9112 §9.3.1) | %d |' % self.retried,
                '| requests/s during the run (all kinds) | %s |' % '{:,.0f}'.format(rate),
                '| requests/s before the first restart | %s |' % '{:,.0f}'.format(self.steady_rate),
                '| restart command, median / max | %s |' % med_max(commands, '%.2f s'),
                '| time to new conf serving, median / max | %s |' % med_max(new_conf, '%.3f s'),
                '| new server ready (its pid in the pid file), median / max | %s |' % med_max(
                    [r['ready'] for r in self.restarts], '%.2f s'),
                '| old main process exited, median / max (from launching restart) | %s |' % med_max(old_exit, '%.2f s'),
                '| old server\'s last process exited, median / max (from launching restart) | %s |' % med_max(
                    old_gone, '%.2f s'),
                '| probe requests (new text polling, 10 ms apart) OK | %d |' % self.bench.probe_ok,
                '| worker restarts in the last server (stats) | %s |' % (
                    ', '.join('%s %d' % kv for kv in sorted(self.worker_restarts.items())) or 'n/a'),
                '']
        if self.reasons:
            out += ['Failure reasons:', '', '| count | reason |', '|---|---|']
            out += ['| %d | %s |' % (n, reason.replace('|', '\\|')) for reason, n in self.reasons.most_common()]
            samples = sorted(s for c in self.clients for s in c['samples'])[:20]
            if samples:
                out += ['', 'First failures (UTC):', '', '```']
                out += ['%s.%03d %s' % (time.strftime('%H:%M:%S', time.gmtime(t)), int(t * 1000) % 1000, reason)
                        for t, reason in samples]
                out += ['```']
            out += ['']
        cpu_rows = [('client %s (%d threads)' % (c['kind'], self.args.threads), c['cpu'], c['wall'])
                    for c in self.clients]
        client_cpu = sum(c['cpu'] for c in self.clients)
        cpu_rows += [('clients, all', client_cpu, self.load_seconds),
                     ('brimd servers (all workers, supervisors, mains)', self.server_cpu, self.load_seconds),
                     ('brimd commands (start, restarts, with their app probes)', self.command_cpu, self.load_seconds),
                     ('bench main process (probes, CPU sampling)', self.bench_cpu, self.load_seconds)]
        capacity = self.host['nproc'] * self.load_seconds
        used = client_cpu + self.server_cpu + self.command_cpu + self.bench_cpu
        out += ['CPU (seconds; share = CPU s / wall s of the load, 1.00 = one CPU busy):', '',
                '| process | CPU s | share |', '|---|---|---|']
        out += ['| %s | %.1f | %.2f |' % (name, cpu, cpu / wall if wall > 0 else 0) for name, cpu, wall in cpu_rows]
        out += ['| all of it, of %d CPUs x %.1f s = %.1f CPU s | %.1f | %.0f%% |' % (
            self.host['nproc'], self.load_seconds, capacity, used, 100 * used / capacity if capacity else 0), '']
        out += [self.bottleneck(client_cpu, used, capacity), '']
        if self.retried == 0 and self.failed == 0 and self.restarts:
            out += ['No request needed the RFC 9112 §9.3.1 retry: after SIGHUP the old workers answer whatever '
                    'arrives on an open keep-alive connection with `Connection: close` (and close connections idle '
                    'for 1 s), so the keep-alive clients moved to the new server without ever seeing a connection '
                    'close under a request.', '']
        out += ['Per restart (seconds from launching `brimd restart`):', '',
                '| # | old main pid | new main pid | new conf served | new server ready (pid file) | old main exited '
                '| command exited | old server gone |', '|---|---|---|---|---|---|---|---|']
        out += ['| %d | %d | %d | %.3f | %.2f | %.2f | %.2f | %s |' % (
            r['number'], r['old'], r['new'], r['new_conf'], r['ready'], r['old_exited'], r['command'],
            '(> 40 s)' if r['old_server_gone'] is None else '%.2f' % r['old_server_gone']) for r in self.restarts]
        out += ['', 'OK requests/s by phase (from the load clients\' counters, sampled every %g s):' % (
            self.timeline.interval), '', '| phase | seconds | HTTP keep-alive | HTTP fresh | TCP echo | all |',
                '|---|---|---|---|---|---|']
        edges = [('before restart 1', self.load_span[0])] + [
            ('restart %d until the next%s' % (r['number'], '' if r is not self.restarts[-1] else ' (end)'),
             r['launched_at']) for r in self.restarts] + [('', self.load_span[1])]
        for (name, start), (_, end) in zip(edges, edges[1:], strict=False):
            rates = self.timeline.rates(start, end)
            if rates:
                out.append('| %s | %.1f | %s | %s |' % (name, end - start,
                                                        ' | '.join('{:,.0f}'.format(r) for r in rates),
                                                        '{:,.0f}'.format(sum(rates))))
        bodies: Counter = Counter()
        for c in self.clients:
            bodies.update(c['bodies'])
        out += ['', 'Responses per conf text (load clients): %s' % ', '.join(
            '%s %s' % (body, '{:,}'.format(n)) for body, n in sorted(bodies.items(), key=lambda kv: int(
                kv[0][len(TEXT_PREFIX):]) if kv[0][len(TEXT_PREFIX):].isdigit() else -1)), '']
        out += ['brimd log lines by level: %s' % ', '.join('%s %s' % (level, '{:,}'.format(n))
                                                          for level, n in self.levels.most_common()), '']
        if self.notable:
            out += ['Warnings and errors in the brimd log (first %d):' % len(self.notable), '', '```']
            out += self.notable + ['```', '']
        if self.bench.notes:
            out += ['Notes:', ''] + ['- ' + note for note in self.bench.notes] + ['']
        stuck = sum(c.get('stuck_threads', 0) for c in self.clients)
        if stuck:
            out += ['%d client threads were still running when their process reported.' % stuck, '']
        return '\n'.join(out)

    def bottleneck(self, client_cpu: float, used: float, capacity: float) -> str:
        if capacity <= 0 or not self.clients:
            return ''
        busiest = max(self.clients, key=lambda c: c['cpu'] / c['wall'] if c['wall'] else 0)
        busiest_share = busiest['cpu'] / busiest['wall'] if busiest['wall'] else 0
        lines = ['Busiest client process: %s at %.2f CPU (a Python process runs on one CPU at a time, '
                 'its GIL: 1.00 is its limit). The CPUs were %.0f%% busy: brimd\'s servers %.2f CPU (%.0f%% of the '
                 'CPU used), the clients %.2f CPU (%.0f%%).' % (
                     busiest['kind'], busiest_share, 100 * used / capacity, self.server_cpu / self.load_seconds,
                     100 * self.server_cpu / used if used else 0, client_cpu / self.load_seconds,
                     100 * client_cpu / used if used else 0)]
        if busiest_share >= 0.85:
            lines.append('That client process was CPU-bound: the Python client is a bottleneck here.')
        elif used >= 0.8 * capacity:
            lines.append('No client process was near its limit, so the Python client is not the bottleneck; the '
                         'machine\'s CPUs are, mostly spent by brimd. Clients and server share them, so the rate '
                         'is a floor, not brimd\'s capacity: on its own machine the server would also have the '
                         'clients\' %.2f CPU.' % (client_cpu / self.load_seconds))
        else:
            lines.append('Neither the clients nor the CPUs were saturated: the rate is set by round trips (latency).')
        return ' '.join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--restarts', type=int, default=10, help='restarts to perform (default 10)')
    parser.add_argument('--seconds-between', type=float, default=1.0,
                        help='load-only seconds before the first restart and after each (default 1.0)')
    parser.add_argument('--threads', type=int, default=4, help='threads per client process (default 4)')
    parser.add_argument('--log-level', default='INFO', help='brimd log_level (INFO: an access line per request)')
    parser.add_argument('--hard-cap', type=float, default=0.0,
                        help='seconds after which everything is killed (default 120 + 30 per restart)')
    parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'results-restart.md'),
                        help='where to write the results (default bench/results-restart.md)')
    args = parser.parse_args()
    if not args.hard_cap:
        args.hard_cap = 120 + 30 * args.restarts
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
