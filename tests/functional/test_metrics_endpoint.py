"""The Prometheus exposition of a real brimd (issue 5, point 1): WSGI with 2
workers, TCP, UDP and a daemon, every sample checked against ``/stats``.

``/stats`` is fetched before and after ``/metrics`` on the same keep-alive
connection (so the same worker answers all three and its open connection
is counted in each); every metric value must lie between the two JSON
values of its stat: counters only grow, and nothing else moves.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess

import pytest

from harness import free_port, http_request, port_accepts, tcp_exchange, udp_exchange, wait_until

from brim.metrics import LE
from brim.stats import DURATION_BUCKETS, DURATION_SUM

parser = pytest.importorskip('prometheus_client.parser', reason='prometheus_client is not installed '
                             '(pip install -e .[test] installs it)')

CONF = """
[wsgi]
port = %(wsgi)d
workers = 2
apps = echo stats

[echo]
call = brim.wsgi_echo.WSGIEcho

[stats]
call = brim.wsgi_stats.WSGIStats

[tcp]
port = %(tcp)d
call = brim.tcp_echo.TCPEcho

[udp]
port = %(udp)d
call = brim.udp_echo.UDPEcho

[daemons]
daemons = daemon_sample

[daemon_sample]
call = brim.daemon_sample.DaemonSample
interval = 3600
"""

COUNTERS = {'request_count', 'status_2xx_count', 'status_3xx_count', 'status_4xx_count', 'status_5xx_count',
            'status_404_count', 'status_408_count', 'status_499_count', 'status_501_count', 'restart_count',
            'recycle_count', 'connection_count', 'datagram_count', 'echo.requests', 'byte_count', 'bytes_in',
            'bytes_out'}
GAUGES = {'start_time', 'pid', 'last_exit', 'backoff', 'open_connections', 'iterations', 'last_run', 'free_slots',
          'in_flight', 'accept_backlog'}
HISTOGRAM = set(DURATION_BUCKETS) | {DURATION_SUM}


def metric_name(stat: str, rollup: bool) -> str:
    name = ('brim_subserver_' if rollup else 'brim_') + stat.replace('.', '_')
    return name + '_total' if stat in COUNTERS else name


def histogram_series(name: str, labels: dict, values: dict, out: dict) -> None:
    """The samples of the request-duration histogram made of one /stats entry's stats."""
    total = 0
    for le, stat in zip(LE, DURATION_BUCKETS, strict=True):
        total += values[stat]
        out[(name + '_bucket', tuple(sorted(dict(labels, le=le).items())))] = total
    out[(name + '_count', tuple(sorted(labels.items())))] = total
    out[(name + '_sum', tuple(sorted(labels.items())))] = values[DURATION_SUM] / 1e6


def expected_series(snapshot: dict) -> dict:
    """``{(sample name, labels): value}`` that /metrics must show for a /stats snapshot."""
    out = {('brim_server_start_time', ()): snapshot['start_time']}
    for subserver, entry in snapshot.items():
        if not isinstance(entry, dict):
            continue
        if DURATION_SUM in entry:
            histogram_series('brim_subserver_request_duration_seconds', {'subserver': subserver}, entry, out)
        for key, value in entry.items():
            if isinstance(value, dict):
                label = 'daemon' if subserver == 'daemons' else 'worker'
                if DURATION_SUM in value:
                    histogram_series('brim_request_duration_seconds', {'subserver': subserver, label: key},
                                     value, out)
                for stat, number in value.items():
                    if stat in HISTOGRAM:
                        continue
                    labels = tuple(sorted({'subserver': subserver, label: key}.items()))
                    out[(metric_name(stat, False), labels)] = number
            elif key not in HISTOGRAM:
                out[(metric_name(key, True), (('subserver', subserver),))] = value
    return out


@pytest.fixture
def served(brimd):
    ports = dict(wsgi=free_port(), tcp=free_port(), udp=free_port())
    brimd.write_conf(CONF % ports)
    brimd.start()
    wait_until(lambda: port_accepts(ports['wsgi']) and port_accepts(ports['tcp']), what='ports')
    for n in range(6):
        assert http_request(ports['wsgi'], 'POST', '/echo', body=b'hi %d' % n)[0] == 200
    assert http_request(ports['wsgi'], path='/nowhere')[0] == 404
    assert tcp_exchange(ports['tcp'], b'hello') == b'hello'
    assert udp_exchange(ports['udp'], b'ping') == b'ping'
    wait_until(lambda: json.loads(http_request(ports['wsgi'], path='/stats')[2])['daemons']['daemon_sample']
               ['iterations'], what='the daemon to run')
    return ports


def fetch(conn: http.client.HTTPConnection, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn.request('GET', path, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def test_metrics_match_stats(served):
    conn = http.client.HTTPConnection('127.0.0.1', served['wsgi'], timeout=10)
    try:
        before = json.loads(fetch(conn, '/stats')[2])
        status, headers, body = fetch(conn, '/metrics')
        after = json.loads(fetch(conn, '/stats')[2])
    finally:
        conn.close()
    assert status == 200
    assert headers['content-type'] == 'text/plain; version=0.0.4; charset=utf-8'
    text = body.decode('utf-8')
    families = list(parser.text_string_to_metric_families(text))

    # One family per stat name, each with HELP and the right type.
    names = [family.name for family in families]
    assert len(names) == len(set(names))
    for family in families:
        assert family.documentation, family.name
        stat = family.name.removeprefix('brim_subserver_').removeprefix('brim_')
        if family.type == 'counter':
            assert stat in {name.replace('.', '_') for name in COUNTERS}, family.name
        elif family.type == 'histogram':
            assert stat == 'request_duration_seconds', family.name
        else:
            assert family.type == 'gauge', family.name
            assert stat in GAUGES or family.name == 'brim_server_start_time', family.name
    by_name = {family.name: family for family in families}
    assert by_name['brim_request_count'].type == 'counter'
    assert by_name['brim_start_time'].type == 'gauge'
    assert by_name['brim_open_connections'].type == 'gauge'
    assert by_name['brim_subserver_open_connections'].type == 'gauge'
    assert by_name['brim_echo_requests'].type == 'counter'
    assert by_name['brim_iterations'].type == 'gauge'
    assert 'Stat "echo.requests"' in by_name['brim_echo_requests'].documentation

    # Every sample is a stat of /stats and every stat a sample, valued between the two snapshots.
    got = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
           for family in families for sample in family.samples}
    low, high = expected_series(before), expected_series(after)
    assert set(got) == set(low) == set(high)
    for key, value in got.items():
        assert min(low[key], high[key]) <= value <= max(low[key], high[key]), (key, low[key], value, high[key])

    # Spot checks: the labels of each kind of bucket, and traffic counted.
    assert got[('brim_request_count_total', (('subserver', 'wsgi'), ('worker', '1')))] >= 0
    assert got[('brim_connection_count_total', (('subserver', 'tcp'), ('worker', '0')))] >= 2  # + port_accepts
    assert got[('brim_datagram_count_total', (('subserver', 'udp'), ('worker', '0')))] == 1
    assert got[('brim_subserver_echo_requests_total', (('subserver', 'wsgi'),))] == 6
    assert got[('brim_subserver_status_404_count_total', (('subserver', 'wsgi'),))] == 1
    assert got[('brim_iterations', (('daemon', 'daemon_sample'), ('subserver', 'daemons')))] == 1
    # The histogram: every answered request of the fixture, none of the
    # in-flight /metrics request (nor the /stats after it).
    assert got[('brim_subserver_request_duration_seconds_count', (('subserver', 'wsgi'),))] == \
        low[('brim_subserver_request_duration_seconds_count', (('subserver', 'wsgi'),))] + 1  # + the first /stats
    assert got[('brim_subserver_in_flight', (('subserver', 'wsgi'),))] == 1  # itself
    assert got[('brim_subserver_bytes_in_total', (('subserver', 'tcp'),))] == 5  # b'hello'
    pids = {value for (name, _), value in got.items() if name == 'brim_pid'}
    assert len(pids) == 5 and 0 not in pids  # 2 WSGI workers, TCP, UDP, the daemon


def test_stats_content_negotiation(served):
    port = served['wsgi']
    status, headers, body = http_request(port, path='/stats')
    assert (status, headers['content-type'], headers['vary']) == (200, 'application/json', 'Accept')
    json.loads(body)
    scraper = ('application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,'
               'text/plain;version=0.0.4;q=0.5,*/*;q=0.1')
    for accept in ('text/plain', scraper, 'text/plain;version=0.0.4'):
        status, headers, body = http_request(port, path='/stats', headers={'Accept': accept})
        assert (status, headers['content-type']) == (200, 'text/plain; version=0.0.4; charset=utf-8'), accept
        assert b'\n# TYPE brim_request_count_total counter\n' in body
    for accept in ('*/*', 'application/json', 'text/html,application/xhtml+xml,*/*;q=0.8',
                   'text/plain;q=0.5,application/json'):
        status, headers, body = http_request(port, path='/stats', headers={'Accept': accept})
        assert (status, headers['content-type']) == (200, 'application/json'), accept
    status, headers, body = http_request(port, 'HEAD', '/metrics')
    assert (status, body) == (200, b'') and int(headers['content-length']) > 0
    assert http_request(port, 'POST', '/metrics', body=b'x')[0] == 501


def test_promtool_check_metrics(served):
    promtool = shutil.which('promtool')
    if not promtool:
        pytest.skip('promtool is not installed (Debian: apt-get install prometheus)')
    body = http_request(served['wsgi'], path='/metrics')[2]
    result = subprocess.run([promtool, 'check', 'metrics'], input=body, capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode('utf-8', 'replace')
