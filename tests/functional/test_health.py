"""The health app (brim.wsgi_health) on a real brimd: 200 while every worker
is up, 503 while one is down and from a draining worker; and the container
command of contrib/kubernetes.yaml run as a shell would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from harness import (REPO, SLOW_APP, free_port, get_stats, group_members, http_request, port_accepts, process_state,
                     tcp_exchange, wait_until)
from test_graceful import read_all, read_response, send_slow

CONF = """
[wsgi]
port = %(port)d
workers = 2
apps = health slow stats

[health]
call = brim.wsgi_health.WSGIHealth

[slow]
call = slowapp.Slow

[stats]
call = brim.wsgi_stats.WSGIStats

[tcp]
port = %(tcp)d
call = brim.tcp_echo.TCPEcho

[daemons]
daemons = sample

[sample]
call = brim.daemon_sample.DaemonSample
interval = 60
"""


def deploy(brimd) -> tuple[int, int, int]:
    """Start the conf above; return (main pid, wsgi port, tcp port)."""
    port, tcp = free_port(), free_port()
    brimd.write_module('slowapp', SLOW_APP)
    brimd.write_conf(CONF % dict(port=port, tcp=tcp))
    main = brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    return main, port, tcp


def healthz(port: int) -> tuple[int, bytes]:
    status, _, body = http_request(port, path='/healthz')
    return status, body


def test_healthz_counts_workers_not_daemons(brimd):
    main, port, tcp = deploy(brimd)
    up = b'ok\nwsgi 2/2\ntcp 1/1\ndaemons 1/1\n'
    wait_until(lambda: healthz(port) == (200, up), what='every worker and the daemon up')

    status, headers, body = http_request(port, 'HEAD', '/healthz')
    assert (status, body) == (200, b'')
    assert headers['content-length'] == str(len(up))
    assert headers['cache-control'] == 'no-store'
    assert headers['content-type'] == 'text/plain; charset=utf-8'
    assert http_request(port, path='/livez')[:3:2] == (200, b'ok\n')
    assert http_request(port, 'POST', '/healthz', b'x')[0] == 501
    assert http_request(port, path='/pid')[0] == 200  # other paths go down the pipeline
    assert tcp_exchange(tcp, b'hi') == b'hi'

    # A daemon down is reported, not counted: still 200 until it is back
    # (the supervisor restarts it after respawn_interval, 1 s).
    stats = get_stats(port)
    os.kill(stats['daemons']['sample']['pid'], signal.SIGKILL)
    wait_until(lambda: healthz(port) == (200, b'ok\nwsgi 2/2\ntcp 1/1\ndaemons 0/1\n'), 5,
               interval=0.02, what='the daemon reported down, the host still up')
    wait_until(lambda: healthz(port) == (200, up), 10, what='the daemon back')

    # A worker down (pid 0 in the stats for at least respawn_interval, 1 s):
    # 503 from the workers left, then 200 once it is replaced.
    os.kill(stats['tcp']['0']['pid'], signal.SIGKILL)
    wait_until(lambda: healthz(port) == (503, b'down\nwsgi 2/2\ntcp 0/1\ndaemons 1/1\n'), 5,
               interval=0.02, what='503 with the tcp worker down')
    wait_until(lambda: healthz(port) == (200, up), 10, what='the tcp worker back')

    os.kill(stats['wsgi']['1']['pid'], signal.SIGKILL)
    wait_until(lambda: healthz(port) == (503, b'down\nwsgi 1/2\ntcp 1/1\ndaemons 1/1\n'), 5,
               interval=0.02, what='503 from the other wsgi worker')
    wait_until(lambda: healthz(port) == (200, up), 10, what='the wsgi worker back')
    assert group_members(main)


def test_healthz_is_503_with_connection_close_while_draining(brimd):
    main, port, _ = deploy(brimd)
    wait_until(lambda: healthz(port)[0] == 200, what='healthy')
    conn = send_slow(brimd, port, 2)
    try:
        os.kill(main, signal.SIGHUP)  # brimd shutdown
        brimd.wait_log('SIGHUP: no longer accepting', 5)
        # New connections are refused at once: balancers stop sending.
        wait_until(lambda: not port_accepts(port), 5, what='the port to close')
        # The request in flight is answered as it began (keep-alive)...
        status, headers, body = read_response(conn, 10)
        assert status.startswith(b'HTTP/1.1 200') and body == b'done'
        assert headers.get(b'connection', b'').lower() != b'close'
        # ...and a probe on that open connection gets 503, then the close.
        conn.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
        status, headers, body = read_response(conn, 10)
        assert status.startswith(b'HTTP/1.1 503'), status
        assert headers.get(b'connection', b'').lower() == b'close'
        assert headers.get(b'cache-control') == b'no-store'
        assert body.startswith(b'draining\n'), body  # the other workers and the daemon may be gone already
        assert read_all(conn, 5) == b''
    finally:
        conn.close()
    wait_until(lambda: not group_members(main), 10, what='every brimd process to exit')


def test_healthz_in_the_foreground(brimd):
    # brimd no-daemon: one process, no supervisor writing pids.
    port = free_port()
    brimd.write_conf('[wsgi]\nport = %d\napps = health\n\n[health]\ncall = brim.wsgi_health.WSGIHealth\n' % port)
    brimd.foreground()
    wait_until(lambda: port_accepts(port), what='port')
    assert healthz(port) == (200, b'ok\nwsgi 1/1\n')


def _container(brimd, port: int) -> str:
    """contrib/kubernetes.yaml's brimd.conf and container script, with
    /etc/brim/ and the pid file moved into the test's directory."""
    yaml = pytest.importorskip('yaml')
    docs = list(yaml.safe_load_all((REPO / 'contrib' / 'kubernetes.yaml').read_text()))
    conf = next(doc for doc in docs if doc['kind'] == 'ConfigMap')['data']['brimd.conf']
    deployment = next(doc for doc in docs if doc['kind'] == 'Deployment')
    container = deployment['spec']['template']['spec']['containers'][0]
    assert container['command'] == ['/bin/sh', '-c']
    script = container['args'][0]

    def moved(text: str) -> str:
        return text.replace('/etc/brim/', '%s/etc/' % brimd.dir).replace('/tmp/brimd.pid', str(brimd.pid_path))

    etc = brimd.dir / 'etc'
    (etc / 'conf.d').mkdir(parents=True)
    (etc / 'brimd.conf').write_text(moved(conf))
    # The optional per-host file the shared conf names: listen on loopback only here.
    (etc / 'conf.d' / 'local.conf').write_text('[brim]\nip = 127.0.0.1\n')
    bin_dir = brimd.dir / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'brimd').write_text('#!/bin/sh\nexec %s -m brim "$@"\n' % sys.executable)
    (bin_dir / 'brimd').chmod(0o755)
    brimd.env['PATH'] = '%s%s%s' % (bin_dir, os.pathsep, brimd.env.get('PATH', ''))
    brimd.env['PORT'] = str(port)
    return moved(script)


def test_kubernetes_container_command(brimd):
    port = free_port()
    script = _container(brimd, port)
    shell = subprocess.Popen(['/bin/sh', '-c', script], env=brimd.env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, cwd=brimd.dir)
    brimd.popens.append(shell)
    main = wait_until(brimd.pid, 20, what='the pid file')
    brimd.started_groups.add(main)
    wait_until(lambda: healthz(port) == (200, b'ok\nwsgi 2/2\n'), what='/healthz 200')
    assert http_request(port, path='/livez')[0] == 200
    assert http_request(port, path='/metrics')[0] == 200

    # brimd restart in the pod: the shell follows the pid file to the new server.
    brimd.conf_path = brimd.dir / 'etc' / 'brimd.conf'
    restart = brimd.run('restart')
    assert restart.returncode == 0, restart.stderr
    new = wait_until(lambda: brimd.pid() != main and brimd.pid(), 10, what='the new pid')
    brimd.started_groups.add(new)
    wait_until(lambda: process_state(main) in (None, 'Z'), 10, what='the old server to exit')
    assert shell.poll() is None
    assert healthz(port)[0] == 200

    # SIGTERM to the shell (what Kubernetes sends PID 1): brimd shutdown, then the shell exits 0.
    os.kill(shell.pid, signal.SIGTERM)
    assert shell.wait(timeout=20) == 0
    assert not group_members(new)
    assert not port_accepts(port)
    output = shell.stdout.read().decode() if shell.stdout else ''
    assert '%d shut down' % new in output, output
