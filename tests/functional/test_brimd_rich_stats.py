"""The richer built-in stats of a real brimd (issue 5, point 2): the
request-duration histogram, bytes in and out, in_flight and free_slots of
WSGI workers, the accept backlog of a listener, TCP bytes; in ``/stats``
and ``/metrics``.

The stats app runs in its own subserver (``[wsgi]``), so its own requests
never show in ``[wsgi2]``, whose stats are checked; and it answers while
``[wsgi2]``'s one slot is taken.
"""

from __future__ import annotations

import socket
import sys
import threading

import pytest

from harness import SLOW_APP, free_port, get_stats, http_request, port_accepts, tcp_exchange, wait_until

from brim.stats import DURATION_BOUNDS, DURATION_BUCKETS, DURATION_SUM

CONF = """
[wsgi]
port = %(stats)d
workers = 1
apps = stats

[stats]
call = brim.wsgi_stats.WSGIStats

[wsgi2]
port = %(wsgi)d
workers = 1
concurrent_per_worker = %(concurrent)d
apps = slow echo

[slow]
call = slowapp.Slow

[echo]
call = brim.wsgi_echo.WSGIEcho

[tcp]
port = %(tcp)d
workers = 1
call = brim.tcp_echo.TCPEcho
"""


def start(brimd, concurrent: int = 10) -> dict:
    ports = dict(stats=free_port(), wsgi=free_port(), tcp=free_port(), concurrent=concurrent)
    brimd.write_module('slowapp', SLOW_APP)
    brimd.write_conf(CONF % ports)
    brimd.start()
    wait_until(lambda: all(port_accepts(ports[k]) for k in ('stats', 'wsgi', 'tcp')), what='ports')
    return ports


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` (which asks to close), return every byte of the answer."""
    with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
        sock.sendall(request)
        out = b''
        while True:
            data = sock.recv(65536)
            if not data:
                return out
            out += data


def wsgi2(port: int) -> dict:
    return get_stats(port)['wsgi2']


def test_histogram_and_bytes(brimd):
    ports = start(brimd)
    before = wsgi2(ports['stats'])  # port_accepts connected without a request: nothing counted
    assert before['bytes_in'] == before['bytes_out'] == before['in_flight'] == 0
    assert sum(before[name] for name in DURATION_BUCKETS) == 0
    assert before['free_slots'] == 10 and before['open_connections'] == 0
    requests = [b'GET /slow?0.3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
                b'GET /slow?0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
                b'GET /slow?0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
                b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world']
    answers = [exchange(ports['wsgi'], request) for request in requests]
    assert answers[3].endswith(b'\r\n\r\nhello world') and all(a.startswith(b'HTTP/1.1 200 ') for a in answers)
    wait_until(lambda: wsgi2(ports['stats'])['request_count'] == 4 and wsgi2(ports['stats'])['in_flight'] == 0,
               what='the requests counted')
    stats = wsgi2(ports['stats'])
    assert stats['bytes_in'] == sum(map(len, requests))
    assert stats['bytes_out'] == sum(map(len, answers))
    assert stats['0']['bytes_in'] == stats['bytes_in']  # one worker: the roll-up is its bucket
    counts = [stats[name] for name in DURATION_BUCKETS]
    assert sum(counts) == 4
    # The 0.3 s request is in a bucket whose lower bound is at least 0.25 s
    # (bounds only: a slow machine may put any request later, never earlier).
    slow_from = DURATION_BOUNDS.index(0.25) + 1
    assert sum(counts[slow_from:]) >= 1
    assert stats[DURATION_SUM] >= 300000
    assert stats['free_slots'] == 10 and stats['open_connections'] == 0


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='only Linux reports the accept queue')
def test_in_flight_free_slots_and_accept_backlog(brimd):
    ports = start(brimd, concurrent=1)
    assert wsgi2(ports['stats'])['accept_backlog'] == 0
    answer: list = []
    slow = threading.Thread(target=lambda: answer.append(http_request(ports['wsgi'], path='/slow?3', timeout=20)))
    slow.start()
    pending = []
    try:
        wait_until(lambda: wsgi2(ports['stats'])['in_flight'] == 1, what='the slow request in flight')
        stats = wsgi2(ports['stats'])
        assert (stats['free_slots'], stats['open_connections'], stats['0']['in_flight']) == (0, 1, 1)
        # The one slot is taken: these wait in the listener's accept queue.
        for _ in range(3):
            pending.append(socket.create_connection(('127.0.0.1', ports['wsgi']), timeout=10))
        wait_until(lambda: wsgi2(ports['stats'])['accept_backlog'] == 3, timeout=5, what='the backlog sampled')
        assert get_stats(ports['stats'])['wsgi']['accept_backlog'] == 0  # the stats app's own listener
    finally:
        for sock in pending:
            sock.close()
        slow.join(20)
    assert answer and answer[0][0] == 200
    wait_until(lambda: wsgi2(ports['stats'])['accept_backlog'] == 0 and wsgi2(ports['stats'])['in_flight'] == 0
               and wsgi2(ports['stats'])['free_slots'] == 1, timeout=10, what='all idle again')
    stats = wsgi2(ports['stats'])
    assert stats['request_count'] == 1 and stats['open_connections'] == 0


def test_tcp_bytes_and_metrics(brimd):
    parser = pytest.importorskip('prometheus_client.parser')
    ports = start(brimd)
    message = b'hello, echo' * 100
    assert tcp_exchange(ports['tcp'], message) == message
    assert tcp_exchange(ports['tcp'], b'x') == b'x'
    wait_until(lambda: get_stats(ports['stats'])['tcp']['bytes_out'] == len(message) + 1, what='bytes counted')
    tcp = get_stats(ports['stats'])['tcp']
    assert tcp['bytes_in'] == len(message) + 1 and tcp['byte_count'] == len(message) + 1
    assert tcp['open_connections'] == 0 and tcp['free_slots'] == tcp['0']['free_slots'] > 0
    assert 'in_flight' not in tcp and DURATION_SUM not in tcp  # WSGI only
    for path in ('/slow?0', '/slow?0.01'):
        assert http_request(ports['wsgi'], path=path)[0] == 200
    wait_until(lambda: wsgi2(ports['stats'])['in_flight'] == 0 and wsgi2(ports['stats'])['request_count'] == 2,
               what='requests counted')
    text = http_request(ports['stats'], path='/metrics')[2].decode()
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    hist = families['brim_request_duration_seconds']
    assert hist.type == 'histogram'
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in hist.samples}
    labels = (('subserver', 'wsgi2'), ('worker', '0'))
    assert samples[('brim_request_duration_seconds_count', labels)] == 2
    assert samples[('brim_request_duration_seconds_bucket', (('le', '+Inf'),) + labels)] == 2
    assert samples[('brim_request_duration_seconds_sum', labels)] >= 0.01
    assert samples[('brim_request_duration_seconds_bucket', (('le', '0.005'),) + labels)] <= 1  # the 0.01 s one
    roll = families['brim_subserver_request_duration_seconds']
    assert {s.labels['subserver'] for s in roll.samples} == {'wsgi', 'wsgi2'}
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert values[('brim_bytes_in_total', (('subserver', 'tcp'), ('worker', '0')))] == len(message) + 1
    assert values[('brim_subserver_bytes_out_total', (('subserver', 'tcp'),))] == len(message) + 1
    assert families['brim_accept_backlog'].type == 'gauge' and families['brim_in_flight'].type == 'gauge'
    assert values[('brim_subserver_in_flight', (('subserver', 'wsgi'),))] == 1  # the /metrics request itself
