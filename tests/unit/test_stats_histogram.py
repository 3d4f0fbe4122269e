"""Tests for the richer built-in stats (issue 5, point 2): the request-duration
histogram's buckets and its Prometheus family, the new stats' metric types,
the accept-queue reading, and what a WSGI worker declares.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

from brim.metrics import LE, builtin, render
from brim.stats import (DURATION_BOUNDS, DURATION_BUCKETS, DURATION_SUM, SharedStats, StatsLayout, accept_backlog,
                        duration_bucket)

parser = pytest.importorskip('prometheus_client.parser', reason='prometheus_client is not installed '
                             '(pip install -e .[test] installs it)')

HIST = [(name, 'sum') for name in DURATION_BUCKETS] + [(DURATION_SUM, 'sum')]
WSGI = [('start_time', 'worker'), ('pid', 'worker'), ('open_connections', 'sum'), ('free_slots', 'sum'),
        ('bytes_in', 'sum'), ('bytes_out', 'sum'), ('accept_backlog', 'max'), ('request_count', 'sum'),
        ('in_flight', 'sum')] + HIST
TCP = [('start_time', 'worker'), ('open_connections', 'sum'), ('free_slots', 'sum'), ('bytes_in', 'sum'),
       ('bytes_out', 'sum'), ('accept_backlog', 'max'), ('connection_count', 'sum')]
LAYOUT = [('wsgi', [('0', WSGI), ('1', WSGI)]), ('tcp', [('0', TCP)])]


def observe(stats: SharedStats, bucket: str, seconds: float) -> None:
    """What WSGISubserver.finish_request writes for one request."""
    b = stats.bucket('wsgi', bucket)
    cells = b.cells
    cells[b.cell(DURATION_BUCKETS[duration_bucket(seconds)])] += 1
    cells[b.cell(DURATION_SUM)] += int(seconds * 1e6)


def test_bucket_names_and_bounds():
    assert DURATION_BUCKETS[0] == 'request_duration_bucket_0.001'
    assert DURATION_BUCKETS[-2:] == ('request_duration_bucket_10', 'request_duration_bucket_inf')
    assert len(DURATION_BUCKETS) == len(DURATION_BOUNDS) + 1 == len(LE)
    assert LE[0] == '0.001' and LE[-1] == '+Inf'


@pytest.mark.parametrize('seconds, bucket', [
    (0.0, '0.001'), (0.0004, '0.001'), (0.001, '0.001'), (0.0011, '0.0025'), (0.3, '0.5'), (0.25, '0.25'),
    (1.0, '1'), (9.99, '10'), (10.0, '10'), (10.01, 'inf'), (3600.0, 'inf'),
])
def test_duration_bucket(seconds, bucket):
    assert DURATION_BUCKETS[duration_bucket(seconds)] == 'request_duration_bucket_' + bucket


def families(text: str) -> dict:
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def test_histogram_family_cumulative_per_worker_and_rolled_up():
    stats = SharedStats(StatsLayout(LAYOUT))
    for seconds in (0.0005, 0.003, 0.003, 0.3):
        observe(stats, '0', seconds)
    observe(stats, '1', 20.0)
    text = render(stats.layout, stats.cells)
    got = families(text)
    hist = got['brim_request_duration_seconds']
    assert hist.type == 'histogram' and 'request_duration_sum_us' in hist.documentation
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in hist.samples}

    def bucket(worker: str, le: str) -> float:
        return samples[('brim_request_duration_seconds_bucket',
                        tuple(sorted({'subserver': 'wsgi', 'worker': worker, 'le': le}.items())))]
    w0 = {'subserver': 'wsgi', 'worker': '0'}
    assert [bucket('0', le) for le in LE] == [1, 1, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4]
    assert [bucket('1', le) for le in LE] == [0] * 13 + [1]
    assert samples[('brim_request_duration_seconds_count', tuple(sorted(w0.items())))] == 4
    assert samples[('brim_request_duration_seconds_sum', tuple(sorted(w0.items())))] == pytest.approx(0.3065)
    roll = {(s.name, tuple(sorted(s.labels.items()))): s.value
            for s in got['brim_subserver_request_duration_seconds'].samples}
    assert roll[('brim_subserver_request_duration_seconds_count', (('subserver', 'wsgi'),))] == 5
    assert roll[('brim_subserver_request_duration_seconds_sum', (('subserver', 'wsgi'),))] == pytest.approx(20.3065)
    assert roll[('brim_subserver_request_duration_seconds_bucket', (('le', '0.005'), ('subserver', 'wsgi')))] == 3
    # The bucket stats have no families of their own; the tcp subserver has no histogram.
    assert not any('request_duration_bucket' in name or 'request_duration_sum' in name for name in got)
    assert 'subserver="tcp"' not in ''.join(line for line in text.splitlines() if 'duration' in line)
    # Exact decimal seconds in _sum.
    assert 'brim_request_duration_seconds_sum{subserver="wsgi",worker="1"} 20\n' in text


def test_new_stats_types_and_snapshot():
    stats = SharedStats(StatsLayout(LAYOUT))
    w = stats.bucket('wsgi', '0')
    w.set('bytes_in', 100)
    w.set('accept_backlog', 3)
    stats.bucket('wsgi', '1').set('accept_backlog', 5)
    observe(stats, '1', 0.3)
    snap = stats.snapshot()
    assert snap['wsgi']['accept_backlog'] == 5  # max over the workers: they share one listener
    assert snap['wsgi']['request_duration_bucket_0.5'] == 1 and snap['wsgi'][DURATION_SUM] == 300000
    assert snap['wsgi']['bytes_in'] == 100
    got = families(render(stats.layout, stats.cells))
    assert got['brim_bytes_in'].type == got['brim_bytes_out'].type == 'counter'  # _total stripped by the parser
    for name in ('in_flight', 'free_slots', 'accept_backlog', 'open_connections'):
        assert got['brim_' + name].type == 'gauge', name
        assert builtin(name) is not None
    assert got['brim_subserver_accept_backlog'].samples[0].value == 5


def test_names_pass_promlint_rules():
    stats = SharedStats(StatsLayout(LAYOUT))
    for family in parser.text_string_to_metric_families(render(stats.layout, stats.cells)):
        full = family.name + '_total' if family.type == 'counter' else family.name
        assert family.documentation and ':' not in full and not re.search('[a-z][A-Z]', full)
        if family.type != 'histogram':
            assert not full.endswith(('_count', '_sum', '_bucket')), full


def test_promtool_check_metrics():
    promtool = shutil.which('promtool')
    if not promtool:
        pytest.skip('promtool is not installed (Debian: apt-get install prometheus)')
    stats = SharedStats(StatsLayout(LAYOUT))
    observe(stats, '0', 0.02)
    result = subprocess.run([promtool, 'check', 'metrics'], input=render(stats.layout, stats.cells).encode(),
                            capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode('utf-8', 'replace')


def test_histogram_name_keeps_its_samples_from_app_stats():
    app = WSGI + [('request_duration_seconds_count', 'worker')]
    stats = SharedStats(StatsLayout([('wsgi', [('0', app)])]))
    got = families(render(stats.layout, stats.cells))
    assert got['brim_request_duration_seconds'].type == 'histogram'
    other = [name for name in got if name.startswith('brim_request_duration_seconds_count')]
    assert len(other) == 1 and other[0] != 'brim_request_duration_seconds_count'


def test_bucket_cell_access():
    stats = SharedStats(StatsLayout(LAYOUT))
    b = stats.bucket('wsgi', '1')
    index = b.cell('bytes_out')
    b.cells[index] += 7
    assert b.get('bytes_out') == 7 and b.has('bytes_out') and not b.has('nope')
    with pytest.raises(KeyError):
        b.cell('nope')


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='only Linux reports the accept queue')
def test_accept_backlog_reads_the_queue():
    listener = socket.socket()
    clients = []
    try:
        listener.bind(('127.0.0.1', 0))
        listener.listen(16)
        assert accept_backlog(listener) == 0
        for _ in range(3):
            client = socket.create_connection(listener.getsockname(), timeout=5)
            clients.append(client)
        deadline = time.monotonic() + 5
        while accept_backlog(listener) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert accept_backlog(listener) == 3
        listener.accept()[0].close()
        assert accept_backlog(listener) == 2
    finally:
        for client in clients:
            client.close()
        listener.close()
    assert accept_backlog(listener) == 0  # closed
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert accept_backlog(udp) == 0

