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
                                env=self.env, stdin=subprocess.DEVNULL)
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
