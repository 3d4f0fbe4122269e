"""brim.wsgi_app mounting a real Flask app and a real Django project under brimd.

One pipeline: Flask at /flask (made by a factory), Django at /django, then
brim.wsgi_echo and brim.wsgi_stats, which get whatever the two mounts pass
down. Flask and Django are test-only dependencies (``pip install -e .[test]``).
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from harness import free_port, http_request, port_accepts, wait_until

pytest.importorskip('flask', reason='flask is not installed (pip install -e .[test] installs it)')
pytest.importorskip('django', reason='django is not installed (pip install -e .[test] installs it)')

#: One part of a streamed response: more than brimd gathers before a write
#: (wsgi_output_iter_chunk_size, 4096 bytes), so each part is one chunk.
PART = '%s part %d: ' + 'x' * 5000 + '\n'

FLASK_APP = '''
from flask import Flask, Response, request, url_for

PART = %r
''' % PART + '''


def create_app():
    app = Flask(__name__)

    @app.get('/')
    def index():
        return {'script_root': request.script_root, 'path': request.path,
                'item_url': url_for('item', n=7), 'external': url_for('item', n=7, _external=True)}

    @app.get('/items/<int:n>')
    def item(n):
        return {'n': n, 'self': url_for('item', n=n)}

    @app.post('/echo')
    def echo():
        return {'json': request.get_json(), 'length': request.content_length}

    @app.get('/stream')
    def stream():
        def parts():
            for i in range(5):
                yield PART % ('flask', i)
        return Response(parts(), mimetype='text/plain')

    @app.get('/boom')
    def boom():
        raise RuntimeError('flask view failed')

    return app


def broken():
    raise RuntimeError('no configuration found')
'''

DJANGO_SITE = '''
import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY='test-only-not-secret',
    ALLOWED_HOSTS=['127.0.0.1', 'localhost'],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
    # Let a view's exception reach brimd, which logs it and answers 500
    # (by default Django answers 500 itself and, with DEBUG off, logs nowhere).
    DEBUG_PROPAGATE_EXCEPTIONS=True,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path, reverse  # noqa: E402

PART = %r
''' % PART + '''


def index(request):
    return JsonResponse({'script_name': request.META['SCRIPT_NAME'], 'path': request.path,
                         'path_info': request.path_info, 'item_url': reverse('item', args=[7]),
                         'absolute': request.build_absolute_uri()})


def item(request, n):
    return JsonResponse({'n': n, 'self': reverse('item', args=[n])})


def echo(request):
    if request.method != 'POST':
        return JsonResponse({'error': 'POST only'}, status=405)
    body = request.body
    return JsonResponse({'form': request.POST.dict(), 'length': len(body)})


def stream(request):
    return StreamingHttpResponse((PART % ('django', i) for i in range(5)), content_type='text/plain')


def boom(request):
    raise RuntimeError('django view failed')


urlpatterns = [
    path('', index),
    path('items/<int:n>', item, name='item'),
    path('echo', echo),
    path('stream', stream),
    path('boom', boom),
]

application = get_wsgi_application()
'''

CONF = """
[wsgi]
port = %(port)d
workers = 1
apps = flask django echo stats

[flask]
call = brim.wsgi_app.WSGIApp
app = flaskapp:create_app()
path = /flask

[django]
call = brim.wsgi_app.WSGIApp
app = djangosite:application
path = /django/

[echo]
call = brim.wsgi_echo.WSGIEcho

[stats]
call = brim.wsgi_stats.WSGIStats
"""


def deploy(brimd, conf: str = CONF) -> int:
    brimd.write_module('flaskapp', FLASK_APP)
    brimd.write_module('djangosite', DJANGO_SITE)
    port = free_port()
    brimd.write_conf(conf % {'port': port})
    return port


def get_json(port: int, path: str) -> dict:
    status, headers, body = http_request(port, path=path)
    assert status == 200, (path, status, body)
    assert headers['content-type'].startswith('application/json'), headers
    return json.loads(body)


def raw_get(port: int, path: str, timeout: float = 10.0) -> tuple[bytes, list[bytes]]:
    """GET ``path`` over a keep-alive HTTP/1.1 connection (where a response
    without Content-Length must be chunked) and return (head, chunks)."""
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        sock.sendall(('GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' % path).encode())
        data = b''
        deadline = time.monotonic() + timeout
        while not data.endswith(b'0\r\n\r\n') and time.monotonic() < deadline:
            received = sock.recv(65536)
            if not received:
                break
            data += received
    head, _, rest = data.partition(b'\r\n\r\n')
    chunks = []
    while rest:
        size_line, _, rest = rest.partition(b'\r\n')
        size = int(size_line.split(b';')[0], 16)
        if size == 0:
            assert rest == b'\r\n', 'trailers or bytes after the last chunk: %r' % rest
            break
        chunks.append(rest[:size])
        assert rest[size:size + 2] == b'\r\n'
        rest = rest[size + 2:]
    else:
        raise AssertionError('no last chunk: %r' % data)
    return head, chunks


def test_flask_and_django_mounted_in_one_pipeline(brimd):
    port = deploy(brimd)
    check = brimd.run('check')
    assert check.returncode == 0, check.stderr
    assert check.stderr == ''
    assert 'flask (brim.wsgi_app.WSGIApp)' in check.stdout and 'django (brim.wsgi_app.WSGIApp)' in check.stdout
    brimd.start()
    wait_until(lambda: port_accepts(port), what='port')

    # GET: each framework routes on PATH_INFO and builds URLs with SCRIPT_NAME.
    assert get_json(port, '/flask/') == {
        'script_root': '/flask', 'path': '/', 'item_url': '/flask/items/7',
        'external': 'http://127.0.0.1:%d/flask/items/7' % port}
    assert get_json(port, '/flask/items/3') == {'n': 3, 'self': '/flask/items/3'}
    assert get_json(port, '/django/') == {
        'script_name': '/django', 'path': '/django/', 'path_info': '/', 'item_url': '/django/items/7',
        'absolute': 'http://127.0.0.1:%d/django/' % port}
    assert get_json(port, '/django/items/3') == {'n': 3, 'self': '/django/items/3'}
    # The mount point itself (PATH_INFO ''): Flask redirects to its root
    # (a URL with SCRIPT_NAME in it), Django serves its root.
    status, headers, _ = http_request(port, path='/flask')
    assert (status, headers['location']) == (308, 'http://127.0.0.1:%d/flask/' % port)
    assert get_json(port, '/django')['path_info'] == '/'

    # POST with a body.
    payload = {'name': 'brim', 'list': [1, 2, 3], 'text': 'caf\u00e9'}
    raw = json.dumps(payload).encode()
    status, _, body = http_request(port, 'POST', '/flask/echo', raw, {'Content-Type': 'application/json'})
    assert status == 200, body
    assert json.loads(body) == {'json': payload, 'length': len(raw)}
    form = b'a=1&b=two+words&c=%E2%9C%93'
    status, _, body = http_request(port, 'POST', '/django/echo', form,
                                   {'Content-Type': 'application/x-www-form-urlencoded'})
    assert status == 200, body
    assert json.loads(body) == {'form': {'a': '1', 'b': 'two words', 'c': '\u2713'}, 'length': len(form)}

    # Streamed responses: every yielded part, chunked on the wire.
    for word in ('flask', 'django'):
        head, chunks = raw_get(port, '/%s/stream' % word)
        assert head.startswith(b'HTTP/1.1 200'), head
        assert b'\r\ntransfer-encoding: chunked' in head.lower(), head
        assert b'content-length' not in head.lower()
        assert chunks == [(PART % (word, i)).encode() for i in range(5)]

    # Everything not under a mount point goes on down the pipeline.
    assert http_request(port, 'POST', '/echo', b'passed down')[::2] == (200, b'passed down')
    assert http_request(port, path='/flaskx')[0] == 404
    assert http_request(port, path='/djangoland/items/1')[0] == 404
    status, _, body = http_request(port, path='/nowhere')
    assert (status, body) == (404, b'404 Not Found\n')  # brimd's own, not a framework's

    # An exception in a view: 500, and the traceback in brimd's log.
    # Flask answers 500 itself and logs to wsgi.errors, which brimd captures.
    status, _, body = http_request(port, path='/flask/boom')
    assert status == 500
    assert b'flask view failed' not in body  # no traceback sent to the client
    log = brimd.wait_log('RuntimeError: flask view failed')
    assert 'Exception on /boom [GET]' in log
    # Django (DEBUG_PROPAGATE_EXCEPTIONS) lets it reach brimd, which logs and answers 500.
    status, _, body = http_request(port, path='/django/boom')
    assert (status, body) == (500, b'500 Internal Server Error\n')
    log = brimd.wait_log('RuntimeError: django view failed')
    assert [line for line in log.splitlines() if '/django/boom: app raised' in line], log

    # The access log names the full path; each mount counts what it served.
    brimd.wait_log('GET /django/boom HTTP/1.1 500')
    brimd.wait_log('GET /flask/items/3 HTTP/1.1 200')

    def counted():
        stats = json.loads(http_request(port, path='/stats')[2])['wsgi']
        return stats if stats['flask.requests'] == 6 and stats['django.requests'] == 6 else None
    stats = wait_until(counted, what='flask.requests and django.requests to reach 6')
    assert stats['echo.requests'] == 1


@pytest.mark.parametrize('value, fragments', [
    ('nosuch.module:app', ["[flask] app = 'nosuch.module:app'", 'module nosuch not found']),
    ('json:nosuch', ["[flask] app = 'json:nosuch'", 'module json has no attribute nosuch']),
    ('json', ["[flask] app = 'json'", 'not package.module:attribute']),
    ('flaskapp:broken()', ["[flask] app = 'flaskapp:broken()'",
                           'calling flaskapp:broken() failed: RuntimeError: no configuration found']),
    ('flaskapp:create_app', ["[flask] app = 'flaskapp:create_app'",
                             'cannot be called as a WSGI application', 'end the value with ()']),
])
def test_bad_app_is_one_line_from_check(brimd, value, fragments):
    deploy(brimd, CONF.replace('app = flaskapp:create_app()', 'app = ' + value))
    result = brimd.run('check')
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('brimd: ')
    for fragment in fragments:
        assert fragment in lines[0]
    assert 'Traceback' not in result.stderr
