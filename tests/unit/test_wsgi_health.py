"""brim.wsgi_health: the decision, from hand-made shared stats, and the answers."""

from __future__ import annotations

from types import SimpleNamespace

from brim.stats import SharedStats, StatsLayout
from brim.wsgi_health import HealthPlan, WSGIHealth

WORKER = [('start_time', 'worker'), ('pid', 'worker'), ('restart_count', 'sum')]
DAEMON = [('start_time', 'daemon'), ('pid', 'daemon')]


def shared(up: dict) -> SharedStats:
    """wsgi (2 workers), tcp (1), daemons (1); ``up`` maps (subserver,
    bucket) to (pid, start_time), zeros for the rest."""
    stats = SharedStats(StatsLayout([
        ('wsgi', [('0', WORKER), ('1', WORKER)]), ('tcp', [('0', WORKER)]), ('daemons', [('sample', DAEMON)])]))
    for (sub, bucket), (pid, start) in up.items():
        cells = stats.bucket(sub, bucket)
        cells.set('pid', pid)
        cells.set('start_time', start)
    return stats


ALL_UP = {('wsgi', '0'): (11, 1), ('wsgi', '1'): (12, 1), ('tcp', '0'): (13, 1), ('daemons', 'sample'): (14, 1)}


def test_every_worker_up_is_healthy():
    stats = shared(ALL_UP)
    assert HealthPlan(stats.layout).assess(stats) == (
        True, [('wsgi', 2, 2, False), ('tcp', 1, 1, False), ('daemons', 1, 1, True)])


def test_a_worker_with_pid_0_is_down():
    stats = shared({**ALL_UP, ('tcp', '0'): (0, 1)})  # dead, not yet restarted
    assert HealthPlan(stats.layout).assess(stats) == (
        False, [('wsgi', 2, 2, False), ('tcp', 0, 1, False), ('daemons', 1, 1, True)])


def test_a_worker_not_yet_serving_is_down():
    stats = shared({**ALL_UP, ('wsgi', '1'): (12, 0)})  # forked, no start_time yet
    healthy, report = HealthPlan(stats.layout).assess(stats)
    assert not healthy and report[0] == ('wsgi', 1, 2, False)


def test_a_daemon_down_is_reported_not_counted():
    stats = shared({**ALL_UP, ('daemons', 'sample'): (0, 1)})
    assert HealthPlan(stats.layout).assess(stats) == (
        True, [('wsgi', 2, 2, False), ('tcp', 1, 1, False), ('daemons', 0, 1, True)])


def test_unsupervised_needs_start_time_only():
    stats = shared({('wsgi', '0'): (0, 1), ('wsgi', '1'): (0, 1), ('tcp', '0'): (0, 1)})
    assert HealthPlan(stats.layout).assess(stats, supervised=False)[0]
    assert not HealthPlan(stats.layout).assess(stats, supervised=True)[0]


def call(app: WSGIHealth, path: str, stats: SharedStats, method: str = 'GET', draining: bool = False,
         own_pid: int = 11) -> tuple[str, dict, bytes]:
    seen: list = []
    sub = SimpleNamespace(server=SimpleNamespace(stats=stats), draining=draining)
    env = {'PATH_INFO': path, 'REQUEST_METHOD': method, 'brim': sub,
           'brim.stats': SimpleNamespace(get=lambda name: own_pid)}
    body = b''.join(app(env, lambda status, headers: seen.append((status, dict(headers)))))
    return seen[0][0], seen[0][1], body


def next_app(env, start_response):
    start_response('404 Not Found', [])
    return [b'next']


def make(**conf) -> WSGIHealth:
    return WSGIHealth('health', dict({'path': '/healthz', 'live_path': '/livez'}, **conf), next_app)


def test_answers():
    app = make()
    stats = shared(ALL_UP)
    status, headers, body = call(app, '/healthz', stats)
    assert (status, body) == ('200 OK', b'ok\nwsgi 2/2\ntcp 1/1\ndaemons 1/1\n')
    assert headers == {'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': str(len(body)),
                       'Cache-Control': 'no-store'}
    status, headers, body = call(app, '/healthz', stats, 'HEAD')
    assert (status, body, headers['Content-Length']) == ('200 OK', b'', '32')
    assert call(app, '/healthz', stats, 'POST')[0] == '501 Not Implemented'
    assert call(app, '/other', stats)[::2] == ('404 Not Found', b'next')
    assert call(app, '/livez', stats)[::2] == ('200 OK', b'ok\n')
    assert call(make(live_path=''), '/livez', stats)[::2] == ('404 Not Found', b'next')


def test_503_when_down_or_draining():
    app = make()
    status, _, body = call(app, '/healthz', shared({**ALL_UP, ('wsgi', '0'): (0, 1)}))
    assert (status, body.split(b'\n')[0]) == ('503 Service Unavailable', b'down')
    status, _, body = call(app, '/healthz', shared(ALL_UP), draining=True)
    assert (status, body.split(b'\n')[0]) == ('503 Service Unavailable', b'draining')
    # Liveness does not care.
    assert call(app, '/livez', shared({}), draining=True)[0] == '200 OK'


def test_foreground_no_supervisor():
    # brimd no-daemon: the worker's own pid cell is 0, so pids are not looked at.
    stats = shared({('wsgi', '0'): (0, 1), ('wsgi', '1'): (0, 1), ('tcp', '0'): (0, 1)})
    assert call(make(), '/healthz', stats, own_pid=0)[0] == '200 OK'


def test_new_layout_new_plan():
    app = make()
    assert call(app, '/healthz', shared(ALL_UP))[0] == '200 OK'
    assert call(app, '/healthz', shared({}))[0] == '503 Service Unavailable'
