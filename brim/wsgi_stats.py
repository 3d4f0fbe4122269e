"""Serves every live brimd counter as JSON (SPEC §5), and in the Prometheus
text format.

Any worker answers for the whole server: the counters of every subserver,
rolled up and per worker or daemon, read from shared memory without locks.
``?jsonp=NAME`` or ``?callback=NAME`` wraps the JSON as JavaScript
``NAME(...);`` (NAME limited to letters, digits, ``_``, ``$`` and ``.``).
GET and HEAD only; other methods get 501 (RFC 9110 §15.6.2).

Prometheus: ``metrics_path`` (default ``/metrics``) serves the same
counters in the text exposition format 0.0.4 (:mod:`brim.metrics` says how
stats become metrics). So does ``path`` for a request whose ``Accept``
header ranks ``text/plain`` above ``application/json`` (as Prometheus's
scraper does, and ``Accept: text/plain``); JSON stays the default, for
``*/*`` and for no ``Accept`` at all. OpenMetrics is not offered.

Configuration::

    [stats]
    call = brim.wsgi_stats.WSGIStats
    # path = /stats
    #   The request path to match and serve; other paths go to the next app.
    #   A hard-to-guess path is a basic access restriction.
    # metrics_path = /metrics
    #   The request path serving the Prometheus text format; empty for none.

Stats: none of its own.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qs

from brim.metrics import CONTENT_TYPE, Exposition
from brim.options import app_option, parse_section, to_str

_CALLBACK = re.compile(r'^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$')


class WSGIStats:
    """Answers requests to ``path`` with the server's stats as JSON, and to
    ``metrics_path`` in the Prometheus text format.

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
        app_option('path', to_str, '/stats', 'The request path to match and serve; other paths go to the '
                   'next app. A hard-to-guess path is a basic access restriction.'),
        app_option('metrics_path', to_str, '/metrics', 'The request path serving the stats in the Prometheus '
                   'text format (0.0.4); empty for none. The path above serves it too to a client whose '
                   'Accept header prefers text/plain to application/json.'),
    )

    def __init__(self, name: str, parsed_conf: dict, next_app: Callable[..., Iterable[bytes]]) -> None:
        self.name = name
        self.next_app = next_app
        self.path = parsed_conf['path']
        self.metrics_path = parsed_conf['metrics_path']
        self._exposition: Optional[Exposition] = None

    def __call__(self, env: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve the stats JSON or metrics text (PEP 3333), or pass the request on."""
        path = env['PATH_INFO']
        if path != self.path and (not self.metrics_path or path != self.metrics_path):
            return self.next_app(env, start_response)
        if env['REQUEST_METHOD'] not in ('GET', 'HEAD'):
            return _plain(start_response, '501 Not Implemented', b'501 Not Implemented\n')
        stats = env['brim'].server.stats
        headers = [('Cache-Control', 'no-store')]
        if path == self.path:
            query = parse_qs(env.get('QUERY_STRING', ''))
            callback = (query.get('jsonp') or query.get('callback') or [''])[0]
            if callback and not _CALLBACK.match(callback):
                return _plain(start_response, '400 Bad Request', b'400 Bad Request: invalid jsonp/callback name\n')
            headers.append(('Vary', 'Accept'))
            text = not callback and prefers_text(env.get('HTTP_ACCEPT', ''))
        else:
            callback, text = '', True
        if text:
            exposition = self._exposition
            if exposition is None or exposition.layout is not stats.layout:
                exposition = self._exposition = Exposition(stats.layout)
            body = exposition.render(stats.cells).encode('utf-8')
            content_type = CONTENT_TYPE
        else:
            body = env['brim.json_dumps'](stats.snapshot()).encode('utf-8')
            content_type = 'application/json'
            if callback:
                body = b'%s(%s);' % (callback.encode('ascii'), body)
                content_type = 'application/javascript'
        start_response('200 OK', [('Content-Type', content_type), ('Content-Length', str(len(body)))] + headers)
        return [] if env['REQUEST_METHOD'] == 'HEAD' else [body]

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this app's settings.

        Raises:
            brim.errors.ConfError: for a value that cannot be converted.
        """
        return parse_section(name, conf, cls.OPTIONS)


def prefers_text(accept: str) -> bool:
    """True if an ``Accept`` header value ranks ``text/plain`` above
    ``application/json`` (RFC 9110 §12.5.1: the most specific matching
    range gives a type its quality); a tie, or no header, means JSON."""
    ranges = []
    for part in accept.split(','):
        media, _, params = part.partition(';')
        quality = 1.0
        for param in params.split(';'):
            key, _, value = param.partition('=')
            if key.strip().lower() == 'q':
                try:
                    quality = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        ranges.append((media.strip().lower(), quality))

    def quality_of(media_type: str) -> float:
        best, specificity = 0.0, -1
        wildcard = media_type.split('/')[0] + '/*'
        for media, quality in ranges:
            level = 2 if media == media_type else 1 if media == wildcard else 0 if media == '*/*' else -1
            if level >= 0 and (level > specificity or (level == specificity and quality > best)):
                best, specificity = quality, level
        return best

    return quality_of('text/plain') > quality_of('application/json')


def _plain(start_response: Callable[..., Any], status: str, body: bytes) -> list[bytes]:
    start_response(status, [('Content-Type', 'text/plain; charset=utf-8'), ('Content-Length', str(len(body)))])
    return [body]
