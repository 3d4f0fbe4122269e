"""Tests for brim.wsgi_app: the app reference, import errors, and the PEP 3333 split."""

from __future__ import annotations

import sys

import pytest

from brim.conf import Conf
from brim.errors import AppLoadError, ConfError
from brim.wsgi_app import WSGIApp, parse_app_ref, to_mount_path

MODULE = '''
calls = []


def app(environ, start_response):
    calls.append(dict(environ))
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [environ['SCRIPT_NAME'].encode('latin-1'), b'|', environ['PATH_INFO'].encode('latin-1')]


class Holder:
    def __init__(self):
        self.wsgi_app = app


holder = Holder()
made = []


def create_app():
    made.append(1)
    return app


def broken_factory():
    raise RuntimeError('no config\\nfound')


def factory_with_arg(config):
    return app


def make_nothing():
    return 42


def one_arg(environ):
    return []


not_callable = {'a': 1}
'''


class FakeStats:
    def __init__(self):
        self.values = {}

    def incr(self, name):
        self.values[name] = self.values.get(name, 0) + 1


def next_app(env, start_response):
    start_response('599 Next', [])
    return [b'next']


@pytest.fixture
def wsgimod(tmp_path, monkeypatch):
    name = 'wsgi_app_testmod_%d' % id(tmp_path)
    (tmp_path / ('%s.py' % name)).write_text(MODULE)
    (tmp_path / 'wsgi_app_broken_mod.py').write_text('import no_such_dependency_xyz\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    sys.modules.pop('wsgi_app_broken_mod', None)


def parse(options):
    return WSGIApp.parse_conf('mount', Conf({'mount': dict(options)}))


def call(app, path_info, script_name=''):
    captured = []
    env = {'PATH_INFO': path_info, 'SCRIPT_NAME': script_name, 'brim.stats': FakeStats(),
           'REQUEST_METHOD': 'GET'}
    body = b''.join(app(env, lambda status, headers, exc_info=None: captured.append(status)))
    return captured[0], body, env


@pytest.mark.parametrize('value, expected', [
    ('pkg.mod:app', ('pkg.mod', ('app',), False)),
    ('mod:obj.wsgi_app', ('mod', ('obj', 'wsgi_app'), False)),
    ('  pkg.mod:create_app()  ', ('pkg.mod', ('create_app',), True)),
])
def test_parse_app_ref(value, expected):
    assert tuple(parse_app_ref(value)) == expected


@pytest.mark.parametrize('value', [
    'json', 'json.dumps', ':app', 'mod:', 'mod:app(1)', 'mod:app()()', 'mod:a..b', 'os:system("x")',
    'mod:__import__("os")', 'mod:app ()', 'm-od:app', '1mod:app', 'mod:app;x',
])
def test_parse_app_ref_refuses(value):
    with pytest.raises(ValueError, match='package.module:attribute'):
        parse_app_ref(value)


@pytest.mark.parametrize('value, expected', [('/', '/'), ('/blog', '/blog'), ('/blog/', '/blog'),
                                             ('//', '/'), (' /a/b ', '/a/b')])
def test_mount_path(value, expected):
    assert to_mount_path(value) == expected


@pytest.mark.parametrize('value', ['blog', '', '/a?b', '/a#b'])
def test_mount_path_refuses(value):
    with pytest.raises(ValueError):
        to_mount_path(value)


def test_prefix_split_on_segment_boundaries(wsgimod):
    app = WSGIApp('mount', parse({'app': '%s:app' % wsgimod, 'path': '/blog/'}), next_app)
    assert call(app, '/blog')[:2] == ('200 OK', b'/blog|')
    assert call(app, '/blog/')[:2] == ('200 OK', b'/blog|/')
    assert call(app, '/blog/posts/1')[:2] == ('200 OK', b'/blog|/posts/1')
    assert call(app, '/blogger')[:2] == ('599 Next', b'next')
    assert call(app, '/')[:2] == ('599 Next', b'next')
    assert call(app, '')[:2] == ('599 Next', b'next')
    # An earlier mount's SCRIPT_NAME stays in front.
    assert call(app, '/blog/x', script_name='/outer')[:2] == ('200 OK', b'/outer/blog|/x')


def test_environ_is_a_copy_and_stats_count(wsgimod):
    app = WSGIApp('mount', parse({'app': '%s:app' % wsgimod, 'path': '/blog'}), next_app)
    status, _, env = call(app, '/blog/a')
    assert (env['SCRIPT_NAME'], env['PATH_INFO']) == ('', '/blog/a')  # brim's own environ untouched
    assert env['brim.stats'].values == {'mount.requests': 1}
    _, _, env = call(app, '/other')
    assert env['brim.stats'].values == {}
    assert WSGIApp.stats_conf('mount', {}) == [('mount.requests', 'sum')]


def test_root_mount_takes_everything(wsgimod):
    parsed = parse({'app': '%s:app' % wsgimod})
    assert parsed['path'] == '/'
    app = WSGIApp('mount', parsed, next_app)
    assert call(app, '/anything/x')[:2] == ('200 OK', b'|/anything/x')
    assert call(app, '/')[:2] == ('200 OK', b'|/')


def test_non_ascii_prefix_matches_the_decoded_path(wsgimod):
    app = WSGIApp('mount', parse({'app': '%s:app' % wsgimod, 'path': '/caf\u00e9'}), next_app)
    wire = '/caf\u00e9/x'.encode('utf-8').decode('latin-1')  # PATH_INFO as PEP 3333 has it
    status, body, _ = call(app, wire)
    assert status == '200 OK' and body == '/caf\u00e9|/x'.encode('utf-8')


def test_dotted_attribute_and_factory(wsgimod):
    module = __import__(wsgimod)
    assert parse({'app': '%s:holder.wsgi_app' % wsgimod})['app'] is module.app
    parsed = parse({'app': '%s:create_app()' % wsgimod})
    assert parsed['app'] is module.app and module.made == [1]
    assert parsed['app_ref'] == '%s:create_app()' % wsgimod


@pytest.mark.parametrize('value, fragments', [
    ('no_such_module_xyz.sub:app', ["[mount] app = 'no_such_module_xyz.sub:app'",
                                    'module no_such_module_xyz not found']),
    ('json:nosuch', ["[mount] app = 'json:nosuch'", 'module json has no attribute nosuch']),
    ('json:decoder.nosuch', ['json:decoder has no attribute nosuch']),
    ('wsgi_app_broken_mod:app', ['importing wsgi_app_broken_mod failed', "No module named 'no_such_dependency_xyz'"]),
    ('MOD:broken_factory()', ['calling MOD:broken_factory() failed: RuntimeError: no config found']),
    ('MOD:factory_with_arg()', ['calling MOD:factory_with_arg() failed: TypeError']),
    ('MOD:not_callable()', ['MOD:not_callable cannot be called as a factory (type dict)']),
    ('MOD:make_nothing()', ['what MOD:make_nothing() returned is not a WSGI application: it cannot be called (type int)']),
    ('MOD:not_callable', ['MOD:not_callable is not a WSGI application: it cannot be called (type dict)']),
    ('MOD:one_arg', ['MOD:one_arg cannot be called as a WSGI application (environ, start_response)',
                     'its signature is (environ)']),
    ('MOD:create_app', ['cannot be called as a WSGI application', 'a factory? end the value with ()']),
])
def test_load_errors_are_one_line(wsgimod, value, fragments):
    value = value.replace('MOD', wsgimod)
    with pytest.raises(AppLoadError) as caught:
        parse({'app': value})
    text = str(caught.value)
    assert '\n' not in text
    assert text.startswith("[mount] app = '%s': " % value)
    for fragment in fragments:
        assert fragment.replace('MOD', wsgimod) in text


def test_conf_errors():
    with pytest.raises(ConfError, match=r"^\[mount\] app: is required"):
        parse({})
    with pytest.raises(ConfError, match=r"^\[mount\] app = 'json': not package.module:attribute"):
        parse({'app': 'json'})
    with pytest.raises(ConfError, match=r"^\[mount\] path = 'blog': not a URL path"):
        parse({'app': 'json:dumps', 'path': 'blog'})
