"""The watchdog, recycling and crash backoff of WSGI workers (issue 4): a
worker whose event loop is blocked is killed and replaced; max_requests,
max_lifetime and max_rss retire healthy workers one at a time, each
replacement serving first, so clients see no failure; min_lifetime stops
recycling storms; a worker that keeps crashing is restarted with backoff.
"""

from __future__ import annotations

import os
import re
import socket
import time

from harness import Load, free_port, get_stats, http_request, port_accepts, process_state, wait_until

PROBE_APP = '''
import os
import time


class Probe:
    """WSGI: /pid answers the worker pid; /block blocks the event loop (plain
    time.sleep) for 30 s; /exit ends the worker with exit status 3; /stats
    goes on down the pipeline; anything else answers hello."""

    def __init__(self, name, parsed_conf, next_app):
        self.next_app = next_app

    def __call__(self, env, start_response):
        path = env['PATH_INFO']
        if path == '/stats':
            return self.next_app(env, start_response)
        if path == '/block':
            time.sleep(30)
        if path == '/exit':
            os._exit(3)
        body = str(os.getpid()).encode() if path == '/pid' else b'hello'
        start_response('200 OK', [('Content-Length', str(len(body))), ('Content-Type', 'text/plain')])
        return [body]
'''

CONF = '''
[wsgi]
port = %(port)d
apps = probe stats
%(options)s

[probe]
call = probeapp.Probe

[stats]
call = brim.wsgi_stats.WSGIStats
'''


def deploy(brimd, **options):
    """Write the conf (``options`` go in [wsgi]), start brimd, wait until it serves; the port."""
    port = free_port()
    brimd.write_module('probeapp', PROBE_APP)
    brimd.write_conf(CONF % dict(port=port, options=''.join('%s = %s\n' % item for item in options.items())))
    brimd.start()
    wait_until(lambda: port_accepts(port), 10, what='port')
    return port


def worker_pid(port):
    """The pid of the worker that answers /pid, or None if none answers now."""
    try:
        status, _, body = http_request(port, path='/pid', timeout=5)
    except OSError:
        return None
    return int(body) if status == 200 else None


def stats_or_none(port):
    try:
        return get_stats(port)
    except (OSError, AssertionError, ValueError):
        return None


def fork_time(pid):
    """When ``pid`` started, in seconds since boot (from /proc), or None if it is gone."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as fp:
            data = fp.read()
    except OSError:
        return None
    return int(data[data.rfind(b')') + 2:].split()[19]) / os.sysconf('SC_CLK_TCK')


def send_and_leave(port, path):
    """Send a GET for ``path`` on a new connection; the socket (its answer not awaited)."""
    sock = socket.create_connection(('127.0.0.1', port), timeout=10)
    sock.sendall(('GET %s HTTP/1.1\r\nHost: x\r\n\r\n' % path).encode())
    return sock


def closed_without_answer(sock):
    """Read ``sock`` to its end: True if it closed (or was reset) before any byte came."""
    data = b''
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return data == b''


def supervisor_lines(log, needle):
    """``(pid, line)`` of each log line containing ``needle``, in order."""
    return [(int(m.group(1)), line) for line in log.splitlines()
            if needle in line and (m := re.search(r' brim\[(\d+)\] ', line))]


def test_watchdog_kills_a_worker_whose_event_loop_is_blocked(brimd):
    port = deploy(brimd, workers=1, worker_timeout=1)
    old = wait_until(lambda: worker_pid(port), 10, what='a worker answering /pid')
    sock = send_and_leave(port, '/block')
    try:
        # Killed within worker_timeout + 3 s of blocking, and the log says why.
        log = brimd.wait_log('worker 0 (pid %d) is stuck' % old, 1 + 3)
        line = [entry for entry in log.splitlines() if '(pid %d) is stuck' % old in entry][0]
        assert re.search(r' ERROR wsgi worker 0 \(pid %d\) is stuck: its event loop has not run for '
                         r'\d+\.\d s \(worker_timeout 1 s\); killing it$' % old, line), line
        wait_until(lambda: process_state(old) in (None, 'Z'), 3, what='the stuck worker to be gone')
        # Its exit is logged as a kill by the watchdog, with the reason.
        brimd.wait_log('worker 0 (pid %d) exited: signal SIGKILL (stuck for ' % old, 3)
        # The blocked request got no answer: its worker died under it.
        assert closed_without_answer(sock)
    finally:
        sock.close()
    # A new worker serves within worker_timeout + 3 s of the kill.
    new = wait_until(lambda: worker_pid(port), 1 + 3, what='a replacement worker answering /pid')
    assert new != old
    stats = get_stats(port)['wsgi']
    assert (stats['0']['pid'], stats['0']['restart_count'], stats['0']['last_exit']) == (new, 1, 128 + 9)
    assert stats['restart_count'] == 1 and stats['recycle_count'] == 0
    status = brimd.run('status')
    assert status.returncode == 0
    assert status.stdout.splitlines()[2].split() == ['wsgi', '0', str(new), '1', 'signal', '9', '-']


def test_max_requests_recycles_one_worker_at_a_time_without_failed_requests(brimd):
    port = deploy(brimd, workers=2, max_requests=50, max_requests_jitter=10, min_lifetime=0)
    with Load(port, kinds=('keepalive', 'keepalive', 'fresh'), max_seconds=30) as load:
        wait_until(lambda: (stats_or_none(port) or {}).get('wsgi', {}).get('recycle_count', 0) >= 3, 20,
                   interval=0.2, what='three recycles under load')
    assert load.failures == [], load.failures[:20]
    assert load.ok > 150
    assert set(load.bodies) == {b'hello'}
    stats = get_stats(port)['wsgi']
    assert stats['recycle_count'] >= 3
    assert stats['restart_count'] == 0
    log = brimd.log()
    retired = supervisor_lines(log, ') retired (served ')
    assert len(retired) >= 3
    for _, line in retired:
        served = int(re.search(r'retired \(served (\d+) requests \(max_requests\)\): exit status 0$', line).group(1))
        assert served >= 50, line
    assert 'exited before serving' not in log and 'killing it' not in log
    # Recycles never overlap: for the subserver's supervisor, "starting its
    # replacement" and "retired" alternate, each start followed by its retire.
    events = [(pid, 'start' if 'starting its replacement' in line else 'retired')
              for pid, line in supervisor_lines(log, 'worker ')
              if 'starting its replacement' in line or ') retired (' in line]
    supervisors = {pid for pid, _ in events}
    assert len(supervisors) == 1
    kinds = [kind for _, kind in events]
    assert kinds[:2 * len(retired)] == ['start', 'retired'] * len(retired), kinds
    assert kinds[2 * len(retired):] in ([], ['start']), kinds  # one may be under way
    # Each start names the worker that then retired.
    starts = re.findall(r'worker (\d) \(pid (\d+)\) served \d+ requests \(max_requests\); starting its replacement', log)
    ends = re.findall(r'worker (\d) \(pid (\d+)\) retired \(served', log)
    assert starts[:len(ends)] == ends


def test_max_lifetime_recycles_without_failed_requests(brimd):
    port = deploy(brimd, workers=1, max_lifetime=2, min_lifetime=0)
    first = wait_until(lambda: worker_pid(port), 10, what='a worker answering /pid')
    with Load(port, kinds=('keepalive', 'fresh'), max_seconds=20) as load:
        wait_until(lambda: worker_pid(port) not in (None, first), 8, what='the worker to be recycled')
        wait_until(lambda: (stats_or_none(port) or {}).get('wsgi', {}).get('recycle_count', 0) >= 1, 5,
                   what='recycle_count 1')
        before = load.ok
        wait_until(lambda: load.ok >= before + 20, 5, what='load served after the recycle')
    assert load.failures == [], load.failures[:20]
    assert load.ok > 0
    stats = get_stats(port)['wsgi']
    assert stats['recycle_count'] >= 1 and stats['restart_count'] == 0
    wait_until(lambda: process_state(first) in (None, 'Z'), 5, what='the first worker to exit')
    log = brimd.wait_log('worker 0 (pid %d) retired (ran ' % first, 5)
    assert re.search(r'worker 0 \(pid %d\) ran \d+ seconds \(max_lifetime\); starting its replacement' % first, log)


def test_max_rss_recycles_but_no_sooner_than_min_lifetime(brimd):
    started = time.monotonic()
    port = deploy(brimd, workers=1, max_rss=1, min_lifetime=2)
    forked = {}  # worker pid -> when it was forked (from /proc, seconds since boot)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        pid = worker_pid(port)
        if pid is not None and pid not in forked:
            when = fork_time(pid)
            if when is not None:
                forked[pid] = when
        time.sleep(0.05)
    stats = wait_until(lambda: stats_or_none(port), 5, what='stats')['wsgi']
    elapsed = time.monotonic() - started
    # Every Python worker exceeds 1 MiB: each is recycled, and the log says why.
    assert len(forked) >= 2, forked
    assert stats['recycle_count'] >= 1 and stats['restart_count'] == 0
    log = brimd.log()
    assert re.search(r'worker 0 \(pid \d+\) uses \d+\.\d MiB resident \(max_rss 1 MiB\); starting its replacement',
                     log), log
    assert re.search(r'worker 0 \(pid \d+\) retired \(uses \d+\.\d MiB resident \(max_rss 1 MiB\)\)', log), log
    # min_lifetime holds: a worker runs 2 s before it may be retired, so its
    # replacement is forked 2 s after it at the soonest, and over ``elapsed``
    # seconds there are at most about elapsed / 2 recycles (without
    # min_lifetime, each worker would be retired as soon as it serves).
    assert stats['recycle_count'] <= elapsed / 2 + 2, (stats['recycle_count'], elapsed)
    times = sorted(forked.values())
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(gap >= 1.9 for gap in gaps), gaps


def test_crashing_worker_is_restarted_with_backoff(brimd):
    port = deploy(brimd, workers=1)
    pid = wait_until(lambda: worker_pid(port), 10, what='a worker answering /pid')
    for crash in (1, 2, 3):
        assert closed_without_answer(send_and_leave(port, '/exit'))
        if crash == 1:
            brimd.wait_log('worker 0 (pid %d) exited: exit status 3; restarting it' % pid, 5)
        else:
            # Quick exits in a row: a crash loop, each wait twice the one before.
            said = 'worker 0 (pid %d) exited after ' % pid
            log = brimd.wait_log(said, 5)
            line = [entry for entry in log.splitlines() if said in entry][0]
            assert re.search(r' ERROR wsgi worker 0 \(pid %d\) exited after \d+\.\d s: exit status 3; crash loop '
                             r'\(%d quick exits in a row\): restarting it in %d s$' % (pid, crash, 2 ** (crash - 1)),
                             line), line
        if crash < 3:
            # The next crash once the replacement serves (after 1 s, then 2 s).
            old = pid
            pid = wait_until(lambda: worker_pid(port), 2 ** (crash - 1) + 4, what='a replacement worker')
            assert pid != old
    # While it waits out its 4 s backoff, status shows it: no pid, 3 restarts,
    # last exit 3, the backoff.
    status = brimd.run('status')
    assert status.returncode == 0
    assert status.stdout.splitlines()[2].split() == ['wsgi', '0', '-', '3', '3', '4s']
    old = pid
    pid = wait_until(lambda: worker_pid(port), 4 + 4, what='a worker after the backoff')
    assert pid != old
    stats = get_stats(port)['wsgi']
    assert (stats['0']['pid'], stats['0']['restart_count'], stats['0']['last_exit'], stats['0']['backoff']) == (
        pid, 3, 3, 0)
    assert stats['restart_count'] == 3


def test_pipelining_client_does_not_starve_the_watchdog(brimd):
    # One client pipelines many requests on one connection, reading as it
    # goes: Eventlet would answer them all without yielding, the heartbeat
    # would stop, and the watchdog would kill a healthy worker.
    import threading
    port = deploy(brimd, workers=1, worker_timeout=1)
    pid = worker_pid(port)
    count = 30000
    sock = socket.create_connection(('127.0.0.1', port), timeout=30)
    received = bytearray()

    def read():
        try:
            while received.count(b'HTTP/1.1 200') < count:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return
                received.extend(chunk)
        except OSError:
            pass
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        sock.sendall(b'GET / HTTP/1.1\r\nHost: x\r\n\r\n' * count)
        reader.join(60)
    finally:
        sock.close()
    assert received.count(b'HTTP/1.1 200') == count
    assert worker_pid(port) == pid
    assert 'is stuck' not in brimd.log()
    assert get_stats(port)['wsgi']['restart_count'] == 0
