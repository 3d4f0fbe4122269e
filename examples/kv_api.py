"""A JSON HTTP API for the key-value store.

Requests under ``path`` (default ``/kv/``); everything else goes to the next
app. Bodies are JSON (``application/json``, UTF-8):

========================= ======================================================
Request                   Answer
========================= ======================================================
``GET /kv/``              200 ``{"keys": ["a", "b"]}`` (sorted)
``GET /kv/<key>``         200 ``{"key": "a", "value": "text"}``, or 404
``PUT /kv/<key>``         body ``{"value": "text"}``: 201 if the key is new, 200 if
                          it was replaced; both ``{"key": "a", "value": "text"}``
``DELETE /kv/<key>``      204 (no body), or 404
others                    405 with ``Allow`` (RFC 9110 section 15.5.6)
========================= ======================================================

``HEAD`` works wherever ``GET`` does (same headers, no body). Errors are
``{"error": "reason"}``: 400 for a bad key, a body that is not JSON or has
no string ``value``, or a value with a line break; 404 for a key not set;
413 for a body over ``max_body`` bytes. A key is 1-200 of ``A-Z a-z 0-9 _ .
-``, not starting with ``.`` (see :mod:`examples.store`).

Configuration::

    [wsgi]
    apps = api

    [api]
    call = examples.kv_api.KVAPI
    data_dir = /tmp/brim-kv/data
    # path = /kv/
    # max_body = 65536

Stats (``n`` is the app's section name):

============== ====== ==========================================
Name           Type   Description
============== ====== ==========================================
n.requests     sum    Requests this app answered.
============== ====== ==========================================
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from brim.http import HTTPResponse
from brim.options import app_option, parse_section, to_positive_int, to_str

from examples.store import DATA_DIR, Store, check_key, check_value, require_data_dir

#: Methods allowed on the collection (``/kv/``) and on one key (``/kv/<key>``).
ALLOW_COLLECTION = 'GET, HEAD'
ALLOW_KEY = 'GET, HEAD, PUT, DELETE'


class KVAPI:
    """Serves the store as JSON under ``path``.

    Args:
        name: The app's section name (also its stats prefix).
        parsed_conf: What :meth:`parse_conf` returned.
        next_app: The next WSGI app in the pipeline.
    """

    OPTIONS = (
        DATA_DIR,
        app_option('path', to_str, '/kv/', 'The path prefix to serve (ending in /); other paths go to the next app.'),
        app_option('max_body', to_positive_int, 65536, 'The largest PUT body accepted; larger ones get 413.',
                   units='bytes'),
    )

    def __init__(self, name: str, parsed_conf: dict, next_app: Callable[..., Iterable[bytes]]) -> None:
        self.name = name
        self.next_app = next_app
        self.store = Store(parsed_conf['data_dir'])
        self.path = parsed_conf['path']
        self.max_body = parsed_conf['max_body']
        self.stat_requests = '%s.requests' % name

    def __call__(self, env: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Answer a request under ``path``; pass any other to ``next_app`` (PEP 3333)."""
        if not env['PATH_INFO'].startswith(self.path):
            return self.next_app(env, start_response)
        env['brim.stats'].incr(self.stat_requests)
        try:
            response = self.respond(env, env['PATH_INFO'][len(self.path):])
        except HTTPResponse as error:  # an error answer, raised below
            response = error
        # A brim.http response is a WSGI app; for HEAD it sends no body.
        return response(env, start_response)

    def respond(self, env: dict, key: str) -> HTTPResponse:
        """Return the answer to a request for ``key`` ('' for the collection).

        Raises:
            HTTPResponse: an error answer (400, 404, 405 or 413).
        """
        method = 'GET' if env['REQUEST_METHOD'] == 'HEAD' else env['REQUEST_METHOD']
        if not key:
            if method != 'GET':
                raise json_response(env, 405, {'error': 'method not allowed'}, [('Allow', ALLOW_COLLECTION)])
            return json_response(env, 200, {'keys': self.store.keys()})
        try:
            check_key(key)
        except ValueError as err:
            raise json_response(env, 400, {'error': str(err)}) from None
        if method == 'GET':
            value = self.store.get(key)
            if value is None:
                raise json_response(env, 404, {'error': 'not found'})
            return json_response(env, 200, {'key': key, 'value': value})
        if method == 'PUT':
            value = self.read_value(env)
            created = self.store.set(key, value)
            return json_response(env, 201 if created else 200, {'key': key, 'value': value})
        if method == 'DELETE':
            if not self.store.delete(key):
                raise json_response(env, 404, {'error': 'not found'})
            return HTTPResponse(code=204)
        raise json_response(env, 405, {'error': 'method not allowed'}, [('Allow', ALLOW_KEY)])

    def read_value(self, env: dict) -> str:
        """Return the ``value`` of a PUT body ``{"value": "text"}``.

        Raises:
            HTTPResponse: 413 for a body over ``max_body`` bytes; 400 for one
                that is not JSON or has no valid string ``value``.
        """
        body = env['wsgi.input'].read(self.max_body + 1)
        if len(body) > self.max_body:
            raise json_response(env, 413, {'error': 'body over %d bytes' % self.max_body})
        try:
            document = env['brim.json_loads'](body.decode('utf-8'))
        except ValueError:  # not UTF-8 (UnicodeDecodeError) or not JSON (JSONDecodeError)
            raise json_response(env, 400, {'error': 'body is not JSON'}) from None
        value = document.get('value') if isinstance(document, dict) else None
        if not isinstance(value, str):
            raise json_response(env, 400, {'error': 'body must be {"value": "<text>"}'})
        try:
            return check_value(value)
        except ValueError as err:
            raise json_response(env, 400, {'error': str(err)}) from None

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this app's settings.

        Raises:
            brim.errors.ConfError: for a value that cannot be converted, or no ``data_dir``.
        """
        return require_data_dir(name, parse_section(name, conf, cls.OPTIONS))

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict) -> list[tuple[str, str]]:
        """Return the stats this app keeps: ``<name>.requests`` (sum)."""
        return [('%s.requests' % name, 'sum')]


def json_response(env: dict, code: int, document: Any, headers: Iterable[tuple[str, str]] = ()) -> HTTPResponse:
    """Return a response with status ``code`` and ``document`` as its JSON body
    (made with ``env['brim.json_dumps']``, the conf's ``json_dumps``)."""
    body = env['brim.json_dumps'](document)
    return HTTPResponse(body, [('Content-Type', 'application/json'), *headers], code=code)
