"""start / status / stop / shutdown / restart / foreground, as SPEC §2 and §8 say."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness import SLOW_APP, alive, free_port, get_stats, group_members, http_request, port_accepts, wait_until

CONF = """
[wsgi]
port = %(port)d
workers = 2
apps = slow stats

[slow]
call = slowapp.Slow

[stats]
call = brim.wsgi_stats.WSGIStats
"""

def deploy(brimd, **extra):
    port = free_port()
    brimd.write_module('slowapp', SLOW_APP)
    brimd.write_conf(CONF % dict(port=port) + ''.join('%s\n' % line for line in extra.get('lines', ())))
    return port


def test_status_start_twice_stop(brimd):
    port = deploy(brimd)
    status = brimd.run('status')
    assert (status.returncode, status.stdout.strip()) == (3, 'not running')

    pid = brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    status = brimd.run('status')
    lines = status.stdout.splitlines()
    assert (status.returncode, lines[0]) == (0, '%d is running' % pid)
    # One row per worker from the live stats: pid, restarts, last exit, backoff.
    assert lines[1].split() == ['subserver', 'worker', 'pid', 'restarts', 'last', 'exit', 'backoff']
    rows = [line.split() for line in lines[2:]]
    assert [row[:2] for row in rows] == [['wsgi', '0'], ['wsgi', '1']]
    assert all(int(row[2]) > 0 and row[3:] == ['0', '0', '-'] for row in rows)

    again = brimd.run('start')
    assert (again.returncode, again.stdout.strip()) == (0, '%d already running' % pid)
    assert brimd.pid() == pid

    members = group_members(pid)
    assert len(members) == 1 + 1 + 2  # main, supervisor, two workers
    stop = brimd.run('stop')
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip() == '%d stopped' % pid
    assert not alive(pid)
    # TERM reaches every process: none of the tree is left serving.
    wait_until(lambda: not group_members(pid), 10, what='every brimd process to exit')
    assert not port_accepts(port)
    status = brimd.run('status')
    assert (status.returncode, status.stdout.strip()) == (3, 'not running')
    assert brimd.run('stop').returncode == 0  # stopping a stopped server is fine (LSB)


def test_status_dead_with_pid_file(brimd):
    deploy(brimd)
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    brimd.pid_path.write_text('%d\n' % child)
    status = brimd.run('status')
    assert (status.returncode, status.stdout.strip()) == (
        1, '%d is not running (stale pid file %s)' % (child, brimd.pid_path))


def test_stale_pid_file_naming_another_program_is_not_obeyed(brimd):
    port = deploy(brimd)
    other = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        brimd.pid_path.write_text('%d\n' % other.pid)
        said = '%d is not running (stale pid file %s: that pid is another program now)' % (other.pid, brimd.pid_path)
        status = brimd.run('status')
        assert (status.returncode, status.stdout.strip()) == (1, said)
        stop = brimd.run('stop')
        assert (stop.returncode, stop.stdout.strip()) == (0, said)
        assert other.poll() is None  # not signalled
        pid = brimd.start()
        assert pid != other.pid and brimd.pid_path.read_text().strip() == str(pid)
        wait_until(lambda: port_accepts(port), what='port')
        assert other.poll() is None
    finally:
        other.kill()
        other.wait(10)


def test_shutdown_finishes_in_flight_request_and_releases_port(brimd):
    port = deploy(brimd)
    pid = brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    conn = socket.create_connection(('127.0.0.1', port), timeout=10)
    conn.sendall(b'GET /slow?4 HTTP/1.1\r\nHost: x\r\n\r\n')
    time.sleep(0.3)  # let the request reach the app
    shutdown = brimd.run('shutdown')
    assert shutdown.returncode == 0, shutdown.stderr
    assert shutdown.stdout.strip() == '%d shut down' % pid
    # The port is free while the request is still being served: no byte of
    # the response has come yet, and the port can be bound.
    conn.setblocking(False)
    with pytest.raises(BlockingIOError):
        conn.recv(1)
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(('127.0.0.1', port))
    probe.close()
    conn.settimeout(10)
    response = b''
    while b'done' not in response:
        chunk = conn.recv(4096)
        if not chunk:
            break
        response += chunk
    conn.close()
    assert response.startswith(b'HTTP/1.1 200') and response.endswith(b'done')
    wait_until(lambda: not group_members(pid), 10, what='workers to finish and exit')


def test_restart_new_pid_new_conf(brimd):
    port = deploy(brimd)
    old = brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    assert len(get_stats(port)['wsgi']) > 0
    # Change the conf: one worker now.
    brimd.conf_path.write_text(brimd.conf_path.read_text().replace('workers = 2', 'workers = 1'))
    restart = brimd.run('restart')
    assert restart.returncode == 0, restart.stderr
    new = brimd.pid()
    assert new and new != old and alive(new)
    assert not alive(old)
    wait_until(lambda: _stats_or_none(port), what='serving after restart')
    workers = [key for key in get_stats(port)['wsgi'] if key.isdigit()]
    assert workers == ['0']


def test_restart_with_bad_conf_keeps_old_server(brimd):
    port = deploy(brimd)
    old = brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    brimd.conf_path.write_text(brimd.conf_path.read_text().replace('workers = 2', 'workers = two'))
    restart = brimd.run('restart')
    assert restart.returncode == 1
    assert "[wsgi] workers = 'two'" in restart.stderr
    assert brimd.pid() == old and alive(old)
    assert http_request(port, path='/stats')[0] == 200


def test_foreground_serves_without_subprocesses_and_exits_on_sigint(brimd):
    port = deploy(brimd)
    # Foreground logs to the terminal, not the file.
    brimd.conf_path.write_text(brimd.conf_path.read_text().replace('log_file = %s' % brimd.log_path, 'log_file = -'))
    proc = brimd.foreground()
    wait_until(lambda: _stats_or_none(port), what='foreground serving')
    assert group_members(proc.pid) == [proc.pid]  # no subprocesses
    assert not brimd.pid_path.exists()  # no pid file
    status, _, body = http_request(port, path='/pid')
    assert int(body) == proc.pid
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    output = proc.stdout.read().decode()
    assert 'serving in the foreground' in output
    assert 'GET /pid HTTP/1.1 200' in output  # the access line went to the terminal


def test_app_exception_is_500_logged_and_worker_survives(brimd):
    port = deploy(brimd)
    brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    status, _, body = http_request(port, path='/boom')
    assert status == 500 and b'Traceback' not in body
    log = brimd.wait_log('RuntimeError: boom from the app')
    assert 'app raised' in log
    pids = {int(http_request(port, path='/pid')[2]) for _ in range(4)}
    assert all(alive(pid) for pid in pids)  # no worker died of it
    wait_until(lambda: get_stats(port)['wsgi']['status_5xx_count'] == 1, what='the 500 to be counted')


def _stats_or_none(port):
    try:
        return get_stats(port)
    except (OSError, AssertionError):
        return None


def test_workers_share_eventlet_loaded_by_their_supervisor(brimd):
    """The supervisor imports Eventlet before it forks (its pages are then
    shared by every worker); the main process never does."""
    port = deploy(brimd)
    main = brimd.start()
    wait_until(lambda: port_accepts(port), what='port')

    def titles():
        found = {}
        for pid in group_members(main):
            with open('/proc/%d/cmdline' % pid, 'rb') as fp:
                found[pid] = fp.read().split(b'\0')[0].decode()
        return found if sum(title.startswith('brimd: wsgi worker') for title in found.values()) == 2 else None
    found = wait_until(titles, what='both workers')

    def maps_greenlet(pid):
        with open('/proc/%d/maps' % pid) as fp:
            return '_greenlet' in fp.read()  # greenlet's C extension, loaded with Eventlet
    by_title = {title: pid for pid, title in found.items()}
    assert not maps_greenlet(main)
    assert maps_greenlet(by_title['brimd: wsgi supervisor'])
    assert all(maps_greenlet(pid) for title, pid in by_title.items() if 'worker' in title)
