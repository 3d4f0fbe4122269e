"""Connections are spread evenly over a stream subserver's workers.

Without balancing, the worker the kernel wakes first accepts nearly every
connection made one after another (seen: 50 to 0 with two workers). Here
each test opens its connections one at a time, keeps them all open, then
asks each which worker pid serves it.
"""

from __future__ import annotations

import socket
from collections import Counter

import pytest

from harness import SLOW_APP, free_port, get_stats, port_accepts, wait_until

CONNECTIONS = 20

#: A TCP handler that writes its worker's pid, then holds the connection
#: open until the client closes it.
PID_TCP = '''
import os


class Pid:
    def __init__(self, name, parsed_conf):
        pass

    def __call__(self, subserver, stats, sock, ip, port):
        sock.sendall(b'%d\\n' % os.getpid())
        while sock.recv(100):
            pass

    @classmethod
    def parse_conf(cls, name, conf):
        return {}

    @classmethod
    def stats_conf(cls, name, parsed_conf):
        return []
'''

CONF = '''
[wsgi]
port = %(wsgi)d
workers = 2
apps = slow stats

[slow]
call = slowapp.Slow

[stats]
call = brim.wsgi_stats.WSGIStats

[tcp]
port = %(tcp)d
workers = 2
call = pidtcp.Pid
client_timeout = 60
'''


@pytest.fixture
def deployed(brimd):
    ports = dict(wsgi=free_port(), tcp=free_port())
    brimd.write_module('slowapp', SLOW_APP)
    brimd.write_module('pidtcp', PID_TCP)
    brimd.write_conf(CONF % ports)
    brimd.start()
    wait_until(lambda: port_accepts(ports['wsgi']) and port_accepts(ports['tcp']), what='ports')

    def both_up():
        stats = get_stats(ports['wsgi'])
        return all(stats[sub][bucket]['start_time'] for sub in ('wsgi', 'tcp') for bucket in ('0', '1'))
    wait_until(both_up, what='every worker serving')
    return brimd, ports


def _recv_line(sock: socket.socket) -> bytes:
    data = b''
    while not data.endswith(b'\n'):
        chunk = sock.recv(100)
        assert chunk, 'closed early: %r' % data
        data += chunk
    return data


def _wsgi_pid(sock: socket.socket) -> int:
    sock.sendall(b'GET /pid HTTP/1.1\r\nHost: x\r\n\r\n')
    data = b''
    while b'\r\n\r\n' not in data or not data.split(b'\r\n\r\n', 1)[1]:
        chunk = sock.recv(1000)
        assert chunk, 'closed early: %r' % data
        data += chunk
    return int(data.split(b'\r\n\r\n', 1)[1])


def _spread(pids: list[int]) -> Counter:
    counts = Counter(pids)
    assert len(counts) == 2, 'one worker took every connection: %s' % dict(counts)
    # Evenly: a sibling takes a connection within BALANCE_MAX_WAIT unless
    # it is busy, so allow a margin for a loaded test machine.
    assert min(counts.values()) >= CONNECTIONS // 4, dict(counts)
    return counts


def test_wsgi_connections_made_one_by_one_are_spread_over_workers(deployed):
    brimd, ports = deployed
    socks = []
    try:
        for _ in range(CONNECTIONS):
            socks.append(socket.create_connection(('127.0.0.1', ports['wsgi']), timeout=5))
        pids = [_wsgi_pid(sock) for sock in socks]
        counts = _spread(pids)
        # Each worker publishes what it has open; /stats (one more
        # connection) shows the split.
        stats = get_stats(ports['wsgi'])
        assert stats['wsgi']['open_connections'] == CONNECTIONS + 1
        by_pid = {stats['wsgi'][b]['pid']: stats['wsgi'][b]['open_connections'] for b in ('0', '1')}
        for pid, count in counts.items():
            assert by_pid[pid] in (count, count + 1)
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: get_stats(ports['wsgi'])['wsgi']['open_connections'] == 1, what='connections closed')


def test_tcp_connections_made_one_by_one_are_spread_over_workers(deployed):
    brimd, ports = deployed
    socks = []
    try:
        for _ in range(CONNECTIONS):
            socks.append(socket.create_connection(('127.0.0.1', ports['tcp']), timeout=5))
        pids = [int(_recv_line(sock)) for sock in socks]
        _spread(pids)
        assert get_stats(ports['wsgi'])['tcp']['open_connections'] == CONNECTIONS
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: get_stats(ports['wsgi'])['tcp']['open_connections'] == 0, what='tcp connections closed')
