"""Tests for brim.metrics (the Prometheus text format 0.0.4 of the shared
stats) and the stats app serving it (brim.wsgi_stats): names, types, labels
and values against SharedStats.snapshot(), escaping, sanitizing, collisions.

The text is read back with prometheus_client's parser; ``promtool check
metrics`` runs too where it is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from brim.conf import Conf
from brim.metrics import (
    CONTENT_TYPE, Exposition, builtin, escape_help, escape_label, metric_type, render, sanitize)
from brim.stats import SharedStats, StatsLayout
from brim.wsgi_stats import WSGIStats, prefers_text

parser = pytest.importorskip('prometheus_client.parser', reason='prometheus_client is not installed '
                             '(pip install -e .[test] installs it)')

SUPERVISED = [('pid', 'worker'), ('restart_count', 'sum'), ('last_exit', 'worker'), ('backoff', 'worker'),
              ('recycle_count', 'sum')]
WSGI = ([('start_time', 'worker')] + SUPERVISED + [('open_connections', 'sum'), ('request_count', 'sum'),
        ('status_2xx_count', 'sum'), ('status_4xx_count', 'sum'), ('status_404_count', 'sum'),
        ('echo.requests', 'sum'), ('lowest', 'min'), ('highest', 'max'), ('queueDepth', 'worker')])
TCP = [('start_time', 'worker')] + SUPERVISED + [('open_connections', 'sum'), ('connection_count', 'sum')]
UDP = [('start_time', 'worker')] + SUPERVISED + [('datagram_count', 'sum'), ('byte_count', 'sum')]
DAEMON = [('start_time', 'daemon'), ('pid', 'daemon'), ('restart_count', 'daemon'), ('last_exit', 'daemon'),
          ('backoff', 'daemon'), ('iterations', 'daemon'), ('done', 'sum')]
LAYOUT = [('wsgi', [('0', WSGI), ('1', WSGI)]), ('tcp#x', [('0', TCP)]), ('udp', [('0', UDP), ('1', UDP)]),
          ('daemons', [('daemon_sample', DAEMON), ('other', DAEMON)])]
COUNTERS = {'restart_count', 'recycle_count', 'request_count', 'status_2xx_count', 'status_4xx_count',
            'status_404_count', 'connection_count', 'datagram_count', 'echo.requests', 'byte_count', 'done'}


def filled(layout_input=LAYOUT) -> SharedStats:
    """SharedStats with a distinct value in every cell (its index times 7, plus 1)."""
    stats = SharedStats(StatsLayout(layout_input))
    for i in range(stats.layout.cells):
        stats.cells[i] = 7 * i + 1
    return stats


def parse(text: str) -> dict:
    """``{family name: (type, help, {(sample name, labels): value})}``."""
    out = {}
    for family in parser.text_string_to_metric_families(text):
        assert family.name not in out, family.name
        out[family.name] = (family.type, family.documentation, {
            (s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples})
    return out


def expected(snapshot: dict) -> dict:
    """``{(sample name, labels): value}`` of a snapshot, by the documented naming."""
    def name(stat, rollup):
        base = ('brim_subserver_' if rollup else 'brim_') + sanitize(stat)
        return base + '_total' if stat in COUNTERS else base

    out = {('brim_server_start_time', ()): snapshot['start_time']}
    for subserver, entry in snapshot.items():
        if not isinstance(entry, dict):
            continue
        for key, value in entry.items():
            if isinstance(value, dict):
                label = 'daemon' if subserver == 'daemons' else 'worker'
                for stat, number in value.items():
                    out[(name(stat, False), tuple(sorted({'subserver': subserver, label: key}.items())))] = number
            else:
                out[(name(key, True), (('subserver', subserver),))] = value
    return out


def samples(families: dict) -> dict:
    return {key: value for _, _, series in families.values() for key, value in series.items()}


# ---- the whole exposition against the snapshot -----------------------------------------

def test_every_stat_of_the_snapshot_and_nothing_else():
    stats = filled()
    text = render(stats.layout, stats.cells)
    assert text.endswith('\n') and not text.endswith('\n\n')
    assert samples(parse(text)) == expected(stats.snapshot())


def test_types_and_help():
    families = parse(render(*(lambda s: (s.layout, s.cells))(filled())))
    types = {name: kind for name, (kind, _, _) in families.items()}
    # prometheus_client names a counter family without its _total.
    assert types['brim_request_count'] == types['brim_subserver_request_count'] == 'counter'
    assert types['brim_restart_count'] == 'counter'  # also where it is a daemon's (per-bucket) stat
    assert types['brim_echo_requests'] == types['brim_byte_count'] == types['brim_done'] == 'counter'
    for gauge in ('brim_server_start_time', 'brim_start_time', 'brim_pid', 'brim_last_exit', 'brim_backoff',
                  'brim_open_connections', 'brim_subserver_open_connections', 'brim_lowest', 'brim_highest',
                  'brim_subserver_lowest', 'brim_subserver_highest', 'brim_queue_depth', 'brim_iterations'):
        assert types[gauge] == 'gauge', gauge
    assert set(types.values()) == {'counter', 'gauge'}
    helps = {name: text for name, (_, text, _) in families.items()}
    assert all(helps.values())
    assert helps['brim_request_count'] == 'HTTP requests answered. Stat "request_count", per worker or daemon.'
    assert helps['brim_subserver_lowest'] == ('App stat (type min). Stat "lowest", the lowest over each '
                                              'subserver\'s workers or daemons.')
    assert helps['brim_status_404_count'].startswith('HTTP responses with status 404.')
    assert helps['brim_status_2xx_count'].startswith('HTTP responses with a 2xx status.')
    assert helps['brim_echo_requests'] == 'App stat (type sum). Stat "echo.requests", per worker or daemon.'


def test_labels_per_kind_of_bucket_and_rollups():
    stats = filled()
    got = samples(parse(render(stats.layout, stats.cells)))
    snapshot = stats.snapshot()
    assert got[('brim_pid', (('subserver', 'wsgi'), ('worker', '1')))] == snapshot['wsgi']['1']['pid']
    assert got[('brim_pid', (('daemon', 'other'), ('subserver', 'daemons')))] == snapshot['daemons']['other']['pid']
    assert got[('brim_subserver_request_count_total', (('subserver', 'wsgi'),))] == (
        snapshot['wsgi']['0']['request_count'] + snapshot['wsgi']['1']['request_count'])
    assert got[('brim_subserver_lowest', (('subserver', 'wsgi'),))] == snapshot['wsgi']['0']['lowest']
    assert got[('brim_subserver_highest', (('subserver', 'wsgi'),))] == snapshot['wsgi']['1']['highest']
    assert got[('brim_subserver_done_total', (('subserver', 'daemons'),))] == snapshot['daemons']['done']
    # Per-bucket-only stats have no roll-up; the roll-ups never share a family with the buckets.
    names = {name for name, _ in got}
    assert not {'brim_subserver_pid', 'brim_subserver_start_time', 'brim_subserver_restart_count_total'
                } & {name for name, labels in got if ('subserver', 'daemons') in labels}
    assert 'brim_subserver_pid' not in names
    assert all(len(labels) == 1 for name, labels in got if name.startswith('brim_subserver_'))
    assert all(len(labels) == 2 for name, labels in got if not name.startswith(('brim_subserver_', 'brim_server_')))


def test_values_are_read_each_time_and_rollups_from_one_copy():
    stats = filled()
    exposition = Exposition(stats.layout)
    stats.bucket('wsgi', '0').set('request_count', 2 ** 64 - 1)
    stats.bucket('wsgi', '1').set('request_count', 5)
    stats.start_time = 1763600000
    text = exposition.render(stats.cells)
    assert '\nbrim_subserver_request_count_total{subserver="wsgi"} %d\n' % (2 ** 64 + 4) in text
    assert '\nbrim_request_count_total{subserver="wsgi",worker="0"} %d\n' % (2 ** 64 - 1) in text
    assert text.startswith('# HELP brim_server_start_time When the server started serving, Unix time in seconds.\n'
                           '# TYPE brim_server_start_time gauge\nbrim_server_start_time 1763600000\n')
    assert exposition.render(list(stats.cells)) == text  # any sequence of cell values


def test_empty_layout():
    stats = SharedStats(StatsLayout([]))
    stats.start_time = 3
    assert render(stats.layout, stats.cells) == (
        '# HELP brim_server_start_time When the server started serving, Unix time in seconds.\n'
        '# TYPE brim_server_start_time gauge\nbrim_server_start_time 3\n')


def test_families_are_contiguous_with_one_help_and_type_each():
    text = render(*(lambda s: (s.layout, s.cells))(filled()))
    seen, current = [], None
    for line in text.splitlines():
        if line.startswith('# HELP '):
            current = line.split()[2]
            assert current not in seen
            seen.append(current)
        elif line.startswith('# TYPE '):
            assert line.split()[2] == current
        else:
            assert re.match(r'%s(\{.*\})? \d+$' % re.escape(current), line), line


# ---- names: types, sanitizing, collisions ----------------------------------------------

@pytest.mark.parametrize('stat, stat_type, prom_type', [
    ('request_count', 'sum', 'counter'), ('status_2xx_count', 'sum', 'counter'),
    ('status_499_count', 'sum', 'counter'), ('restart_count', 'daemon', 'counter'),
    ('recycle_count', 'sum', 'counter'), ('connection_count', 'sum', 'counter'),
    ('datagram_count', 'sum', 'counter'), ('start_time', 'worker', 'gauge'), ('pid', 'daemon', 'gauge'),
    ('last_exit', 'worker', 'gauge'), ('backoff', 'worker', 'gauge'), ('open_connections', 'sum', 'gauge'),
    ('app.hits', 'sum', 'counter'), ('app.low', 'min', 'gauge'), ('app.high', 'max', 'gauge'),
    ('app.mine', 'worker', 'gauge'), ('app.mine', 'daemon', 'gauge'), ('status_9xx_count', 'worker', 'gauge'),
])
def test_metric_type(stat, stat_type, prom_type):
    assert metric_type(stat, stat_type) == prom_type
    assert (builtin(stat) is not None) == (not stat.startswith(('app.', 'status_9')))


@pytest.mark.parametrize('stat, name', [
    ('request_count', 'request_count'), ('auth.requests', 'auth_requests'), ('cacheHits', 'cache_hits'),
    ('HTTPErrors', 'httperrors'), ('a-b c/d:e', 'a_b_c_d_e'), ('9lives', '9lives'), ('caf\u00e9', 'caf_'),
    ('x2Y', 'x2_y'), ('', ''),
])
def test_sanitize(stat, name):
    assert sanitize(stat) == name
    assert re.fullmatch(r'[a-zA-Z_:][a-zA-Z0-9_:]*', 'brim_' + name)


def families_of(layout_input) -> dict:
    exposition = Exposition(StatsLayout(layout_input))
    return {(f.stat, f.type, f.rollup): f.name for f in exposition.families[1:]}


def test_collision_after_sanitizing_exact_name_wins_whatever_the_order():
    stats = [('auth.requests', 'sum'), ('auth_requests', 'sum')]
    for layout_input in ([('s', [('0', stats)])], [('s', [('0', stats[::-1])])]):
        names = families_of(layout_input)
        assert names[('auth_requests', 'counter', False)] == 'brim_auth_requests_total'
        assert re.fullmatch(r'brim_auth_requests_[0-9a-f]{8}_total', names[('auth.requests', 'counter', False)])
        assert names[('auth_requests', 'counter', True)] == 'brim_subserver_auth_requests_total'
        assert re.fullmatch(r'brim_subserver_auth_requests_[0-9a-f]{8}_total',
                            names[('auth.requests', 'counter', True)])
    assert families_of([('s', [('0', stats)])]) == families_of([('s', [('0', stats[::-1])])])


def test_collision_of_types_and_prefixes():
    names = families_of([
        ('a', [('0', [('x', 'sum'), ('subserver_x', 'sum'), ('foo', 'sum'), ('foo_total', 'max')])]),
        ('b', [('0', [('x', 'max')])]),
    ])
    assert names[('x', 'counter', False)] == 'brim_x_total'
    assert re.fullmatch(r'brim_x_[0-9a-f]{8}', names[('x', 'gauge', False)])  # a max stat elsewhere
    assert names[('subserver_x', 'counter', False)] == 'brim_subserver_x_total'  # buckets first
    assert re.fullmatch(r'brim_subserver_x_[0-9a-f]{8}_total', names[('x', 'counter', True)])
    assert names[('foo', 'counter', False)] == 'brim_foo_total'
    assert re.fullmatch(r'brim_foo_total_[0-9a-f]{8}', names[('foo_total', 'gauge', False)])
    # Unique also without _total (as OpenMetrics and prometheus_client see them).
    bases = [re.sub('_total$', '', name) for name in names.values()]
    assert len(bases) == len(set(bases))


def test_server_start_time_name_is_reserved():
    names = families_of([('s', [('0', [('server_start_time', 'worker')])])])
    assert re.fullmatch(r'brim_server_start_time_[0-9a-f]{8}', names[('server_start_time', 'gauge', False)])


def test_colliding_layout_parses_and_matches_values():
    layout_input = [('a', [('0', [('auth.requests', 'sum'), ('auth_requests', 'sum'), ('x', 'sum')]),
                           ('1', [('auth.requests', 'sum'), ('x', 'sum')])]),
                    ('b', [('0', [('x', 'max'), ('authRequests', 'worker')])])]
    stats = filled(layout_input)
    families = parse(render(stats.layout, stats.cells))
    assert len(samples(families)) == 1 + 7 + 3 + 1  # server, buckets, a's roll-ups, b's
    snapshot = stats.snapshot()
    by_help = {text.split('"')[1] + (' rollup' if 'over each' in text else '') + ' ' + kind: series
               for name, (kind, text, series) in families.items() if name != 'brim_server_start_time'}
    assert sorted(by_help['auth.requests counter'].values()) == sorted(
        [snapshot['a']['0']['auth.requests'], snapshot['a']['1']['auth.requests']])
    assert list(by_help['x rollup counter'].values()) == [snapshot['a']['x']]
    assert list(by_help['x rollup gauge'].values()) == [snapshot['b']['x']]
    assert list(by_help['authRequests gauge'].values()) == [snapshot['b']['0']['authRequests']]


# ---- escaping ---------------------------------------------------------------------------

def test_escaping_round_trips_through_the_parser():
    odd = 'a "quoted" \\ back\nslash'
    stats = filled([('wsgi#x "y"', [('0', [('start_time', 'worker')])]),
                    ('daemons', [(odd, [('start_time', 'daemon'), ('we\\ird\n"stat"', 'daemon')])])])
    text = render(stats.layout, stats.cells)
    assert 'daemon="a \\"quoted\\" \\\\ back\\nslash"' in text
    assert '\\"stat\\"' not in text.split('# TYPE')[0]  # HELP escapes only \ and line feed
    assert 'Stat "we\\\\ird\\n"stat"", per worker or daemon.' in text
    families = parse(text)
    got = samples(families)
    assert got[('brim_start_time', (('daemon', odd), ('subserver', 'daemons')))] == (
        stats.snapshot()['daemons'][odd]['start_time'])
    assert got[('brim_start_time', (('subserver', 'wsgi#x "y"'), ('worker', '0')))] == 1 * 7 + 1
    weird = [text for name, (_, text, _) in families.items() if name.startswith('brim_we_ird_')]
    assert weird == ['App stat (type daemon). Stat "we\\ird\n"stat"", per worker or daemon.']


def test_escape_functions():
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert escape_help('a\\b"c\nd') == 'a\\\\b"c\\nd'


# ---- what promtool's lint asks of names ------------------------------------------------

UNIT_ABBREVIATIONS = ('s', 'ms', 'us', 'ns', 'sec', 'b', 'kb', 'mb', 'gb', 'tb', 'pb', 'm', 'h', 'd')


def test_builtin_names_pass_promlint_rules():
    """The rules of promtool check metrics (client_golang's promlint), for every built-in and sample stat."""
    stats = filled()
    for name, (kind, help_text, _) in parse(render(stats.layout, stats.cells)).items():
        full = name + '_total' if kind == 'counter' else name
        assert help_text
        assert ':' not in full and not re.search('[a-z][A-Z]', full)
        assert full.endswith('_total') == (kind == 'counter'), full
        assert not full.endswith(('_count', '_sum', '_bucket')), full
        assert not any(('_%s_' % t) in full or full.endswith('_' + t)
                       for t in ('counter', 'gauge', 'summary', 'histogram')), full
        assert not any(('_%s_' % a) in full or full.endswith('_' + a) for a in UNIT_ABBREVIATIONS), full


def test_promtool_check_metrics():
    promtool = shutil.which('promtool')
    if not promtool:
        pytest.skip('promtool is not installed (Debian: apt-get install prometheus)')
    stats = filled([(name, buckets) for name, buckets in LAYOUT])
    text = render(stats.layout, stats.cells)
    result = subprocess.run([promtool, 'check', 'metrics'], input=text.encode(), capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


# ---- the stats app ----------------------------------------------------------------------

class _Server:
    def __init__(self, stats):
        self.stats = stats


class _Subserver:
    def __init__(self, stats):
        self.server = _Server(stats)


def next_app(env, start_response):
    start_response('404 Not Found', [('Content-Length', '4')])
    return [b'next']


def call(app, path, method='GET', accept=None, query=''):
    env = {'PATH_INFO': path, 'REQUEST_METHOD': method, 'QUERY_STRING': query, 'brim': app.subserver,
           'brim.json_dumps': json.dumps}
    if accept is not None:
        env['HTTP_ACCEPT'] = accept
    answer = {}

    def start_response(status, headers):
        answer['status'], answer['headers'] = status, dict(headers)

    body = b''.join(app(env, start_response))
    return answer['status'], answer['headers'], body


def make_app(**options):
    conf = Conf({'stats': {k: v for k, v in options.items()}})
    app = WSGIStats('stats', WSGIStats.parse_conf('stats', conf), next_app)
    app.subserver = _Subserver(filled())  # type: ignore[attr-defined]
    return app


def test_app_defaults():
    assert WSGIStats.parse_conf('stats', Conf({})) == {'path': '/stats', 'metrics_path': '/metrics'}


def test_app_metrics_path():
    app = make_app()
    stats = app.subserver.server.stats
    status, headers, body = call(app, '/metrics')
    assert status == '200 OK'
    assert headers['Content-Type'] == CONTENT_TYPE == 'text/plain; version=0.0.4; charset=utf-8'
    assert headers['Cache-Control'] == 'no-store' and int(headers['Content-Length']) == len(body)
    assert body.decode() == render(stats.layout, stats.cells)
    stats.bucket('wsgi', '0').incr('request_count')
    assert call(app, '/metrics')[2].decode() == render(stats.layout, stats.cells)  # live, not cached
    status, headers, body = call(app, '/metrics', 'HEAD')
    assert (status, body) == ('200 OK', b'') and int(headers['Content-Length']) > 0
    assert call(app, '/metrics', 'POST')[0] == '501 Not Implemented'
    assert call(app, '/metrics', accept='application/json')[1]['Content-Type'] == CONTENT_TYPE


def test_app_other_and_empty_metrics_path():
    app = make_app(metrics_path='/prom')
    assert call(app, '/prom')[1]['Content-Type'] == CONTENT_TYPE
    assert call(app, '/metrics')[2] == b'next'
    app = make_app(metrics_path='')
    assert call(app, '/metrics')[2] == b'next'
    assert call(app, '')[2] == b'next'
    assert call(app, '/stats', accept='text/plain')[1]['Content-Type'] == CONTENT_TYPE


@pytest.mark.parametrize('accept, text', [
    (None, False), ('', False), ('*/*', False), ('application/json', False), ('text/plain', True),
    ('text/plain; version=0.0.4', True), ('text/*', True), ('TEXT/PLAIN', True),
    ('application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,'
     'text/plain;version=0.0.4;q=0.5,*/*;q=0.1', True),
    ('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', False),
    ('text/plain;q=0.5, application/json', False), ('text/plain, application/json', False),
    ('application/json;q=0.4, text/plain;q=0.5', True), ('text/plain;q=0, */*', False),
    ('application/*;q=0.1, text/plain;q=0.2', True), ('text/plain;q=bad', False),
    ('application/openmetrics-text', False),
])
def test_app_content_negotiation(accept, text):
    app = make_app()
    status, headers, body = call(app, '/stats', accept=accept)
    assert status == '200 OK' and headers['Vary'] == 'Accept'
    if text:
        assert headers['Content-Type'] == CONTENT_TYPE
        assert body.startswith(b'# HELP brim_server_start_time ')
    else:
        assert headers['Content-Type'] == 'application/json'
        assert json.loads(body) == app.subserver.server.stats.snapshot()
    assert prefers_text(accept or '') == text


def test_app_jsonp_stays_json():
    app = make_app()
    status, headers, body = call(app, '/stats', accept='text/plain', query='callback=cb')
    assert headers['Content-Type'] == 'application/javascript' and body.startswith(b'cb({')
