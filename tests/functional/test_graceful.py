"""Graceful stops (HUP), immediate stops (TERM), log reopening (USR1) and
the death of the main process, with real brimd processes and signals."""

from __future__ import annotations

import os
import signal
import socket

from harness import (SLOW_APP, alive, free_port, get_stats, group_members, http_request, port_accepts, process_state,
                     wait_until)

WSGI = """
[wsgi]
port = %(port)d
workers = %(workers)d
apps = slow stats

[slow]
call = slowapp.Slow

[stats]
call = brim.wsgi_stats.WSGIStats
"""

DAEMONS = """
[daemons]
daemons = sample

[sample]
call = brim.daemon_sample.DaemonSample
interval = %(interval)s
"""


def deploy(brimd, brim_lines: str = '', workers: int = 1, daemon_interval: str = '') -> int:
    """Write the app module and conf; return the WSGI port."""
    port = free_port()
    brimd.write_module('slowapp', SLOW_APP)
    text = '[brim]\n%s\n' % brim_lines + WSGI % dict(port=port, workers=workers)
    if daemon_interval:
        text += DAEMONS % dict(interval=daemon_interval)
    brimd.write_conf(text)
    return port


def start_serving(brimd, port: int) -> int:
    pid = brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    return pid


def gone(pid: int) -> bool:
    """Exited (zombies count: init may reap orphans late)."""
    return process_state(pid) in (None, 'Z')


def worker_pid(port: int) -> int:
    status, _, body = http_request(port, path='/pid')
    assert status == 200, body
    return int(body)


def send_slow(brimd, port: int, seconds: float, nth: int = 1) -> socket.socket:
    """Open a connection with GET /slow?seconds in flight; return once the
    app has started on it (its log line), not on a guessed delay."""
    conn = socket.create_connection(('127.0.0.1', port), timeout=10)
    conn.sendall(b'GET /slow?%g HTTP/1.1\r\nHost: x\r\n\r\n' % seconds)
    wait_until(lambda: brimd.log().count('slow start %g' % seconds) >= nth, 10, what='the slow request to start')
    return conn


def read_all(conn: socket.socket, timeout: float) -> bytes:
    """Everything until EOF (fails on timeout: the server must close)."""
    conn.settimeout(timeout)
    data = b''
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk


def read_response(conn: socket.socket, timeout: float) -> tuple[bytes, dict, bytes]:
    """One HTTP response with a Content-Length: (status line, headers, body)."""
    conn.settimeout(timeout)
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = conn.recv(65536)
        assert chunk, 'closed before the response head: %r' % data
        data += chunk
    head, _, body = data.partition(b'\r\n\r\n')
    lines = head.split(b'\r\n')
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(b':', 1) for line in lines[1:])}
    while len(body) < int(headers[b'content-length']):
        chunk = conn.recv(65536)
        assert chunk, 'closed mid-body'
        body += chunk
    return lines[0], headers, body


def test_graceful_timeout_cuts_a_slow_request(brimd):
    port = deploy(brimd, 'graceful_timeout = 1')
    main = start_serving(brimd, port)
    worker = worker_pid(port)
    conn = send_slow(brimd, port, 30)
    try:
        shutdown = brimd.run('shutdown')
        assert shutdown.returncode == 0, shutdown.stderr
        assert shutdown.stdout.strip() == '%d shut down' % main
        # The worker cuts the request at graceful_timeout (1 s), well
        # before the app's 30 s, and exits; the client sees EOF, no 200.
        wait_until(lambda: gone(worker), 5, what='the worker to exit')
        answer = read_all(conn, 5)
        assert b'200' not in answer and b'done' not in answer, answer
    finally:
        conn.close()
    log = brimd.wait_log('graceful_timeout (1 s) has passed with 1 connection still open; cutting it off', 5)
    # The worker cut itself off: its supervisor (graceful_timeout + 1 s) did not need to kill it.
    assert 'still running' not in log
    wait_until(lambda: not group_members(main), 5, what='every brimd process to exit')


def test_shutdown_closes_idle_keepalive_and_answers_in_flight_then_connection_close(brimd):
    port = deploy(brimd)
    main = start_serving(brimd, port)
    idle = socket.create_connection(('127.0.0.1', port), timeout=10)
    busy = None
    try:
        idle.sendall(b'GET /pid HTTP/1.1\r\nHost: x\r\n\r\n')
        status, headers, body = read_response(idle, 10)
        assert status.startswith(b'HTTP/1.1 200') and int(body) > 0
        assert headers.get(b'connection', b'').lower() != b'close'  # kept alive, now idle
        busy = send_slow(brimd, port, 4)
        shutdown = brimd.run('shutdown')
        assert shutdown.returncode == 0, shutdown.stderr
        # The idle connection is closed after IDLE_LINGER (1 s), while the slow request
        # (4 s from before the shutdown) is still being served.
        assert read_all(idle, 5) == b''
        busy.setblocking(False)
        try:
            early = busy.recv(1)
        except BlockingIOError:
            early = None
        assert early is None, 'the in-flight response came before the idle connection closed'
        status, headers, body = read_response(busy, 10)
        assert status.startswith(b'HTTP/1.1 200') and body == b'done'
        # It was answered as it began (kept alive); the next request on that
        # connection is answered with Connection: close, then it closes.
        busy.sendall(b'GET /pid HTTP/1.1\r\nHost: x\r\n\r\n')
        status, headers, body = read_response(busy, 10)
        assert status.startswith(b'HTTP/1.1 200') and int(body) > 0
        assert headers.get(b'connection', b'').lower() == b'close'
        assert read_all(busy, 5) == b''
    finally:
        idle.close()
        if busy is not None:
            busy.close()
    wait_until(lambda: not group_members(main), 10, what='every brimd process to exit')


def test_shutdown_sends_sighup_to_daemons(brimd):
    # graceful_timeout is long: a daemon gone within seconds got HUP (its
    # default action ends DaemonSample), it was not killed at the deadline.
    port = deploy(brimd, 'graceful_timeout = 30', daemon_interval='60')
    main = start_serving(brimd, port)
    daemon = wait_until(lambda: get_stats(port)['daemons']['sample']['pid'], 10, what='the daemon pid')
    assert alive(daemon)
    shutdown = brimd.run('shutdown')
    assert shutdown.returncode == 0, shutdown.stderr
    wait_until(lambda: gone(daemon), 5, what='the daemon to exit')
    brimd.wait_log('daemon sample (pid %d) exited: signal SIGHUP' % daemon, 5)
    wait_until(lambda: not group_members(main), 5, what='every brimd process to exit')


def test_stop_is_immediate_despite_graceful_timeout(brimd):
    port = deploy(brimd, 'graceful_timeout = 30', daemon_interval='60')
    main = start_serving(brimd, port)
    worker = worker_pid(port)
    daemon = wait_until(lambda: get_stats(port)['daemons']['sample']['pid'], 10, what='the daemon pid')
    conn = send_slow(brimd, port, 30)
    try:
        stop = brimd.run('stop')
        assert stop.returncode == 0, stop.stderr
        assert stop.stdout.strip() == '%d stopped' % main
        wait_until(lambda: gone(worker) and gone(daemon), 2, what='the worker and the daemon to exit')
        answer = read_all(conn, 5)
        assert b'200' not in answer, answer
    finally:
        conn.close()
    wait_until(lambda: not group_members(main), 5, what='every brimd process to exit')
    assert 'graceful_timeout' not in brimd.log()


def test_sigusr1_reopens_log_files(brimd):
    port = deploy(brimd, 'log_level = INFO', daemon_interval='0.2')
    main = start_serving(brimd, port)
    worker = worker_pid(port)

    def daemon_running():
        stats = get_stats(port)['daemons']['sample']
        return stats if stats['iterations'] >= 2 else None

    daemon = wait_until(daemon_running, 10, what="the daemon to log")
    members = sorted(group_members(main))
    rotated = brimd.log_path.with_name('brimd.log.1')
    brimd.log_path.rename(rotated)
    os.kill(main, signal.SIGUSR1)
    # Until a process logs its next line, nothing creates the new file.
    wait_until(lambda: brimd.log_path.exists(), 5, what='a new brimd.log (the daemon logs every 0.2 s)')
    wait_until(lambda: 'sample daemon log line' in brimd.log(), 5, what="the daemon's lines in the new file")
    status, _, _ = http_request(port, path='/pid?after-usr1')
    assert status == 200
    brimd.wait_log('GET /pid?after-usr1 HTTP/1.1 200', 5)
    assert 'after-usr1' not in rotated.read_text()
    # Nothing died of the signal.
    assert worker_pid(port) == worker
    assert sorted(group_members(main)) == members
    stats = get_stats(port)
    assert stats['daemons']['sample']['pid'] == daemon['pid']
    assert stats['daemons']['sample']['restart_count'] == 0
    assert stats['wsgi']['0']['restart_count'] == 0
    assert 'exited' not in brimd.log() + rotated.read_text()
    # The main process and the supervisors reopened too: what they log
    # while shutting down goes to the new file.
    assert brimd.run('shutdown').returncode == 0
    log = brimd.wait_log('main process (pid %d) exiting' % main, 5)
    assert 'main supervisor: SIGHUP received' in log
    brimd.wait_log('wsgi worker: SIGHUP received', 5)
    brimd.wait_log('daemons daemon: SIGHUP received', 5)
    assert 'SIGHUP' not in rotated.read_text()


def test_sigkill_of_main_leaves_no_brimd_process(brimd):
    port = deploy(brimd, workers=2, daemon_interval='60')
    main = start_serving(brimd, port)
    wait_until(lambda: get_stats(port)['daemons']['sample']['pid'], 10, what='the daemon pid')
    members = group_members(main)
    # main, two supervisors ([wsgi], [daemons]), two workers, one daemon.
    assert len(members) == 6 and main in members
    os.kill(main, signal.SIGKILL)
    wait_until(lambda: all(gone(pid) for pid in members), 6,
               what='every brimd process to exit: %s' % members)
    assert not port_accepts(port)
