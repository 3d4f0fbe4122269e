"""A simple WSGI app that echoes the request body: a template for your own.

Copy this module to start a WSGI app. What it shows: declaring options
(``OPTIONS``, parsed once in ``parse_conf``), declaring stats
(``stats_conf``), matching a path and passing everything else to
``next_app``, and reading ``wsgi.input`` with a cap.

Configuration::

    [wsgi]
    apps = echo

    [echo]
    call = brim.wsgi_echo.WSGIEcho
    # path = /echo
    #   The request path to match and serve; other paths go to the next app.
    # max_echo = 65536
    #   The most bytes to echo; more are read and ignored.

Stats (``n`` is the app's section name):

============== ====== ==========================================
Name           Type   Description
============== ====== ==========================================
n.requests     sum    Requests this app answered.
start_time     worker When the worker started (set by brimd).
============== ====== ==========================================
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from brim.options import app_option, parse_section, to_nonnegative_int, to_str


class WSGIEcho:
    """Echoes the request body of requests to ``path``.

    Args:
        name: The app's section name (also its stats prefix).
        parsed_conf: What :meth:`parse_conf` returned.
        next_app: The next WSGI app in the pipeline.
    """

    #: Options of this app's section, declared once; parse_conf, brimd check
    #: and brimd.conf-sample all use this.
    #:
    #: :meta hide-value:
    OPTIONS = (
        app_option('path', to_str, '/echo', 'The request path to match and serve; other paths go to the next app.'),
        app_option('max_echo', to_nonnegative_int, 65536, 'The most bytes to echo; more are read and ignored.',
                   units='bytes'),
    )

    def __init__(self, name: str, parsed_conf: dict, next_app: Callable[..., Iterable[bytes]]) -> None:
        self.name = name
        self.next_app = next_app
        self.path = parsed_conf['path']
        self.max_echo = parsed_conf['max_echo']
        self.stat_requests = '%s.requests' % name

    def __call__(self, env: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Echo the body if ``PATH_INFO`` is ``path``; else call ``next_app`` (PEP 3333)."""
        if env['PATH_INFO'] != self.path:
            return self.next_app(env, start_response)
        env['brim.stats'].incr(self.stat_requests)
        body = []
        length = 0
        wsgi_input = env['wsgi.input']
        while True:
            chunk = wsgi_input.read(65536)
            if not chunk:
                break
            if length < self.max_echo:
                body.append(chunk[:self.max_echo - length])
            length += len(chunk)
        data = b''.join(body)
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', str(len(data)))])
        return [data]

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this app's settings from the whole conf (read once, at load).

        Raises:
            brim.errors.ConfError: for a value that cannot be converted.
        """
        return parse_section(name, conf, cls.OPTIONS)

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict) -> list[tuple[str, str]]:
        """Return the stats this app keeps: ``[(stat_name, stat_type)]``."""
        return [('%s.requests' % name, 'sum')]
