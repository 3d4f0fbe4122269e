"""Serves every live brimd counter as JSON (SPEC §5).

Any worker answers for the whole server: the counters of every subserver,
rolled up and per worker or daemon, read from shared memory without locks.
``?jsonp=NAME`` or ``?callback=NAME`` wraps the JSON as JavaScript
``NAME(...);`` (NAME limited to letters, digits, ``_``, ``$`` and ``.``).
GET and HEAD only; other methods get 501 (RFC 9110 §15.6.2).

Configuration::

    [stats]
    call = brim.wsgi_stats.WSGIStats
    # path = /stats
    #   The request path to match and serve; other paths go to the next app.
    #   A hard-to-guess path is a basic access restriction.

Stats: none of its own.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from brim.options import app_option, parse_section, to_str

_CALLBACK = re.compile(r'^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$')


class WSGIStats:
    """Answers requests to ``path`` with the server's stats as JSON.

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
    )

    def __init__(self, name: str, parsed_conf: dict, next_app: Callable[..., Iterable[bytes]]) -> None:
        self.name = name
        self.next_app = next_app
        self.path = parsed_conf['path']

    def __call__(self, env: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve the stats JSON (PEP 3333), or pass the request on."""
        if env['PATH_INFO'] != self.path:
            return self.next_app(env, start_response)
        if env['REQUEST_METHOD'] not in ('GET', 'HEAD'):
            return _plain(start_response, '501 Not Implemented', b'501 Not Implemented\n')
        query = parse_qs(env.get('QUERY_STRING', ''))
        callback = (query.get('jsonp') or query.get('callback') or [''])[0]
        if callback and not _CALLBACK.match(callback):
            return _plain(start_response, '400 Bad Request', b'400 Bad Request: invalid jsonp/callback name\n')
        snapshot = env['brim'].server.stats.snapshot()
        body = env['brim.json_dumps'](snapshot).encode('utf-8')
        content_type = 'application/json'
        if callback:
            body = b'%s(%s);' % (callback.encode('ascii'), body)
            content_type = 'application/javascript'
        start_response('200 OK', [('Content-Type', content_type), ('Content-Length', str(len(body))),
                                  ('Cache-Control', 'no-store')])
        return [] if env['REQUEST_METHOD'] == 'HEAD' else [body]

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this app's settings.

        Raises:
            brim.errors.ConfError: for a value that cannot be converted.
        """
        return parse_section(name, conf, cls.OPTIONS)


def _plain(start_response: Callable[..., Any], status: str, body: bytes) -> list[bytes]:
    start_response(status, [('Content-Type', 'text/plain; charset=utf-8'), ('Content-Length', str(len(body)))])
    return [body]
