"""brimd under systemd (issue 5, point 5): the sd_notify protocol, spoken to a
real Unix datagram socket standing in for systemd's (``NOTIFY_SOCKET``), by
real ``brimd start``/``restart``/``stop``/``shutdown`` runs; and
``contrib/brimd.service`` passes ``systemd-analyze verify`` where it exists.

The stand-in socket has ``SO_PASSCRED`` set, as systemd's has, so every
datagram carries its sender's pid: the tests check which process said what.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import REPO, free_port, http_request, process_state, tcp_exchange, wait_until

#: A WSGI app whose module takes LOAD_SECONDS to import (in the probe and in
#: every worker), then appends its process's pid to ``loaded`` in the
#: deployment's directory, so a READY=1 sent before the workers serve would
#: show; GET /notify answers the worker's NOTIFY_SOCKET (``unset`` if none).
SLOW_LOADING_APP = '''
import os
import time

time.sleep(%(load)s)
with open(%(loaded)r, 'a') as fp:
    fp.write('%%d\\n' %% os.getpid())


class Env:
    def __init__(self, name, parsed_conf, next_app):
        self.next_app = next_app

    def __call__(self, env, start_response):
        body = os.environ.get('NOTIFY_SOCKET', 'unset').encode()
        start_response('200 OK', [('Content-Length', str(len(body)))])
        return [body]
'''

CONF = '''
[wsgi]
port = %(wsgi)d
workers = 2
apps = env

[env]
call = envapp.Env

[tcp]
port = %(tcp)d
call = brim.tcp_echo.TCPEcho
%(extra)s
'''

LOAD_SECONDS = 2.0
_CREDENTIALS = struct.Struct('3i')  # struct ucred: pid, uid, gid


class NotifySocket:
    """A Unix datagram socket standing in for systemd's notification socket."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)

    @property
    def env_value(self) -> str:
        return '@' + self.address[1:] if self.address.startswith('\0') else self.address

    def receive(self, timeout: float = 10.0) -> tuple[int, dict[str, str]] | None:
        """(sender pid, assignments) of the next datagram, or None after ``timeout`` s."""
        self.sock.settimeout(timeout) if timeout > 0 else self.sock.setblocking(False)
        try:
            data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(_CREDENTIALS.size))
        except (socket.timeout, BlockingIOError):
            return None
        pid = 0
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = _CREDENTIALS.unpack(payload[:_CREDENTIALS.size])[0]
        assert data.endswith(b'\n'), data
        return pid, dict(line.split('=', 1) for line in data.decode().splitlines())

    def receive_until(self, key: str, timeout: float = 30.0) -> list[tuple[int, dict[str, str]]]:
        """Every datagram up to and including the first that has ``key``."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(max(0.01, deadline - time.monotonic()))
            assert message is not None, 'no %s within %gs; got %r' % (key, timeout, got)
            got.append(message)
            if key in message[1]:
                return got

    def pending(self) -> list[tuple[int, dict[str, str]]]:
        got = []
        while (message := self.receive(0)) is not None:
            got.append(message)
        return got

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith('\0'):
            try:
                os.unlink(self.address)
            except OSError:
                pass


@pytest.fixture
def notify_path(tmp_path):
    sock = NotifySocket(str(tmp_path / 'notify'))
    yield sock
    sock.close()


@pytest.fixture
def notify_abstract():
    sock = NotifySocket('\0brim-test-notify-%d-%d' % (os.getpid(), time.monotonic_ns()))
    yield sock
    sock.close()


def deploy(brimd, notify, ports, extra='', load=LOAD_SECONDS):
    brimd.write_module('envapp', SLOW_LOADING_APP % {'load': load, 'loaded': str(brimd.dir / 'loaded')})
    brimd.write_conf(CONF % dict(ports, extra=extra))
    brimd.env['NOTIFY_SOCKET'] = notify.env_value


def test_start_reports_ready_only_once_serving_then_stop_reports_stopping(brimd, notify_path):
    ports = {'wsgi': free_port(), 'tcp': free_port()}
    deploy(brimd, notify_path, ports)
    start = subprocess.Popen(brimd.args('start'), env=brimd.env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        messages = notify_path.receive_until('READY', timeout=60)
        # Serving already: the probe and both workers had loaded the app
        # (each taking LOAD_SECONDS) when READY came.
        assert len((brimd.dir / 'loaded').read_text().split()) == 3
        status, _, body = http_request(ports['wsgi'], path='/notify', timeout=30)
        assert tcp_exchange(ports['tcp'], b'ping') == b'ping'
        out, err = start.communicate(timeout=30)
    finally:
        if start.poll() is None:
            start.kill()
            start.wait(10)
    assert start.returncode == 0, err
    main = wait_until(brimd.pid, 10, what='pid file')
    brimd.started_groups.add(main)
    assert status == 200
    assert body == b'unset'  # workers (and their apps) never see NOTIFY_SOCKET
    assert len(messages) == 1, messages  # nothing before READY
    sender, fields = messages[0]
    assert fields['READY'] == '1'
    assert int(fields['MAINPID']) == main == sender  # sent by the daemonized main process itself
    assert fields['STATUS'].startswith('serving: [wsgi] wsgi on 127.0.0.1:%d, 2 workers' % ports['wsgi'])
    assert notify_path.pending() == []

    stop = brimd.run('stop')
    assert stop.returncode == 0, stop.stderr
    (sender, fields), = notify_path.receive_until('STOPPING', timeout=10)
    assert sender == main and fields == {'STOPPING': '1', 'STATUS': 'stopping'}
    assert process_state(main) in (None, 'Z')
    assert notify_path.pending() == []


def test_abstract_socket_ready_is_sent_before_start_exits_and_shutdown_reports_stopping(brimd, notify_abstract):
    ports = {'wsgi': free_port(), 'tcp': free_port()}
    deploy(brimd, notify_abstract, ports, load=0)
    main = brimd.start()
    # `start` has exited: MAINPID= and READY=1 are already queued, so systemd
    # follows the main process before the one it started is gone.
    messages = notify_abstract.pending()
    assert len(messages) == 1, messages
    sender, fields = messages[0]
    assert int(fields['MAINPID']) == main == sender and fields['READY'] == '1'

    shutdown = brimd.run('shutdown')
    assert shutdown.returncode == 0, shutdown.stderr
    (sender, fields), = notify_abstract.receive_until('STOPPING', timeout=10)
    assert sender == main and fields == {'STOPPING': '1', 'STATUS': 'shutting down gracefully'}
    assert notify_abstract.pending() == []


def test_restart_reports_reloading_then_the_new_main_pid_and_the_old_one_says_nothing(brimd, notify_path):
    ports = {'wsgi': free_port(), 'tcp': free_port()}
    deploy(brimd, notify_path, ports, load=0)
    old = brimd.start()
    (_, fields), = notify_path.pending()
    assert int(fields['MAINPID']) == old

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    restart = brimd.run('restart')
    assert restart.returncode == 0, restart.stderr
    new = brimd.pid()
    assert new and new != old
    brimd.started_groups.add(new)
    # `restart` waited for the old main process to exit: everything it and
    # the new one sent is queued.
    wait_until(lambda: process_state(old) in (None, 'Z'), 10, what='old main process to exit')
    messages = notify_path.pending()
    assert [sorted(fields) for _, fields in messages] == [
        ['MONOTONIC_USEC', 'RELOADING', 'STATUS'], ['MAINPID', 'READY', 'STATUS']], messages
    (reloader, reloading), (sender, ready) = messages
    assert reloading['RELOADING'] == '1' and reloader not in (old, new)  # sent by `restart` itself
    assert before <= int(reloading['MONOTONIC_USEC']) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert reloading['STATUS'] == 'restarting: taking over the sockets of %d' % old
    assert ready['READY'] == '1' and int(ready['MAINPID']) == new == sender
    assert all(sender != old for sender, _ in messages)  # no STOPPING=1 from the retired server
    assert http_request(ports['wsgi'], path='/notify')[0] == 200

    stop = brimd.run('stop')
    assert stop.returncode == 0, stop.stderr
    (sender, fields), = notify_path.receive_until('STOPPING', timeout=10)
    assert sender == new


def test_failed_restart_ends_the_reload_and_the_old_server_serves_on(brimd, notify_path):
    ports = {'wsgi': free_port(), 'tcp': free_port()}
    deploy(brimd, notify_path, ports, load=0)
    old = brimd.start()
    notify_path.pending()
    with socket.socket() as taken:  # a new subserver's port, held by someone else
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        extra = '\n[tcp2]\nport = %d\nlisten_retry = 0\ncall = brim.tcp_echo.TCPEcho\n' % taken.getsockname()[1]
        deploy(brimd, notify_path, ports, extra=extra, load=0)
        restart = brimd.run('restart')
    assert restart.returncode == 1 and 'tcp2' in restart.stderr, restart.stderr
    assert brimd.pid() == old
    messages = notify_path.pending()
    assert [sorted(fields) for _, fields in messages] == [['MONOTONIC_USEC', 'RELOADING', 'STATUS'],
                                                          ['READY', 'STATUS']], messages
    assert messages[1][1] == {'READY': '1', 'STATUS': 'restart failed; %d serves on' % old}
    assert http_request(ports['wsgi'], path='/notify')[0] == 200


def test_no_notify_socket_no_notifications_and_no_trouble(brimd, tmp_path):
    ports = {'wsgi': free_port(), 'tcp': free_port()}
    gone = NotifySocket(str(tmp_path / 'gone'))
    gone.close()  # NOTIFY_SOCKET names a socket that no longer exists
    deploy(brimd, gone, ports, load=0)
    brimd.start()
    assert http_request(ports['wsgi'], path='/notify')[2] == b'unset'
    assert brimd.run('restart').returncode == 0
    assert brimd.run('stop').returncode == 0
    assert 'cannot notify systemd' in brimd.log()


UNIT = REPO / 'contrib' / 'brimd.service'


def test_unit_file_runs_brimd_as_documented():
    text = UNIT.read_text()
    settings = [line for line in text.splitlines() if line and not line.startswith(('#', '['))]
    assert 'Type=notify' in settings and 'NotifyAccess=all' in settings
    for command in ('ExecStart=/usr/local/bin/brimd -c /etc/brimd.conf start',
                    'ExecReload=/usr/local/bin/brimd -c /etc/brimd.conf restart',
                    'ExecStop=/usr/local/bin/brimd -c /etc/brimd.conf shutdown'):
        assert command in settings
    assert 'cp contrib/brimd.service /etc/systemd/system/' in text
    assert '## Running under systemd' in (REPO / 'README.md').read_text()


@pytest.mark.skipif(not shutil.which('systemd-analyze'), reason='systemd-analyze is not installed')
def test_unit_file_passes_systemd_analyze_verify(tmp_path):
    # As installed, with this checkout's brimd where the unit expects /usr/local/bin/brimd.
    brimd = Path(sys.executable).parent / 'brimd'
    if not brimd.exists():
        brimd = REPO / 'bin' / 'brimd'
    unit = tmp_path / 'brimd.service'
    unit.write_text(UNIT.read_text().replace('/usr/local/bin/brimd', str(brimd)))
    result = subprocess.run(['systemd-analyze', 'verify', str(unit)], capture_output=True, text=True, timeout=60)
    if result.returncode and 'Failed to ' in result.stderr and 'brimd.service' not in result.stderr:
        pytest.skip('systemd-analyze cannot run here: %s' % result.stderr.strip())
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
