#!/usr/bin/env python3
"""Compare brimd with reference servers, same machine, same run (GitHub issue 7).

One command, ``python bench/compare.py``, starts brimd and the reference
servers side by side on free 127.0.0.1 ports (conf, app module, pid file,
logs, counters and the compiled load clients in a temporary directory) and
loads each in turn, interleaved: a warm-up load of each, then ``--rounds``
rounds (default 3) of A B C, ``--seconds`` (default 5) per load. Every
comparison is the ratio of two medians from this one run, so a busy machine
slows both sides alike (as far as interleaving can make it so).

Servers, two workers each:

* **brimd** (``python -m brim -c CONF start``), one server for the three
  scenarios: ``[wsgi]`` ``apps = hello stats`` (``hello``: a ``call =``
  class in a generated module answering ``Hello, World!\\n`` with
  ``Content-Length``; ``stats``: ``brim.wsgi_stats.WSGIStats`` at
  ``/stats``, so stats counting is on), ``[tcp]`` ``brim.tcp_echo.TCPEcho``,
  ``[udp]`` ``brim.udp_echo.UDPEcho``; ``log_file`` in the temporary
  directory at ``log_level = INFO``, so every request writes its NOTICE
  access-log line.
* **bare Eventlet** (``bench/refs/``): the least code that serves the same on
  Eventlet, pre-forked (the parent imports Eventlet, binds, forks 2 children,
  each serves the shared socket): ``eventlet_wsgi.py`` (``eventlet.wsgi.server`` with
  ``log_output=False``: no access log), ``eventlet_tcp_echo.py`` (a green
  thread per connection, ``recv``/``sendall``), ``eventlet_udp_echo.py``
  (one ``recvfrom``/``sendto`` loop, no spawn). They run on this venv's
  Python and Eventlet. Each counts its requests, bytes or datagrams per
  worker in a shared 8-byte file mapping (``bench/refs/prefork.py``), as
  brimd counts in shared memory.
* **gunicorn** (WSGI only) in its own venv, ``bench/.venv-ref`` (made on
  the first run: ``python -m venv``, then pip installs the latest gunicorn
  and the *same* eventlet and greenlet versions as this venv). gunicorn
  26.0 removed the eventlet worker, so when the latest has none, the newest
  release before 26 is installed instead (and if even that has none,
  gevent is the fallback); the results say which. ``-k eventlet -w 2``,
  gunicorn's defaults otherwise (no access log), serving
  ``bench/refs/hello_app.py``, the same hello app as the bare server.

Scenarios:

1. ``wsgi``: ``wrk -t2 -c50 -d{seconds}s --latency`` on ``/``: requests/s,
   p50 and p99 latency, socket errors and non-2xx answers.
2. ``tcp``: ``bench/clients/tcp_echo_load.c`` (compiled with gcc into the
   temporary directory): 50 connections, each sending 4 KiB and reading the
   4 KiB echoed back, over and over; MB/s (10^6 bytes/s) of echoed bytes.
3. ``udp``: ``bench/clients/udp_echo_load.c``: 8 connected UDP sockets (8
   source ports), 32 64-byte datagrams in flight on each; replies/s. A socket
   without a reply for 100 ms counts its datagrams in flight as lost and sends
   a new window, so losses cannot stall it (a late reply to one of those is
   still counted, but does not widen the window).

Per load and server: the CPU of the server (utime + stime deltas from
``/proc/PID/stat`` of its processes: for the references the parent and its
workers; for brimd the main process, the scenario's supervisor and its
workers, not the other subservers' idle ones) and of the load client
(``os.wait4`` rusage), both as cores (CPU seconds / wall seconds of the
client's run), and "everything else": all CPUs' busy time from
``/proc/stat`` minus those two, which shows how much other jobs on the
machine took during that load; each worker's VmRSS (``/proc/PID/status``)
after the load; and the split between workers (brimd: per-worker
``request_count``, ``byte_count`` or ``datagram_count`` from ``/stats``
before and after; references: their shared counters).

``idle`` reports time on CPU from ``/proc/PID/schedstat`` (nanoseconds) and
from utime + stime (clock ticks, too coarse for 10 s of near nothing); the
target takes the larger.

Extra measurements:

* ``idle``: right after brimd starts (all three subservers, 2 workers each),
  wait 2 s, then the CPU of all its processes over ``--idle-seconds`` (10)
  of doing nothing, in percent of one core.
* ``stats64``: a second brimd with ``[wsgi] workers = 64`` and the stats
  app; once ``/stats`` shows all 64 workers up (pid and start time, bounded
  wait), 50 sequential ``GET /stats`` on one keep-alive connection, each timed
  from sending to the last body byte: median and max in ms.

Targets (PASS/FAIL, ratios of this run's medians): WSGI requests/s brimd >=
1.0x bare Eventlet and p99 <= 1.0x; TCP MB/s >= 1.0x; UDP datagrams/s >=
0.95x; every scenario's largest brimd worker RSS <= the largest bare worker's
+ 5 MiB; idle < 1 % of a core; ``/stats`` with 64 workers < 10 ms (median).

Processes: every server is stopped by its own pid in a ``finally`` (brimd
with ``brimd stop``, then SIGKILL to its process group if anything is left;
the references were started with ``start_new_session=True`` and get SIGTERM
then SIGKILL to that process group); every wait has a timeout; SIGALRM after
``--hard-cap`` seconds kills everything this run started and exits 2. Never
by name.

Prints a Markdown report and writes it to ``bench/results.md`` (``--out``).
Exits 0 when every target that ran passed, 1 otherwise (2: hard cap).

Usage: python bench/compare.py [--rounds 3] [--seconds 5] [--only wsgi,tcp,udp,idle,stats64] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, 'bench')
REFS = os.path.join(BENCH, 'refs')
CLIENTS = os.path.join(BENCH, 'clients')
REF_VENV = os.path.join(BENCH, '.venv-ref')
SCENARIOS = ('wsgi', 'tcp', 'udp', 'idle', 'stats64')
WORKERS = 2
WRK_THREADS, WRK_CONNECTIONS = 2, 50
TCP_CONNECTIONS, TCP_MESSAGE = 50, 4096
UDP_SIZE = 64
STATS64_WORKERS, STATS64_REQUESTS = 64, 50
TICK = os.sysconf('SC_CLK_TCK')
MIB = 1024 * 1024
# gunicorn 26.0 removed the eventlet worker (its 25.x geventlet.py says so); the newest before it:
GUNICORN_WITH_EVENTLET = 'gunicorn<26'

HELLO_APP = '''"""Generated by bench/compare.py: brimd's hello-world app."""


class Hello:
    """WSGI: Hello, World! for every path but /stats, which goes on to the stats app."""

    def __init__(self, name, parsed_conf, next_app):
        self.next_app = next_app

    def __call__(self, env, start_response):
        if env['PATH_INFO'] == '/stats':
            return self.next_app(env, start_response)
        start_response('200 OK', [('Content-Length', '14'), ('Content-Type', 'text/plain')])
        return [b'Hello, World!\\n']
'''

BRIMD_CONF = '''[brim]
ip = 127.0.0.1
pid_file = {tmp}/brimd.pid
log_file = {tmp}/brimd.log
log_level = INFO

[wsgi]
port = {wsgi}
workers = {workers}
apps = hello stats

[hello]
call = benchhello.Hello

[stats]
call = brim.wsgi_stats.WSGIStats

[tcp]
port = {tcp}
workers = {workers}
call = brim.tcp_echo.TCPEcho

[udp]
port = {udp}
workers = {workers}
call = brim.udp_echo.UDPEcho
'''

STATS64_CONF = '''[brim]
ip = 127.0.0.1
pid_file = {tmp}/brimd64.pid
log_file = {tmp}/brimd64.log
log_level = INFO

[wsgi]
port = {wsgi}
workers = {workers}
apps = stats

[stats]
call = brim.wsgi_stats.WSGIStats
'''


class BenchError(Exception):
    """A server or client did not do what the bench needs; the scenario is reported as failed."""


# -- /proc and small helpers ----------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM, taken: Optional[set[int]] = None) -> int:
    """A port free for both TCP and UDP on 127.0.0.1, not in ``taken``."""
    taken = taken if taken is not None else set()
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as sock:
                sock.bind(('127.0.0.1', port))
        except OSError:
            continue
        if port not in taken:
            taken.add(port)
            return port
    raise BenchError('no free port found')


def proc_stat(pid: int) -> Optional[list[bytes]]:
    """Fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as fp:
            data = fp.read()
    except OSError:
        return None
    return data[data.rfind(b')') + 2:].split()


def live(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in (b'Z', b'X')


def all_stats() -> dict[int, list[bytes]]:
    out = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            fields = proc_stat(int(entry))
            if fields:
                out[int(entry)] = fields
    return out


def children(pid: int) -> list[int]:
    """Live children of ``pid``."""
    return sorted(p for p, f in all_stats().items() if int(f[1]) == pid and f[0] not in (b'Z', b'X'))


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid``."""
    return sorted(p for p, f in all_stats().items() if int(f[3]) == sid and f[0] not in (b'Z', b'X'))


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime (clock ticks) of each pid still there."""
    out = {}
    for pid in pids:
        fields = proc_stat(pid)
        if fields and len(fields) > 12:
            out[pid] = int(fields[11]) + int(fields[12])
    return out


def schedstat_ns(pids: list[int]) -> int:
    """Sum of time on CPU (ns, /proc/PID/schedstat) of ``pids``; a finer cross-check of the ticks."""
    total = 0
    for pid in pids:
        try:
            with open('/proc/%d/schedstat' % pid) as fp:
                total += int(fp.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of all CPUs from /proc/stat: busy is user + nice + system + irq + softirq."""
    try:
        with open('/proc/stat') as fp:
            fields = [int(v) for v in fp.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    fields += [0] * (8 - len(fields))
    return fields[0] + fields[1] + fields[2] + fields[5] + fields[6], fields[7]


def rss_mib(pid: int, path: str = '/proc/%d/status', field: str = 'VmRSS:') -> Optional[float]:
    """VmRSS of ``pid`` in MiB (or another kB field of another /proc file), None if unreadable."""
    try:
        with open(path % pid) as fp:
            for line in fp:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def pss_mib(pid: int) -> Optional[float]:
    """Proportional set size (shared pages divided among their sharers) of ``pid`` in MiB."""
    return rss_mib(pid, '/proc/%d/smaps_rollup', 'Pss:')


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something true (returned) or ``timeout`` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (OSError, ValueError, KeyError, BenchError):
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """Read one Content-Length framed HTTP response: (status, body)."""
    while b'\r\n\r\n' not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError('closed before the end of the response head')
        buffer += data
    end = buffer.index(b'\r\n\r\n')
    lines = bytes(buffer[:end]).split(b'\r\n')
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b':')
        if name.strip().lower() == b'content-length':
            length = int(value)
    total = end + 4 + length
    while len(buffer) < total:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError('closed in the body')
        buffer += data
    body = bytes(buffer[end + 4:total])
    del buffer[:total]
    return int(lines[0].split(b' ', 2)[1]), body


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        sock.sendall(b'GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' % path.encode())
        return read_response(sock, bytearray())


def tcp_echo_ok(port: int) -> bool:
    with socket.create_connection(('127.0.0.1', port), timeout=2) as sock:
        sock.sendall(b'ping')
        return sock.recv(16) == b'ping'


def udp_echo_ok(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.connect(('127.0.0.1', port))
        sock.send(b'ping')
        return sock.recv(16) == b'ping'


def run_command(argv: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
    """subprocess.run with a timeout (raised as BenchError), output captured as text."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              **kwargs)
    except subprocess.TimeoutExpired as err:
        raise BenchError('%s did not finish within %g s' % (shlex.join(argv), timeout)) from err


# -- everything this run started, for the finally blocks and the hard cap -------------------


class Registry:
    """Process groups and client processes this run started, to stop by pid."""

    def __init__(self) -> None:
        self.groups: set[int] = set()  # process group ids (our start_new_session children, brimd mains)
        self.clients: set[int] = set()  # load client pids, not yet reaped

    def kill_everything(self) -> None:
        for pid in list(self.clients):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pgid in list(self.groups):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


REGISTRY = Registry()


def run_client(argv: list[str], timeout: float, tmp: str) -> dict:
    """Run a load client; return its stdout, stderr, exit status, wall seconds and CPU seconds (wait4)."""
    out_fd, out_path = tempfile.mkstemp(dir=tmp, prefix='client-out-')
    err_fd, err_path = tempfile.mkstemp(dir=tmp, prefix='client-err-')
    with open(out_fd, 'w') as out, open(err_fd, 'w') as err:
        began = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    REGISTRY.clients.add(proc.pid)
    status, usage, reaped = 0, None, False
    try:
        deadline = began + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped = True
                break
            if time.monotonic() > deadline:
                raise BenchError('%s did not finish within %g s; killed' % (argv[0], timeout))
            time.sleep(0.02)
    finally:
        if not reaped:  # timed out, or interrupted: kill it by its pid and reap it
            os.kill(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
        REGISTRY.clients.discard(proc.pid)
        proc.returncode = os.waitstatus_to_exitcode(status) if reaped else -9
    wall = time.monotonic() - began
    with open(out_path) as out, open(err_path) as err:
        stdout, stderr = out.read(), err.read()
    os.unlink(out_path)
    os.unlink(err_path)
    return {'stdout': stdout, 'stderr': stderr, 'code': proc.returncode, 'wall': wall,
            'cpu': usage.ru_utime + usage.ru_stime if usage else 0.0}


# -- servers ----------------------------------------------------------------------------------


class Target:
    """One server as one scenario sees it: where to load it, its processes, its workers' counts."""

    def __init__(self, key: str, label: str, port: int) -> None:
        self.key, self.label, self.port = key, label, port

    def cpu_pids(self) -> list[int]:
        raise NotImplementedError

    def worker_pids(self) -> list[int]:
        raise NotImplementedError

    def counts(self) -> dict[int, int]:
        """Per worker pid: what it counted so far (requests, bytes or datagrams)."""
        raise NotImplementedError


class RefServer:
    """A reference server started by this run in a new session; stopped by its process group."""

    def __init__(self, key: str, argv: list[str], env: dict, tmp: str, workers: int = WORKERS) -> None:
        self.key, self.argv, self.workers = key, argv, workers
        self.log_path = os.path.join(tmp, '%s.log' % key)
        with open(self.log_path, 'w') as log:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, cwd=tmp)
        REGISTRY.groups.add(self.proc.pid)

    def workers_up(self) -> list[int]:
        if self.proc.poll() is not None:
            raise BenchError('%s exited with status %s: %s' % (self.key, self.proc.returncode, self.log_tail()))
        found = children(self.proc.pid)
        return found if len(found) == self.workers else []

    def log_tail(self) -> str:
        try:
            with open(self.log_path, errors='replace') as fp:
                return ' / '.join(fp.read().strip().splitlines()[-5:])
        except OSError:
            return ''

    def wait_ready(self, probe: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        if not wait_for(self.workers_up, timeout):
            raise BenchError('%s: %d workers not up within %g s: %s' % (self.key, self.workers, timeout,
                                                                       self.log_tail()))
        if not wait_for(probe, max(1.0, deadline - time.monotonic())):
            raise BenchError('%s: does not answer: %s' % (self.key, self.log_tail()))

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 5 s; reap it."""
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if not wait_for(lambda: not session_members(pgid), 3):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        REGISTRY.groups.discard(pgid)


class RefTarget(Target):
    def __init__(self, key: str, label: str, port: int, server: RefServer, count_dir: str) -> None:
        super().__init__(key, label, port)
        self.server, self.count_dir = server, count_dir

    def cpu_pids(self) -> list[int]:
        return [self.server.proc.pid] + children(self.server.proc.pid)

    def worker_pids(self) -> list[int]:
        return children(self.server.proc.pid)

    def counts(self) -> dict[int, int]:
        out = {}
        for pid in self.worker_pids():
            try:
                with open(os.path.join(self.count_dir, str(pid)), 'rb') as fp:
                    out[pid] = int.from_bytes(fp.read(8), sys.byteorder, signed=True)
            except OSError:
                out[pid] = 0
        return out


class Brimd:
    """A brimd started with ``python -m brim -c CONF start``, stopped with ``stop`` (then its process group)."""

    def __init__(self, tmp: str, conf_text: str, name: str, wsgi_port: int) -> None:
        self.tmp, self.name, self.wsgi_port = tmp, name, wsgi_port
        self.conf_path = os.path.join(tmp, name + '.conf')
        self.pid_path = os.path.join(tmp, name + '.pid')
        self.log_path = os.path.join(tmp, name + '.log')
        with open(self.conf_path, 'w') as fp:
            fp.write(conf_text)
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [tmp, REPO] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else [])))
        self.main: Optional[int] = None
        self.start_seconds = 0.0
        self.ports: dict[str, int] = {}
        self.stopped = False

    def command(self, command: str, timeout: float) -> subprocess.CompletedProcess:
        return run_command([sys.executable, '-m', 'brim', '-c', self.conf_path, command], timeout, env=self.env)

    def read_pid(self) -> Optional[int]:
        try:
            with open(self.pid_path) as fp:
                text = fp.read().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def start(self, timeout: float = 120) -> None:
        began = time.monotonic()
        try:
            done = self.command('start', timeout)
        finally:
            self.main = self.read_pid()
            if self.main:
                REGISTRY.groups.add(self.main)  # the daemonized main leads its own session and group
        self.start_seconds = time.monotonic() - began
        if done.returncode != 0 or not self.main:
            raise BenchError('brimd start failed (%d): %s %s' % (done.returncode, done.stdout.strip(),
                                                                 done.stderr.strip()))

    def stats(self) -> dict:
        status, body = http_get(self.wsgi_port, '/stats')
        if status != 200:
            raise BenchError('GET /stats: status %d' % status)
        return json.loads(body)

    def stop(self) -> list[str]:
        """``brimd stop``; SIGKILL to its process group if anything is left. Returns notes."""
        notes: list[str] = []
        if self.stopped:
            return notes
        self.stopped = True
        if self.main is None:
            self.main = self.read_pid()
        try:
            done = self.command('stop', 60)
            if done.returncode != 0:
                notes.append('brimd stop (%s) exited %d: %s' % (self.name, done.returncode, done.stderr.strip()))
        except (BenchError, OSError) as err:
            notes.append('brimd stop (%s): %s' % (self.name, err))
        if self.main:
            if not wait_for(lambda: not session_members(self.main), 15):
                notes.append('brimd (%s) main %d still had processes %s after stop; killed its process group'
                             % (self.name, self.main, session_members(self.main)))
                try:
                    os.killpg(self.main, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            REGISTRY.groups.discard(self.main)
        return notes

    def log_counts(self) -> tuple[int, int, int]:
        """(access-log NOTICE lines, WARNING or worse lines, bytes) of the log."""
        notice = bad = size = 0
        try:
            with open(self.log_path, 'rb') as fp:
                for line in fp:
                    size += len(line)
                    parts = line.split(b' ', 3)
                    level = parts[2] if len(parts) > 2 else b''
                    if level == b'NOTICE':
                        notice += 1
                    elif level in (b'WARNING', b'ERROR', b'CRITICAL'):
                        bad += 1
        except OSError:
            pass
        return notice, bad, size


class BrimdTarget(Target):
    """One subserver of the bench's brimd."""

    COUNTERS = {'wsgi': 'request_count', 'tcp': 'byte_count', 'udp': 'datagram_count'}

    def __init__(self, label: str, port: int, brimd: Brimd, subserver: str) -> None:
        super().__init__('brimd', label, port)
        self.brimd, self.subserver = brimd, subserver

    def buckets(self) -> list[dict]:
        entry = self.brimd.stats()[self.subserver]
        return [bucket for _, bucket in sorted((k, v) for k, v in entry.items() if isinstance(v, dict))]

    def worker_pids(self) -> list[int]:
        return [bucket['pid'] for bucket in self.buckets() if bucket.get('pid')]

    def cpu_pids(self) -> list[int]:
        workers = self.worker_pids()
        supervisors = {int(f[1]) for f in (proc_stat(pid) for pid in workers) if f}
        return [self.brimd.main or 0] + sorted(supervisors) + workers

    def counts(self) -> dict[int, int]:
        return {bucket['pid']: bucket.get(self.COUNTERS[self.subserver], 0) for bucket in self.buckets()
                if bucket.get('pid')}


# -- the reference venv ------------------------------------------------------------------------


def ref_python() -> str:
    return os.path.join(REF_VENV, 'bin', 'python')


def probe_ref_venv() -> dict:
    code = ('import importlib.metadata as m, importlib.util as u, json\n'
            'def v(name):\n'
            '    try:\n'
            '        return m.version(name)\n'
            '    except m.PackageNotFoundError:\n'
            '        return None\n'
            'has = lambda name: v("gunicorn") is not None and u.find_spec(name) is not None\n'
            'print(json.dumps({"gunicorn": v("gunicorn"), "eventlet": v("eventlet"), "greenlet": v("greenlet"),'
            ' "gevent": v("gevent"), "eventlet_worker": has("gunicorn.workers.geventlet"),'
            ' "gevent_worker": has("gunicorn.workers.ggevent")}))\n')
    done = run_command([ref_python(), '-c', code], 60)
    if done.returncode != 0:
        raise BenchError('probing %s failed: %s' % (REF_VENV, done.stderr.strip()))
    return json.loads(done.stdout)


def pip_install(requirements: list[str], log: list[str]) -> None:
    argv = [ref_python(), '-m', 'pip', 'install', '-q', '--upgrade'] + requirements
    log.append(shlex.join(['pip', 'install', '--upgrade'] + requirements))
    print('  ' + log[-1], flush=True)
    done = run_command(argv, 900)
    if done.returncode != 0:
        raise BenchError('%s failed: %s' % (shlex.join(argv), done.stderr.strip()[-2000:]))


def ensure_ref_venv() -> dict:
    """Make (or check) bench/.venv-ref; return what gunicorn worker to use and how it was chosen."""
    eventlet_version = importlib.metadata.version('eventlet')
    greenlet_version = importlib.metadata.version('greenlet')
    info_path = os.path.join(REF_VENV, 'bench-compare.json')
    pins = ['eventlet==' + eventlet_version, 'greenlet==' + greenlet_version]
    info: dict = {}
    if os.path.exists(ref_python()) and os.path.exists(info_path):
        with open(info_path) as fp:
            info = json.load(fp)
        found = probe_ref_venv()
        if found['eventlet'] != eventlet_version or found['greenlet'] != greenlet_version:
            print('bench/.venv-ref: eventlet/greenlet differ from this venv; reinstalling them', flush=True)
            pip_install(pins, info.setdefault('setup', []))
            found = probe_ref_venv()
        info['found'] = found
    else:
        print('creating bench/.venv-ref (first run)', flush=True)
        done = run_command([sys.executable, '-m', 'venv', '--clear', REF_VENV], 300)
        if done.returncode != 0:
            raise BenchError('python -m venv failed: %s' % done.stderr.strip())
        setup: list[str] = []
        pip_install(['gunicorn', 'packaging'] + pins, setup)
        found = probe_ref_venv()
        info = {'latest_gunicorn': found['gunicorn'], 'latest_has_eventlet_worker': found['eventlet_worker'],
                'setup': setup, 'created': time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}
        if not found['eventlet_worker']:
            pip_install([GUNICORN_WITH_EVENTLET] + pins, setup)
            found = probe_ref_venv()
        if not found['eventlet_worker']:
            pip_install(['gevent'], setup)
            found = probe_ref_venv()
        info['found'] = found
        with open(info_path, 'w') as fp:
            json.dump(info, fp, indent=1)
    found = info['found']
    if found['eventlet_worker']:
        info['worker'] = 'eventlet'
    elif found['gevent_worker'] and found['gevent']:
        info['worker'] = 'gevent'
    else:
        info['worker'] = 'sync'
    return info


# -- loads ----------------------------------------------------------------------------------------

LATENCY = re.compile(r'^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$', re.M)
UNITS = {'us': 0.001, 'ms': 1.0, 's': 1000.0}


def parse_wrk(text: str) -> dict:
    rate = re.search(r'Requests/sec:\s+([\d.]+)', text)
    total = re.search(r'(\d+) requests in', text)
    if not rate or not total:
        raise BenchError('cannot parse wrk output: %r' % text[-500:])
    out: dict = {'rate': float(rate.group(1)), 'requests': int(total.group(1)), 'errors': 0}
    for percent, value, unit in LATENCY.findall(text):
        out['p' + percent] = float(value) * UNITS[unit]
    errors = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', text)
    if errors:
        out['errors'] += sum(int(n) for n in errors.groups())
        out['socket_errors'] = errors.group(0)
    non2xx = re.search(r'Non-2xx or 3xx responses: (\d+)', text)
    if non2xx:
        out['errors'] += int(non2xx.group(1))
    return out


class Loader:
    """Runs one load of a scenario against a target; returns the client's figures."""

    def __init__(self, args: argparse.Namespace, tmp: str, binaries: dict[str, str]) -> None:
        self.args, self.tmp, self.binaries = args, tmp, binaries

    def __call__(self, scenario: str, target: Target, seconds: float) -> dict:
        timeout = seconds + 30
        if scenario == 'wsgi':
            argv = ['wrk', '-t%d' % WRK_THREADS, '-c%d' % WRK_CONNECTIONS, '-d%ds' % max(1, round(seconds)),
                    '--latency', 'http://127.0.0.1:%d/' % target.port]
            ran = run_client(argv, timeout, self.tmp)
            if ran['code'] != 0:
                raise BenchError('wrk exited %d: %s' % (ran['code'], ran['stderr'].strip()))
            result = parse_wrk(ran['stdout'])
            result['metric'] = result['rate']
        elif scenario == 'tcp':
            argv = [self.binaries['tcp'], '127.0.0.1', str(target.port), str(TCP_CONNECTIONS), '%g' % seconds,
                    str(TCP_MESSAGE)]
            ran = run_client(argv, timeout, self.tmp)
            result = self.parse_json(ran, 'tcp_echo_load')
            result['metric'] = result['mb_per_s']
            result['errors'] = result['errors']
        else:
            argv = [self.binaries['udp'], '127.0.0.1', str(target.port), str(self.args.udp_sockets),
                    str(self.args.udp_window), '%g' % seconds, str(UDP_SIZE)]
            ran = run_client(argv, timeout, self.tmp)
            result = self.parse_json(ran, 'udp_echo_load')
            result['metric'] = result['per_s']
            result['errors'] = result['errors'] + result['wrong']
        result['client_cpu'], result['client_wall'] = ran['cpu'], ran['wall']
        return result

    @staticmethod
    def parse_json(ran: dict, name: str) -> dict:
        try:
            result = json.loads(ran['stdout'].strip().splitlines()[-1])
        except (ValueError, IndexError) as err:
            raise BenchError('%s exited %d without its JSON line: %s' % (name, ran['code'], ran['stderr'].strip())
                             ) from err
        if ran['code'] != 0:
            raise BenchError('%s exited %d: %s %s' % (name, ran['code'], ran['stdout'], ran['stderr']))
        if ran['stderr'].strip():
            result['stderr'] = ran['stderr'].strip()
        return result


def measured_load(load: Loader, scenario: str, target: Target, seconds: float) -> dict:
    """One load with the server's CPU, its workers' RSS and counts around it."""
    pids = target.cpu_pids()
    workers = target.worker_pids()
    counts_before = target.counts()
    ticks_before = cpu_ticks(pids)
    busy_before, steal_before = machine_ticks()
    result = load(scenario, target, seconds)
    busy_after, steal_after = machine_ticks()
    ticks_after = cpu_ticks(pids)
    counts_after = target.counts()
    wall = result['client_wall']
    server_ticks = sum(ticks_after[pid] - ticks_before[pid] for pid in ticks_after if pid in ticks_before)
    result['server_cpu'] = server_ticks / TICK / wall
    result['worker_cpu'] = [(ticks_after.get(pid, 0) - ticks_before.get(pid, 0)) / TICK / wall for pid in workers]
    result['client_cores'] = result['client_cpu'] / wall
    result['machine_busy'] = (busy_after - busy_before) / TICK / wall
    result['steal'] = (steal_after - steal_before) / TICK / wall
    result['others'] = max(0.0, result['machine_busy'] - result['server_cpu'] - result['client_cores'])
    # Server CPU per unit of work (µs per request or datagram, ms per MB): what the server spends, which
    # other jobs on the machine do not change much, unlike the rate they can take CPU from.
    scale = 1e3 if scenario == 'tcp' else 1e6
    result['cpu_per_unit'] = scale * result['server_cpu'] / result['metric'] if result['metric'] else 0.0
    result['rss'] = [rss_mib(pid) or 0.0 for pid in workers]
    result['pss'] = [pss_mib(pid) or 0.0 for pid in workers]
    result['split'] = [counts_after.get(pid, 0) - counts_before.get(pid, 0) for pid in workers]
    result['lost_processes'] = sorted(set(pids) - set(ticks_after))
    return result


# -- scenarios --------------------------------------------------------------------------------------


class Run:
    """State of one bench run: servers started, results, notes."""

    def __init__(self, args: argparse.Namespace, tmp: str) -> None:
        self.args, self.tmp = args, tmp
        self.ports: set[int] = set()
        self.count_dir = os.path.join(tmp, 'counts')
        os.mkdir(self.count_dir)
        self.notes: list[str] = []
        self.results: dict[str, dict] = {}  # scenario -> {server key: [round results], ...}
        self.labels: dict[str, dict[str, str]] = {}
        self.errors: dict[str, str] = {}
        self.extra: dict[str, dict] = {}
        self.ref_info: dict = {}
        self.brimd: Optional[Brimd] = None
        self.binaries: dict[str, str] = {}
        self.ref_env = dict(os.environ, BENCH_COUNT_DIR=self.count_dir, PYTHONPATH=REFS, PYTHONDONTWRITEBYTECODE='1')

    def port(self, kind: int = socket.SOCK_STREAM) -> int:
        return free_port(kind, self.ports)

    def compile_clients(self) -> None:
        for name in ('tcp', 'udp'):
            source = os.path.join(CLIENTS, '%s_echo_load.c' % name)
            binary = os.path.join(self.tmp, '%s_echo_load' % name)
            done = run_command(['gcc', '-O2', '-Wall', '-o', binary, source], 120)
            if done.returncode != 0:
                raise BenchError('gcc %s failed: %s' % (source, done.stderr.strip()))
            self.binaries[name] = binary

    def start_brimd(self) -> Brimd:
        with open(os.path.join(self.tmp, 'benchhello.py'), 'w') as fp:
            fp.write(HELLO_APP)
        ports = {'wsgi': self.port(), 'tcp': self.port(), 'udp': self.port(socket.SOCK_DGRAM)}
        brimd = Brimd(self.tmp, BRIMD_CONF.format(tmp=self.tmp, workers=WORKERS, **ports), 'brimd', ports['wsgi'])
        brimd.ports = ports
        self.brimd = brimd
        brimd.start()
        expected = lambda: all(  # noqa: E731
            len([b for b in brimd.stats()[name].values() if isinstance(b, dict) and b.get('pid')]) == WORKERS
            for name in ('wsgi', 'tcp', 'udp'))
        if not wait_for(expected, 30):
            raise BenchError('brimd: /stats does not show %d workers per subserver' % WORKERS)
        if not wait_for(lambda: tcp_echo_ok(ports['tcp']), 10) or not wait_for(lambda: udp_echo_ok(ports['udp']), 10):
            raise BenchError('brimd: TCP or UDP echo does not answer')
        return brimd

    def idle(self, brimd: Brimd, started_at: float) -> None:
        """CPU of every brimd process over idle_seconds, starting 2 s after start."""
        time.sleep(max(0.0, started_at + 2.0 - time.monotonic()))
        assert brimd.main
        pids = session_members(brimd.main)
        ticks, ns, began = cpu_ticks(pids), schedstat_ns(pids), time.monotonic()
        time.sleep(self.args.idle_seconds)
        ticks_after, ns_after, wall = cpu_ticks(pids), schedstat_ns(pids), time.monotonic() - began
        used = sum(ticks_after[p] - ticks[p] for p in ticks_after if p in ticks) / TICK
        self.extra['idle'] = {'percent': 100 * used / wall, 'schedstat_percent': (ns_after - ns) / 1e9 / wall * 100,
                              'processes': len(pids), 'seconds': wall, 'cpu_seconds': used}
        print('idle: %.3f %% of a core over %.1f s (%d processes)' % (100 * used / wall, wall, len(pids)), flush=True)

    def scenario(self, scenario: str, targets: list[Target], load: Loader) -> None:
        """Warm-up each target, then rounds of A B C ...; results[scenario][key] = [round results]."""
        results: dict[str, list[dict]] = {t.key: [] for t in targets}
        self.results[scenario] = results
        self.labels[scenario] = {t.key: t.label for t in targets}
        for target in targets:
            load(scenario, target, self.args.warmup)
        for number in range(1, self.args.rounds + 1):
            for target in targets:
                result = measured_load(load, scenario, target, self.args.seconds)
                results[target.key].append(result)
                print('%s round %d %-9s %s  server %.2f cores, client %.2f cores, split %s' % (
                    scenario, number, target.key, fmt_metric(scenario, result['metric']), result['server_cpu'],
                    result['client_cores'], '/'.join(str(n) for n in result['split'])), flush=True)

    def start_ref(self, key: str, argv: list[str], probe: Callable[[], bool]) -> RefServer:
        server = RefServer(key, argv, self.ref_env, self.tmp)
        try:
            server.wait_ready(probe)
        except BaseException:
            server.stop()
            raise
        return server

    def run_wsgi(self, brimd: Brimd, load: Loader) -> None:
        ports = brimd.ports
        bare_port, gunicorn_port = self.port(), self.port()
        servers: list[RefServer] = []
        try:
            bare = self.start_ref('eventlet-wsgi', [sys.executable, os.path.join(REFS, 'eventlet_wsgi.py'),
                                                    '--port', str(bare_port), '--workers', str(WORKERS)],
                                  lambda: http_get(bare_port, '/')[0] == 200)
            servers.append(bare)
            worker = self.ref_info.get('worker', 'eventlet')
            gunicorn = self.start_ref('gunicorn', [ref_python(), '-m', 'gunicorn', '-k', worker, '-w', str(WORKERS),
                                                   '-b', '127.0.0.1:%d' % gunicorn_port, '--error-logfile', '-',
                                                   'hello_app:app'],
                                      lambda: http_get(gunicorn_port, '/')[0] == 200)
            servers.append(gunicorn)
            version = self.ref_info.get('found', {}).get('gunicorn', '?')
            targets: list[Target] = [
                BrimdTarget('brimd (access log on)', ports['wsgi'], brimd, 'wsgi'),
                RefTarget('eventlet', 'bare eventlet.wsgi', bare_port, bare, self.count_dir),
                RefTarget('gunicorn', 'gunicorn %s -k %s' % (version, worker), gunicorn_port, gunicorn,
                          self.count_dir)]
            self.scenario('wsgi', targets, load)
        finally:
            for server in servers:
                server.stop()

    def run_echo(self, scenario: str, brimd: Brimd, load: Loader) -> None:
        ports = brimd.ports
        kind = socket.SOCK_STREAM if scenario == 'tcp' else socket.SOCK_DGRAM
        bare_port = self.port(kind)
        script = os.path.join(REFS, 'eventlet_%s_echo.py' % scenario)
        probe = (lambda: tcp_echo_ok(bare_port)) if scenario == 'tcp' else (lambda: udp_echo_ok(bare_port))
        bare = self.start_ref('eventlet-' + scenario, [sys.executable, script, '--port', str(bare_port),
                                                        '--workers', str(WORKERS)], probe)
        try:
            targets: list[Target] = [
                BrimdTarget('brimd', ports[scenario], brimd, scenario),
                RefTarget('eventlet', 'bare eventlet %s echo' % scenario.upper(), bare_port, bare, self.count_dir)]
            self.scenario(scenario, targets, load)
        finally:
            bare.stop()

    def run_stats64(self) -> None:
        port = self.port()
        brimd = Brimd(self.tmp, STATS64_CONF.format(tmp=self.tmp, wsgi=port, workers=STATS64_WORKERS), 'brimd64',
                      port)
        try:
            brimd.start(timeout=240)

            def all_up() -> Optional[dict]:
                buckets = [b for b in brimd.stats()['wsgi'].values() if isinstance(b, dict)]
                up = [b for b in buckets if b.get('pid') and b.get('start_time')]
                return {'buckets': len(buckets)} if len(up) == STATS64_WORKERS else None
            if not wait_for(all_up, 120, 0.25):
                raise BenchError('/stats never showed %d workers up within 120 s' % STATS64_WORKERS)
            timings = []
            size = 0
            with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buffer = bytearray()
                request = b'GET /stats HTTP/1.1\r\nHost: bench\r\n\r\n'
                for _ in range(STATS64_REQUESTS):
                    began = time.perf_counter()
                    sock.sendall(request)
                    status, body = read_response(sock, buffer)
                    timings.append((time.perf_counter() - began) * 1000)
                    if status != 200:
                        raise BenchError('GET /stats: status %d' % status)
                    size = len(body)
            self.extra['stats64'] = {'median': statistics.median(timings), 'max': max(timings),
                                     'min': min(timings), 'size': size, 'start_seconds': brimd.start_seconds,
                                     'rss': [rss_mib(p) or 0.0 for p in children_of_workers(brimd)]}
            print('stats64: median %.2f ms, max %.2f ms (%d bytes of JSON)' % (
                statistics.median(timings), max(timings), size), flush=True)
        finally:
            self.notes += brimd.stop()


def children_of_workers(brimd: Brimd) -> list[int]:
    try:
        return [b['pid'] for b in brimd.stats()['wsgi'].values() if isinstance(b, dict) and b.get('pid')]
    except (OSError, ValueError, KeyError, BenchError):
        return []


# -- the report -----------------------------------------------------------------------------------


CPU_PER_UNIT = {'wsgi': 'server CPU per request, µs', 'tcp': 'server CPU per echoed MB, ms',
                'udp': 'server CPU per datagram, µs'}


def fmt_metric(scenario: str, value: float) -> str:
    if scenario == 'wsgi':
        return '{:,.0f} req/s'.format(value)
    if scenario == 'tcp':
        return '{:,.1f} MB/s'.format(value)
    return '{:,.0f} datagrams/s'.format(value)


def num(value: float, digits: int = 0) -> str:
    return ('{:,.%df}' % digits).format(value)


def cell(values: list[float], digits: int = 0) -> str:
    """'median (round 1, round 2, ...)'."""
    if not values:
        return 'n/a'
    if len(values) == 1:
        return num(values[0], digits)
    return '**%s** (%s)' % (num(statistics.median(values), digits), ', '.join(num(v, digits) for v in values))


def shares(split: list[int]) -> str:
    total = sum(split)
    return '/'.join('%.0f' % (100 * n / total) for n in split) + '%' if total else 'none counted'


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

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return '?'

    def output(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
            return (done.stdout or done.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            return '?'
    commit = output(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'])
    if output(['git', '-C', REPO, 'status', '--porcelain', '--', 'brim']):
        commit += ' (brim/ has uncommitted changes)'
    return {'cpu': model, 'nproc': os.cpu_count() or 0, 'kernel': platform.release(),
            'python': platform.python_version(), 'eventlet': version('eventlet'), 'greenlet': version('greenlet'),
            'commit': commit, 'date': time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()),
            'wrk': output(['wrk', '--version']).splitlines()[0] if output(['wrk', '--version']) else '?',
            'gcc': output(['gcc', '--version']).splitlines()[0], 'load': os.getloadavg()}


class Report:
    def __init__(self, run: Run, host: dict, argv: list[str], total_seconds: float) -> None:
        self.run, self.host, self.argv, self.total_seconds = run, host, argv, total_seconds
        self.targets: list[tuple[str, str, str]] = []  # (target, measured, PASS/FAIL/not run)

    def med(self, scenario: str, key: str, field: str) -> Optional[float]:
        rounds = self.run.results.get(scenario, {}).get(key)
        if not rounds or any(field not in r for r in rounds):
            return None
        return statistics.median(r[field] for r in rounds)

    def ratio(self, scenario: str, field: str, other: str = 'eventlet') -> Optional[float]:
        mine, theirs = self.med(scenario, 'brimd', field), self.med(scenario, other, field)
        return mine / theirs if mine is not None and theirs else None

    def round_ratios(self, scenario: str, field: str, other: str = 'eventlet') -> list[float]:
        mine = self.run.results.get(scenario, {}).get('brimd', [])
        theirs = self.run.results.get(scenario, {}).get(other, [])
        return [a[field] / b[field] for a, b in zip(mine, theirs, strict=False) if b.get(field)]

    def target(self, name: str, scenario: str, check: Callable[[], Optional[tuple[str, bool]]]) -> None:
        if scenario in self.run.errors:
            self.targets.append((name, 'scenario failed: %s' % self.run.errors[scenario], '**FAIL**'))
            return
        if scenario not in self.run.args.only:
            self.targets.append((name, 'not run (--only)', 'not run'))
            return
        got = check()
        if got is None:
            self.targets.append((name, 'no data', '**FAIL**'))
        else:
            self.targets.append((name, got[0], 'PASS' if got[1] else '**FAIL**'))

    def ratio_check(self, scenario: str, field: str, goal: float, at_least: bool, digits: int,
                    unit: str) -> Callable[[], Optional[tuple[str, bool]]]:
        def check() -> Optional[tuple[str, bool]]:
            ratio = self.ratio(scenario, field)
            if ratio is None:
                return None
            mine, theirs = self.med(scenario, 'brimd', field), self.med(scenario, 'eventlet', field)
            text = '%.2fx (brimd %s / bare %s %s; rounds %s)' % (
                ratio, num(mine or 0, digits), num(theirs or 0, digits), unit,
                ', '.join('%.2f' % r for r in self.round_ratios(scenario, field)))
            efficiency = self.ratio(scenario, 'cpu_per_unit')
            if field == 'metric' and efficiency is not None:
                text += '; %s %.2fx' % (CPU_PER_UNIT[scenario].split(',')[0], efficiency)
            return text, ratio >= goal if at_least else ratio <= goal
        return check

    def rss_check(self, scenario: str) -> Callable[[], Optional[tuple[str, bool]]]:
        def check() -> Optional[tuple[str, bool]]:
            results = self.run.results.get(scenario, {})
            if not results.get('brimd') or not results.get('eventlet'):
                return None
            mine = max(max(r['rss']) for r in results['brimd'])
            theirs = max(max(r['rss']) for r in results['eventlet'])
            return ('brimd %.1f MiB vs bare %.1f MiB (%+.1f MiB)' % (mine, theirs, mine - theirs),
                    mine <= theirs + 5)
        return check

    def build_targets(self) -> None:
        self.target('WSGI req/s brimd >= 1.0x bare eventlet.wsgi', 'wsgi',
                    self.ratio_check('wsgi', 'metric', 1.0, True, 0, 'req/s'))
        self.target('WSGI p99 latency brimd <= 1.0x bare eventlet.wsgi', 'wsgi',
                    self.ratio_check('wsgi', 'p99', 1.0, False, 2, 'ms'))
        self.target('TCP echo MB/s brimd >= 1.0x bare eventlet', 'tcp',
                    self.ratio_check('tcp', 'metric', 1.0, True, 1, 'MB/s'))
        self.target('UDP echo datagrams/s brimd >= 0.95x bare eventlet loop', 'udp',
                    self.ratio_check('udp', 'metric', 0.95, True, 0, 'datagrams/s'))
        for scenario in ('wsgi', 'tcp', 'udp'):
            self.target('%s: largest worker RSS after the loads, brimd <= bare + 5 MiB' % scenario.upper(), scenario,
                        self.rss_check(scenario))

        def idle() -> Optional[tuple[str, bool]]:
            got = self.run.extra.get('idle')
            if not got:
                return None
            worst = max(got['percent'], got['schedstat_percent'])
            return ('%.3f %% of a core (time on CPU from /proc/PID/schedstat, ns; utime + stime ticks say %.3f %%), '
                    '%d processes over %.1f s' % (got['schedstat_percent'], got['percent'], got['processes'],
                                                 got['seconds']), worst < 1.0)
        self.target('idle brimd (wsgi + tcp + udp, 2 workers each) < 1 % of a core', 'idle', idle)

        def stats64() -> Optional[tuple[str, bool]]:
            got = self.run.extra.get('stats64')
            if not got:
                return None
            return ('median %.2f ms, max %.2f ms, min %.2f ms (%s bytes of JSON, %d requests on one keep-alive '
                    'connection)' % (got['median'], got['max'], got['min'], num(got['size']), STATS64_REQUESTS),
                    got['median'] < 10.0)
        self.target('GET /stats with 64 WSGI workers < 10 ms (median)', 'stats64', stats64)

    def passed(self) -> bool:
        return all(result != '**FAIL**' for _, _, result in self.targets)

    def scenario_table(self, scenario: str) -> list[str]:
        results = self.run.results.get(scenario)
        if not results:
            return []
        keys = list(results)
        labels = self.run.labels[scenario]
        others = [k for k in keys if k != 'brimd']
        head = ['measure'] + [labels[k] for k in keys] + ['brimd / %s' % labels[k] for k in others]
        out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]

        def row(name: str, field: str, digits: int, ratio: bool = True,
                get: Optional[Callable[[dict], float]] = None) -> None:
            cells = [name]
            for key in keys:
                cells.append(cell([get(r) if get else r[field] for r in results[key]] if all(
                    get or field in r for r in results[key]) else [], digits))
            for other in others:
                if not ratio:
                    cells.append('')
                    continue
                value = self.ratio(scenario, field, other) if not get else None
                if value is None:
                    cells.append('')
                else:
                    cells.append('%.2f (%s)' % (value, ', '.join('%.2f' % r for r in self.round_ratios(
                        scenario, field, other))))
            out.append('| ' + ' | '.join(cells) + ' |')

        def total_row(name: str, field: str) -> None:
            out.append('| ' + ' | '.join([name] + [num(sum(r.get(field, 0) for r in results[key])) for key in keys]
                                         + [''] * len(others)) + ' |')

        metric = {'wsgi': 'requests/s', 'tcp': 'echoed MB/s', 'udp': 'replies (datagrams)/s'}[scenario]
        row(metric + ': median (each round)', 'metric', 0 if scenario != 'tcp' else 1)
        if scenario == 'wsgi':
            row('p50 latency, ms', 'p50', 2)
            row('p99 latency, ms', 'p99', 2)
        row('server CPU, cores', 'server_cpu', 2)
        row(CPU_PER_UNIT[scenario], 'cpu_per_unit', 1)
        client = {'wsgi': 'wrk (2 threads)', 'tcp': 'tcp_echo_load (1 thread)', 'udp': 'udp_echo_load (1 thread)'}
        row('client CPU, cores: %s' % client[scenario], 'client_cores', 2, ratio=False)
        row('everything else on the machine, cores (all CPUs busy minus server and client)', 'others', 2,
            ratio=False)
        if any(r['steal'] >= 0.05 for rounds in results.values() for r in rounds):
            row('CPU stolen by the hypervisor, cores', 'steal', 2, ratio=False)
        total_row('errors, all rounds (%s)' % {'wsgi': 'wrk socket errors and non-2xx', 'tcp': 'connections '
                  'dropped', 'udp': 'wrong replies, send/receive errors'}[scenario], 'errors')
        if scenario == 'udp':
            total_row('datagrams counted lost (100 ms without a reply), all rounds', 'lost')
            total_row('late replies (to datagrams counted lost), all rounds', 'late')
        cells = ['worker RSS after each load, MiB (largest)']
        for key in keys:
            cells.append('%.1f (%s)' % (max(max(r['rss']) for r in results[key]), '; '.join(
                ' '.join('%.1f' % v for v in r['rss']) for r in results[key])))
        out.append('| ' + ' | '.join(cells + [''] * len(others)) + ' |')
        cells = ['worker PSS after the last load, MiB (shared pages divided among their sharers)']
        for key in keys:
            cells.append(' '.join('%.1f' % v for v in results[key][-1].get('pss', [])))
        out.append('| ' + ' | '.join(cells + [''] * len(others)) + ' |')
        unit = {'wsgi': 'requests', 'tcp': 'bytes', 'udp': 'datagrams'}[scenario]
        cells = ['split of %s between workers, each round' % unit]
        for key in keys:
            cells.append(', '.join(shares(r['split']) for r in results[key]))
        out.append('| ' + ' | '.join(cells + [''] * len(others)) + ' |')
        cells = ['CPU per worker, cores, each round']
        for key in keys:
            cells.append('; '.join(' '.join('%.2f' % v for v in r['worker_cpu']) for r in results[key]))
        out.append('| ' + ' | '.join(cells + [''] * len(others)) + ' |')
        return out

    def markdown(self) -> str:
        run, host, args = self.run, self.host, self.run.args
        self.build_targets()
        out = ['# brimd against reference servers (same run, interleaved)', '',
               'Command: `%s`' % shlex.join(self.argv), '',
               '- date: %s; the bench took %.0f s' % (host['date'], self.total_seconds),
               '- machine: %s, `nproc` %d, Linux %s; load average at the start %s (other jobs may have been '
               'running: clients and servers share these CPUs)' % (
                   host['cpu'], host['nproc'], host['kernel'], ' '.join('%.2f' % v for v in host['load'])),
               '- Python %s; eventlet %s, greenlet %s (brimd and the bare references; the gunicorn venv pins the '
               'same)' % (host['python'], host['eventlet'], host['greenlet']),
               '- brim at commit %s' % host['commit'],
               '- %s; %s' % (host['wrk'], host['gcc'])]
        info = run.ref_info
        if info:
            found = info.get('found', {})
            line = '- gunicorn %s, worker `-k %s`, in `bench/.venv-ref` (eventlet %s, greenlet %s)' % (
                found.get('gunicorn'), info.get('worker'), found.get('eventlet'), found.get('greenlet'))
            if info.get('latest_gunicorn') and not info.get('latest_has_eventlet_worker'):
                line += ('; the latest gunicorn when the venv was made (%s, %s) has no eventlet worker (removed in '
                         '26.0), so this is the newest release before 26' % (info['latest_gunicorn'],
                                                                             info.get('created', '?')))
            if info.get('worker') != 'eventlet':
                line += '; **no eventlet worker could be installed, so gunicorn runs the %s worker**' % info['worker']
            out.append(line)
        if run.results:
            out += ['- rounds %d, %g s per load, warm-up %g s per server; order in each round: %s' % (
                args.rounds, args.seconds, args.warmup, '; '.join(
                    '%s: %s' % (s, ', '.join(run.results[s])) for s in run.results))]
        out += ['']
        others = [r['others'] for rounds in run.results.values() for results in rounds.values() for r in results]
        if others and statistics.median(others) >= 0.2:
            out += ['**The machine was busy: other processes used a median %.2f of its %d CPUs during the loads '
                    '(from %.2f to %.2f), so rates moved with them from round to round; the per-round ratios show '
                    'how much. Server CPU per request, MB or datagram depends far less on what else runs.**' % (
                        statistics.median(others), host['nproc'], min(others), max(others)), '']
        out += ['## Targets', '', 'Ratios are brimd / reference, medians of this run\'s rounds. For the rates, the '
                'ratio of server CPU per unit of work (lower: brimd spends less) follows.', '',
                '| target | measured | result |', '|---|---|---|']
        out += ['| %s | %s | %s |' % t for t in self.targets]
        out += ['']
        descriptions = {
            'wsgi': 'WSGI hello world, 2 workers each: `wrk -t%d -c%d -d%gs --latency` on `/`. brimd runs '
                    '`apps = hello stats` with the access log on (log_level INFO to a file); bare eventlet.wsgi '
                    'runs with `log_output=False` (no access log) and gunicorn with its default (no access log).'
                    % (WRK_THREADS, WRK_CONNECTIONS, args.seconds),
            'tcp': 'TCP echo, 2 workers each: %d connections, each sends %d bytes and reads them back, over and '
                   'over (`bench/clients/tcp_echo_load.c`, one thread, epoll). MB = 10^6 bytes echoed.' % (
                       TCP_CONNECTIONS, TCP_MESSAGE),
            'udp': 'UDP echo, 2 workers each (sharing one socket): %d connected sockets with %d %d-byte '
                   'datagrams in flight each (`bench/clients/udp_echo_load.c`, one thread, epoll; 100 ms without a '
                   'reply counts the window lost and sends a new one).' % (args.udp_sockets, args.udp_window,
                                                                           UDP_SIZE)}
        for scenario in ('wsgi', 'tcp', 'udp'):
            if scenario not in args.only:
                continue
            out += ['## %s' % {'wsgi': 'WSGI hello world', 'tcp': 'TCP echo, 4 KiB messages',
                               'udp': 'UDP echo, 64-byte datagrams'}[scenario], '', descriptions[scenario], '']
            if scenario in run.errors:
                out += ['**Failed: %s**' % run.errors[scenario], '']
            out += self.scenario_table(scenario) + ['']
            out += self.bottleneck(scenario)
        if run.brimd is not None and 'wsgi' in run.results:
            notice, bad, size = run.brimd.log_counts()
            out += ['brimd\'s log at the end: %s NOTICE (access) lines, %d WARNING or worse, %.1f MiB.' % (
                num(notice), bad, size / MIB), '']
        if 'stats64' in run.extra:
            got = run.extra['stats64']
            rss = got['rss']
            out += ['`/stats` with %d workers: `brimd start` took %.1f s; worker RSS %.1f-%.1f MiB.' % (
                STATS64_WORKERS, got['start_seconds'], min(rss) if rss else 0, max(rss) if rss else 0), '']
        if run.results:
            out += ['How to read it: "server CPU" is utime + stime of the server\'s processes over the client\'s run '
                    '(for brimd: main, the scenario\'s supervisor and its workers), "client CPU" the load client\'s '
                    'own (wait4), both in cores (1.00 = one CPU busy); the machine has %d. The split is each '
                    'worker\'s share of what was counted during the load (brimd\'s `/stats` buckets, the '
                    'references\' shared counters). See the docstring of `bench/compare.py`.' % host['nproc'], '']
        if run.notes:
            out += ['Notes:', ''] + ['- ' + note for note in run.notes] + ['']
        return '\n'.join(out)

    def bottleneck(self, scenario: str) -> list[str]:
        results = self.run.results.get(scenario, {})
        if not results:
            return []
        limit = WRK_THREADS if scenario == 'wsgi' else 1
        lines = []
        for key, rounds in results.items():
            client = statistics.median(r['client_cores'] for r in rounds)
            server = statistics.median(r['server_cpu'] for r in rounds)
            others = statistics.median(r['others'] for r in rounds)
            lines.append('%s: server %.2f + client %.2f (%.0f %% of its %d thread%s) + everything else %.2f = %.2f '
                         'of %d CPUs' % (self.run.labels[scenario][key], server, client, 100 * client / limit, limit,
                                         's' if limit > 1 else '', others, server + client + others,
                                         self.host['nproc']))
        out = ['CPU during the loads (medians): ' + '; '.join(lines) + '.', '']
        lopsided = []
        for key, rounds in results.items():
            for number, result in enumerate(rounds, 1):
                total = sum(result['split'])
                if total and max(result['split']) >= 0.9 * total:
                    lopsided.append('%s round %d (%s, %s)' % (self.run.labels[scenario][key], number,
                                                               shares(result['split']),
                                                               fmt_metric(scenario, result['metric'])))
        if lopsided:
            out += ['One worker got 90 %% or more of the load in: %s. The workers share one listening socket, '
                    'and all the client\'s connections arrive at once at the start of a load: whichever worker '
                    'wakes first may accept them all, and they stay with it for the whole load.'
                    % '; '.join(lopsided) if scenario != 'udp' else
                    'One worker got 90 %% or more of the datagrams in: %s.' % '; '.join(lopsided), '']
        return out


# -- main -----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, argv: list[str]) -> int:
    missing = [tool for tool in ('wrk', 'gcc') if shutil.which(tool) is None]
    if missing:
        print('bench/compare.py needs %s on PATH (Debian: apt-get install %s)' % (' and '.join(missing), ' '.join(
            'build-essential' if tool == 'gcc' else tool for tool in missing)), file=sys.stderr)
        return 2
    began = time.monotonic()
    tmp = tempfile.mkdtemp(prefix='brim-bench-compare-')

    def hard_stop(signum: int, frame: object) -> None:
        print('hard cap of %g s reached: killing everything this run started' % args.hard_cap, file=sys.stderr,
              flush=True)
        REGISTRY.kill_everything()
        shutil.rmtree(tmp, ignore_errors=True)
        os._exit(2)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt('signal %d' % signum)
    signal.signal(signal.SIGALRM, hard_stop)
    signal.signal(signal.SIGTERM, terminate)
    signal.alarm(int(args.hard_cap))
    host = machine()
    bench = Run(args, tmp)
    try:
        if 'tcp' in args.only or 'udp' in args.only:
            try:
                bench.compile_clients()
            except BenchError as err:
                bench.errors.update({s: str(err) for s in ('tcp', 'udp') if s in args.only})
        if 'wsgi' in args.only:
            try:
                bench.ref_info = ensure_ref_venv()
            except BenchError as err:
                bench.errors['wsgi'] = 'the gunicorn venv: %s' % err
        load = Loader(args, tmp, bench.binaries)
        brimd = None
        if any(s in args.only for s in ('wsgi', 'tcp', 'udp', 'idle')):
            print('starting brimd', flush=True)
            try:
                brimd = bench.start_brimd()
            except BenchError as err:
                bench.errors.update({s: 'brimd: %s' % err for s in ('wsgi', 'tcp', 'udp', 'idle') if s in args.only})
            started = time.monotonic()
            if 'idle' in args.only and brimd is not None:
                try:
                    bench.idle(brimd, started)
                except BenchError as err:
                    bench.errors['idle'] = str(err)
        for scenario in ('wsgi', 'tcp', 'udp'):
            if scenario not in args.only or scenario in bench.errors:
                continue
            print('scenario %s' % scenario, flush=True)
            try:
                assert brimd is not None
                if scenario == 'wsgi':
                    bench.run_wsgi(brimd, load)
                else:
                    bench.run_echo(scenario, brimd, load)
            except BenchError as err:
                bench.errors[scenario] = str(err)
                print('scenario %s failed: %s' % (scenario, err), file=sys.stderr, flush=True)
        if brimd is not None:
            bench.notes += brimd.stop()
        if 'stats64' in args.only:
            print('stats64: starting brimd with %d workers' % STATS64_WORKERS, flush=True)
            try:
                bench.run_stats64()
            except BenchError as err:
                bench.errors['stats64'] = str(err)
                print('stats64 failed: %s' % err, file=sys.stderr, flush=True)
        report = Report(bench, host, argv, time.monotonic() - began)
        text = report.markdown()
    finally:
        if bench.brimd is not None:
            bench.notes += bench.brimd.stop()  # a no-op if it was stopped already
        REGISTRY.kill_everything()  # anything still registered here escaped its own finally
        signal.alarm(0)
        shutil.rmtree(tmp, ignore_errors=True)
    print(text)
    with open(args.out, 'w') as fp:
        fp.write(text)
    print('written to %s' % os.path.relpath(args.out))
    return 0 if report.passed() else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3, help='measured rounds per server (default 3)')
    parser.add_argument('--seconds', type=float, default=5.0, help='seconds per load (default 5)')
    parser.add_argument('--warmup', type=float, default=1.0, help='seconds of warm-up load per server (default 1)')
    parser.add_argument('--only', default=','.join(SCENARIOS),
                        help='comma-separated subset of %s (default all)' % ','.join(SCENARIOS))
    parser.add_argument('--quick', action='store_true', help='smoke run: 1 round of 2 s, idle over 3 s')
    parser.add_argument('--idle-seconds', type=float, default=None, help='idle measurement (default 10; --quick 3)')
    parser.add_argument('--udp-sockets', type=int, default=8, help='UDP client sockets (default 8)')
    parser.add_argument('--udp-window', type=int, default=32, help='datagrams in flight per socket (default 32)')
    parser.add_argument('--hard-cap', type=float, default=0.0,
                        help='seconds after which everything is killed (default: from the plan, + 15 min for '
                             'making the gunicorn venv)')
    parser.add_argument('--out', default=os.path.join(BENCH, 'results.md'), help='default bench/results.md')
    args = parser.parse_args()
    args.only = [s.strip() for s in args.only.split(',') if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown or not args.only:
        parser.error('--only: choose from %s' % ','.join(SCENARIOS))
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    if args.idle_seconds is None:
        args.idle_seconds = 3.0 if args.quick else 10.0
    if args.rounds < 1 or args.seconds < 1:
        parser.error('--rounds and --seconds must be at least 1')
    if not args.hard_cap:
        loads = {'wsgi': 3, 'tcp': 2, 'udp': 2}
        plan = sum(n * (args.rounds * (args.seconds + 5) + args.warmup + 5) + 60 for s, n in loads.items()
                   if s in args.only)
        plan += (args.idle_seconds + 10 if 'idle' in args.only else 0) + (300 if 'stats64' in args.only else 0)
        args.hard_cap = 120 + plan + (900 if 'wsgi' in args.only and not os.path.exists(ref_python()) else 0)
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO)
    return run(args, ['python', script] + sys.argv[1:])


if __name__ == '__main__':
    sys.exit(main())
