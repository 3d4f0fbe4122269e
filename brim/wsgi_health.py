"""Health checks for load balancers and Kubernetes probes.

``path`` (default ``/healthz``) says whether this host should be sent
traffic: ``200 OK`` while every worker of every WSGI, TCP and UDP subserver
is up, ``503 Service Unavailable`` otherwise, and always 503 from a worker
that is draining. ``live_path`` (default ``/livez``) says only that a
worker answers: 200 whenever one does.

A worker is up when the shared stats say so: its ``pid`` is set (its
supervisor writes 0 while none runs: between a death and the restart, at
least ``respawn_interval``, 1 s; through a crash loop's backoff; for a
worker that could not start) and its ``start_time`` is set (it got as far
as serving). Any worker answers for the whole host, reading two shared cells
per worker without locks, so a probe costs next to nothing. Under ``brimd
no-daemon`` (one process, no supervisor, every ``pid`` 0) a worker is up once
its ``start_time`` is set.

Daemons are reported, not counted: a daemon that is down is no reason to
stop sending requests to the host's workers (``/stats``, ``brimd status``
and the log say what happened to it).

What a balancer sees when brimd stops or restarts:

- ``brimd shutdown`` (SIGHUP; ``systemctl stop``): the listening sockets
  close at once, so a new connection (a probe, or a request) is refused;
  a request arriving on a connection that was already open gets this app's
  ``503`` with ``Connection: close`` (every response from a draining worker
  closes its connection). Both mean "stop sending here"; requests in
  progress finish, within ``graceful_timeout``.
- ``brimd restart``: the sockets never close. New connections, probes
  included, reach the new server's workers, which answer 200 once they
  serve; a request on a keep-alive connection the old server still holds
  gets 503 and ``Connection: close``, so a balancer that pools connections
  (HAProxy's ``http-reuse``, nginx's upstream ``keepalive``) opens a new one,
  to the new server. A balancer probing over a new connection each time (as
  HAProxy's ``option httpchk`` and Kubernetes's kubelet do) never sees the
  old server's 503: the host stays in service throughout.
- ``brimd stop`` (SIGTERM): everything ends at once; open connections are
  reset, new ones refused.

The body is ``text/plain``: a first line ``ok``, ``down`` (a worker is not
up) or ``draining``, then one line per subserver, ``<name> <up>/<workers>``
(``daemons 1/1``), for people reading it with curl. Every answer has
``Cache-Control: no-store``. GET and HEAD only; other methods get 501.

Configuration::

    [wsgi]
    apps = health echo stats

    [health]
    call = brim.wsgi_health.WSGIHealth
    # path = /healthz
    #   Readiness: 200 while every worker of every subserver is up; 503 while
    #   one is not, and from a worker that is draining.
    # live_path = /livez
    #   Liveness: 200 whenever a worker answers; empty for none.

Put it first in ``apps =`` so that no app before it (authentication, say)
answers the probes instead.

Stats: none of its own.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from brim.options import app_option, parse_section, to_str
from brim.stats import SharedStats, StatsLayout

#: One subserver's health: (name, workers up, workers, daemons?).
SubserverHealth = tuple[str, int, int, bool]


class HealthPlan:
    """Where the ``pid`` and ``start_time`` of every bucket live in one
    :class:`~brim.stats.StatsLayout` (worked out once per layout).

    Args:
        layout: The server's stats layout.
    """

    def __init__(self, layout: StatsLayout) -> None:
        self.layout = layout
        self.subservers: list[tuple[str, bool, list[tuple[int, int]]]] = []
        for subserver, buckets in layout.buckets.items():
            cells = []
            for bucket in buckets:
                index = layout.index[(subserver, bucket)]
                if 'pid' in index and 'start_time' in index:
                    cells.append((index['pid'], index['start_time']))
            daemons = layout.types[subserver].get('start_time') == 'daemon'
            self.subservers.append((subserver, daemons, cells))

    def assess(self, stats: SharedStats, supervised: bool = True) -> tuple[bool, list[SubserverHealth]]:
        """Count the workers up in each subserver.

        Args:
            stats: The shared stats (of :attr:`layout`).
            supervised: False under ``brimd no-daemon``, where no supervisor
                writes ``pid``: then ``start_time`` alone says a worker is up.

        Returns:
            ``(healthy, [(subserver, up, workers, daemons)])``: healthy when
            every worker of every subserver other than daemons is up.
        """
        values = stats.cells
        healthy = True
        report: list[SubserverHealth] = []
        for subserver, daemons, cells in self.subservers:
            up = 0
            for pid_cell, start_cell in cells:
                if values[start_cell] and (values[pid_cell] or not supervised):
                    up += 1
            if up < len(cells) and not daemons:
                healthy = False
            report.append((subserver, up, len(cells), daemons))
        return healthy, report


class WSGIHealth:
    """Answers ``path`` with the host's readiness and ``live_path`` with 200;
    passes every other request to the next app.

    Args:
        name: The app's section name.
        parsed_conf: What :meth:`parse_conf` returned.
        next_app: The next WSGI app in the pipeline.
    """

    #: This app's options, declared once; parse_conf, brimd check and
    #: brimd.conf-sample all use them.
    #:
    #: :meta hide-value:
    OPTIONS = (
        app_option('path', to_str, '/healthz', 'Readiness, for load balancers: 200 while every worker of every '
                   'subserver is up (daemons are reported, not counted); 503 while one is not, and from a '
                   'worker that is draining (graceful shutdown or restart).'),
        app_option('live_path', to_str, '/livez', 'Liveness: 200 whenever a worker answers; empty for none.'),
    )

    def __init__(self, name: str, parsed_conf: dict, next_app: Callable[..., Iterable[bytes]]) -> None:
        self.name = name
        self.next_app = next_app
        self.path = parsed_conf['path']
        self.live_path = parsed_conf['live_path']
        self._plan: Optional[HealthPlan] = None

    def __call__(self, env: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Answer a probe (PEP 3333), or pass the request on."""
        path = env['PATH_INFO']
        if path != self.path and (not self.live_path or path != self.live_path):
            return self.next_app(env, start_response)
        method = env['REQUEST_METHOD']
        if method not in ('GET', 'HEAD'):
            return _answer(start_response, '501 Not Implemented', b'501 Not Implemented\n', method)
        if path != self.path:
            return _answer(start_response, '200 OK', b'ok\n', method)
        sub = env['brim']
        stats = sub.server.stats
        plan = self._plan
        if plan is None or plan.layout is not stats.layout:
            plan = self._plan = HealthPlan(stats.layout)
        own = env.get('brim.stats')
        supervised = own is None or bool(own.get('pid'))
        healthy, report = plan.assess(stats, supervised)
        draining = bool(getattr(sub, 'draining', False))
        word = 'draining' if draining else 'ok' if healthy else 'down'
        body = ''.join(['%s\n' % word] + ['%s %d/%d\n' % (name, up, total) for name, up, total, _ in report])
        status = '200 OK' if word == 'ok' else '503 Service Unavailable'
        return _answer(start_response, status, body.encode('utf-8'), method)

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this app's settings.

        Raises:
            brim.errors.ConfError: for a value that cannot be converted.
        """
        return parse_section(name, conf, cls.OPTIONS)


def _answer(start_response: Callable[..., Any], status: str, body: bytes, method: str) -> list[bytes]:
    start_response(status, [('Content-Type', 'text/plain; charset=utf-8'), ('Content-Length', str(len(body))),
                            ('Cache-Control', 'no-store')])
    return [] if method == 'HEAD' else [body]
