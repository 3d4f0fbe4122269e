"""Tests for brim.wsgi_fs: serving, conditional and range requests, listings, and path safety."""

import os
import urllib.parse
from wsgiref.util import setup_testing_defaults

import pytest

from brim.conf import Conf
from brim.errors import ConfError
from brim.wsgi_fs import CHUNK_SIZE, WSGIFS, content_type, http_date, parse_range

HELLO = b'hello world\n'
SECRET = b'TOP SECRET\n'
MTIME = 1700000000
ODD_NAME = '<b>&"x\'.txt'


class FakeStats:
    def __init__(self):
        self.values = {}

    def incr(self, name):
        self.values[name] = self.values.get(name, 0) + 1


def next_app(env, start_response):
    start_response('599 Next', [('Content-Length', '4')])
    return [b'next']


@pytest.fixture
def tree(tmp_path):
    serve = tmp_path / 'serve'
    serve.mkdir()
    (tmp_path / 'secret.txt').write_bytes(SECRET)
    (tmp_path / 'serve-evil').mkdir()
    (tmp_path / 'serve-evil' / 'secret.txt').write_bytes(SECRET)
    (serve / 'hello.txt').write_bytes(HELLO)
    os.utime(serve / 'hello.txt', (MTIME, MTIME))
    (serve / 'empty.bin').write_bytes(b'')
    (serve / 'sub').mkdir()
    (serve / 'sub' / 'inner.html').write_bytes(b'<p>inner</p>')
    (serve / ODD_NAME).write_bytes(b'odd')
    os.symlink('hello.txt', serve / 'link_in')
    os.symlink('sub', serve / 'link_dir_in')
    os.symlink('../secret.txt', serve / 'link_out')
    os.symlink(str(tmp_path / 'secret.txt'), serve / 'link_abs_out')
    os.symlink('/', serve / 'link_root')
    os.symlink('../serve-evil/secret.txt', serve / 'link_sibling')
    os.symlink('missing', serve / 'dangling')
    return tmp_path


def make_app(tree, path='/'):
    return WSGIFS('fs', {'path': path, 'serve_path': str(tree / 'serve')}, next_app)


def request(app, path_info, method='GET', extra_env=None, **headers):
    env = dict(extra_env or {}, REQUEST_METHOD=method, PATH_INFO=path_info)
    for name, value in headers.items():
        env['HTTP_' + name.upper()] = value
    setup_testing_defaults(env)
    seen = {}

    def start_response(status, response_headers, exc_info=None):
        seen['status'] = status
        seen['headers'] = dict(response_headers)

    result = app(env, start_response)
    try:
        body = b''.join(result)
    finally:
        if hasattr(result, 'close'):
            result.close()
    return int(seen['status'].split()[0]), seen['headers'], body


def open_fds():
    return len(os.listdir('/proc/self/fd'))


@pytest.mark.parametrize('method, body', [('GET', HELLO), ('HEAD', b'')])
def test_get_and_head_file(tree, method, body):
    status, headers, got = request(make_app(tree), '/hello.txt', method)
    assert status == 200
    assert got == body
    assert headers['Content-Length'] == str(len(HELLO))
    assert headers['Content-Type'] == 'text/plain; charset=utf-8'
    assert headers['Last-Modified'] == 'Tue, 14 Nov 2023 22:13:20 GMT'
    assert headers['Accept-Ranges'] == 'bytes'


@pytest.mark.parametrize('method', ['POST', 'PUT', 'DELETE', 'OPTIONS'])
def test_other_methods_405(tree, method):
    status, headers, body = request(make_app(tree), '/hello.txt', method)
    assert status == 405
    assert headers['Allow'] == 'GET, HEAD'
    assert HELLO not in body


@pytest.mark.parametrize('path, path_info, served', [
    ('/', '/hello.txt', True),
    ('/static', '/static/hello.txt', True),
    ('/static/', '/static/hello.txt', True),
    ('static', '/static/sub/inner.html', True),
    ('/static', '/staticx/hello.txt', False),
    ('/static', '/other/hello.txt', False),
    ('/static', '/hello.txt', False),
    ('/a/b', '/a/b/hello.txt', True),
    ('/a/b', '/a/hello.txt', False),
])
def test_prefix_matching(tree, path, path_info, served):
    status, headers, body = request(make_app(tree, path), path_info)
    if served:
        assert status == 200
        assert body in (HELLO, b'<p>inner</p>')
    else:
        assert (status, body) == (599, b'next')


@pytest.mark.parametrize('name, expected', [
    ('a.html', 'text/html; charset=utf-8'), ('a.png', 'image/png'), ('a.json', 'application/json; charset=utf-8'),
    ('a.tar.gz', 'application/gzip'), ('noext', 'application/octet-stream'), ('a.PDF', 'application/pdf'),
])
def test_content_type(name, expected):
    assert content_type(name) == expected


@pytest.mark.parametrize('since, status', [
    (http_date(MTIME), 304),
    (http_date(MTIME + 3600), 304),
    (http_date(MTIME - 1), 200),
    ('Sunday, 06-Nov-94 08:49:37 GMT', 200),
    ('not a date', 200),
    ('Tue, 14 Nov 2023 22:13:20', 200),  # no zone: invalid, ignored
    ('', 200),
])
def test_if_modified_since(tree, since, status):
    got_status, headers, body = request(make_app(tree), '/hello.txt', If_Modified_Since=since)
    assert got_status == status
    assert body == (HELLO if status == 200 else b'')
    assert headers['Last-Modified'] == http_date(MTIME)


@pytest.mark.parametrize('header, size, expected', [
    ('bytes=0-4', 12, (0, 4)), ('bytes=6-', 12, (6, 11)), ('bytes=-6', 12, (6, 11)),
    ('bytes=0-1000', 12, (0, 11)), ('bytes=-1000', 12, (0, 11)), ('BYTES = 1-1', 12, (1, 1)),
    ('bytes=12-', 12, (-1, -1)), ('bytes=100-200', 12, (-1, -1)), ('bytes=-0', 12, (-1, -1)),
    ('bytes=0-', 0, (-1, -1)), ('bytes=-5', 0, (-1, -1)),
    ('bytes=0-1,3-4', 12, None), ('items=0-1', 12, None), ('bytes=5-2', 12, None),
    ('bytes=abc', 12, None), ('bytes=-', 12, None), ('bytes=1-2-3', 12, None), ('bytes=+1-2', 12, None),
    ('bytes 0-1', 12, None), ('', 12, None), (None, 12, None),
])
def test_parse_range(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize('range_header, status, body, content_range', [
    ('bytes=0-4', 206, b'hello', 'bytes 0-4/12'),
    ('bytes=6-', 206, b'world\n', 'bytes 6-11/12'),
    ('bytes=-6', 206, b'world\n', 'bytes 6-11/12'),
    ('bytes=0-1000', 206, HELLO, 'bytes 0-11/12'),
    ('bytes=100-', 416, None, 'bytes */12'),
    ('bytes=0-1,3-4', 200, HELLO, None),
    ('bytes=junk', 200, HELLO, None),
])
def test_range_requests(tree, range_header, status, body, content_range):
    got_status, headers, got = request(make_app(tree), '/hello.txt', Range=range_header)
    assert got_status == status
    if body is not None:
        assert got == body
        assert headers['Content-Length'] == str(len(body))
    assert headers.get('Content-Range') == content_range


def test_range_on_empty_file_is_416(tree):
    status, headers, body = request(make_app(tree), '/empty.bin', Range='bytes=0-')
    assert status == 416
    assert headers['Content-Range'] == 'bytes */0'


def test_head_ignores_range(tree):
    status, headers, body = request(make_app(tree), '/hello.txt', 'HEAD', Range='bytes=0-4')
    assert status == 200
    assert headers['Content-Length'] == '12'
    assert body == b''


@pytest.mark.parametrize('if_range, status', [(http_date(MTIME), 206), (http_date(MTIME - 10), 200), ('"etag"', 200)])
def test_if_range(tree, if_range, status):
    got_status, headers, body = request(make_app(tree), '/hello.txt', Range='bytes=0-4', If_Range=if_range)
    assert got_status == status
    assert body == (b'hello' if status == 206 else HELLO)


def test_large_file_streams_in_chunks_and_closes(tree):
    data = os.urandom(CHUNK_SIZE * 5 + 123)
    (tree / 'serve' / 'big.bin').write_bytes(data)
    env = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/big.bin'}
    setup_testing_defaults(env)
    result = make_app(tree)(env, lambda status, headers, exc_info=None: None)
    chunks = list(result)
    assert b''.join(chunks) == data
    assert len(chunks) == 6
    assert max(len(chunk) for chunk in chunks) == CHUNK_SIZE
    result.close()
    assert result.fp.closed


@pytest.mark.skipif(not os.path.isdir('/proc/self/fd'), reason='needs /proc/self/fd')
def test_no_descriptor_leaks(tree):
    app = make_app(tree)
    request(app, '/hello.txt')  # warm up lazy imports (mimetypes)
    before = open_fds()
    for kwargs in ({}, {'If_Modified_Since': http_date(MTIME)}, {'Range': 'bytes=50-'}, {'Range': 'bytes=1-2'}):
        request(app, '/hello.txt', **kwargs)
        request(app, '/hello.txt', 'HEAD', **kwargs)
    request(app, '/sub/')
    request(app, '/sub')
    request(app, '/missing')
    assert open_fds() == before


@pytest.mark.parametrize('path_info', [
    '/../secret.txt',
    '/sub/../../secret.txt',
    '/sub/../hello.txt',
    '/./hello.txt',
    '/..',
    '/../serve-evil/secret.txt',
    '/%2e%2e/secret.txt',
    '/%2E%2E%2Fsecret.txt',
    '/..%2fsecret.txt',
    '/sub/%2e%2e/%2e%2e/secret.txt',
    '/%252e%252e/secret.txt',
    '/..\\secret.txt',
    '/sub\\..\\..\\secret.txt',
    '/hello.txt%00',
    '/hello.txt\x00.png',
    '/%00',
    '//etc/passwd',
    '/etc/passwd',
    '/link_out',
    '/link_abs_out',
    '/link_root/etc/passwd',
    '/link_sibling',
    '/dangling',
    '/missing.txt',
    '/hello.txt/x',
    '/\u20ac',
])
@pytest.mark.parametrize('decode', [False, True], ids=['as-given', 'server-decoded'])
def test_nothing_outside_serve_path(tree, path_info, decode):
    if decode:
        # What a WSGI server puts in PATH_INFO: percent-decoded, as latin-1.
        path_info = urllib.parse.unquote(path_info, encoding='latin-1')
    status, headers, body = request(make_app(tree), path_info)
    assert status == 404
    assert SECRET not in body
    assert HELLO not in body


def test_absolute_path_under_prefix_stays_inside(tree):
    status, headers, body = request(make_app(tree, '/static'), '/static/' + str(tree / 'secret.txt'))
    assert status == 404
    assert SECRET not in body


@pytest.mark.parametrize('path_info, body', [('/link_in', HELLO), ('/link_dir_in/inner.html', b'<p>inner</p>')])
def test_symlinks_inside_are_followed(tree, path_info, body):
    status, headers, got = request(make_app(tree), path_info)
    assert (status, got) == (200, body)


def test_serve_path_itself_a_symlink(tree):
    os.symlink(tree / 'serve', tree / 'alias')
    app = WSGIFS('fs', {'path': '/', 'serve_path': str(tree / 'alias')}, next_app)
    assert request(app, '/hello.txt')[2] == HELLO
    assert request(app, '/link_out')[0] == 404


def test_fifo_is_404_not_a_hang(tree):
    os.mkfifo(tree / 'serve' / 'pipe')
    status, headers, body = request(make_app(tree), '/pipe')
    assert status == 404


@pytest.mark.skipif(os.geteuid() == 0, reason='root reads anything')
def test_unreadable_file_is_403(tree):
    path = tree / 'serve' / 'locked.txt'
    path.write_bytes(SECRET)
    path.chmod(0)
    status, headers, body = request(make_app(tree), '/locked.txt')
    assert status == 403
    assert SECRET not in body


def test_non_utf8_file_name(tree):
    (tree / 'serve').joinpath(os.fsdecode(b'\xff.txt')).write_bytes(b'raw name')
    status, headers, body = request(make_app(tree), '/\xff.txt')
    assert (status, body) == (200, b'raw name')
    listing = request(make_app(tree), '/')[2]
    assert b'href="%FF.txt"' in listing


@pytest.mark.parametrize('path, path_info, location', [
    ('/', '/sub', '/sub/'), ('/static', '/static', '/static/'), ('/static', '/static/sub', '/static/sub/'),
    ('/', '/link_dir_in', '/link_dir_in/')])
def test_directory_without_slash_redirects(tree, path, path_info, location):
    status, headers, body = request(make_app(tree, path), path_info)
    assert status == 301
    assert headers['Location'] == location


@pytest.mark.parametrize('method', ['GET', 'HEAD'])
def test_directory_listing(tree, method):
    status, headers, body = request(make_app(tree), '/', method)
    assert status == 200
    assert headers['Content-Type'] == 'text/html; charset=utf-8'
    if method == 'HEAD':
        assert body == b''
        return
    text = body.decode('utf-8')
    assert '<a href="hello.txt">hello.txt</a>' in text
    assert '<a href="sub/">sub/</a>' in text
    assert '<a href="link_dir_in/">link_dir_in/</a>' in text
    # Every name HTML-escaped, every href percent-encoded.
    assert '&lt;b&gt;&amp;&quot;x&#x27;.txt' in text
    assert 'href="%3Cb%3E%26%22x%27.txt"' in text
    assert '<b>' not in text
    # Links that leave the tree are not even named.
    for name in ('link_out', 'link_abs_out', 'link_root', 'link_sibling', 'secret'):
        assert name not in text
    assert '../' not in text


def test_subdirectory_listing_has_parent_link(tree):
    text = request(make_app(tree, '/static'), '/static/sub/')[2].decode()
    assert '<a href="inner.html">inner.html</a>' in text
    assert '<a href="../">../</a>' in text
    assert 'Index of /static/sub/' in text


def test_listing_escapes_the_request_path(tree):
    odd_dir = tree / 'serve' / '<i>'
    odd_dir.mkdir()
    text = request(make_app(tree), '/<i>/')[2].decode()
    assert 'Index of /&lt;i&gt;/' in text
    assert '<i>' not in text


def test_stats_counted_only_when_served(tree):
    stats = FakeStats()
    app = make_app(tree, '/static')
    for path_info in ('/static/hello.txt', '/static/missing', '/elsewhere'):
        request(app, path_info, extra_env={'brim.stats': stats})
    assert stats.values == {'fs.requests': 2}
    assert WSGIFS.stats_conf('fs', {}) == [('fs.requests', 'sum')]


@pytest.mark.parametrize('options, expected_path', [
    ({}, ''), ({'path': '/static/'}, 'static'), ({'path': 'a/b'}, 'a/b'), ({'path': '/'}, '')])
def test_parse_conf(tree, options, expected_path):
    conf = Conf({'fs': dict(options, serve_path=str(tree / 'serve'))})
    parsed = WSGIFS.parse_conf('fs', conf)
    assert parsed == {'path': expected_path, 'serve_path': os.path.realpath(tree / 'serve')}


@pytest.mark.parametrize('options, option', [
    ({}, 'serve_path'), ({'serve_path': ''}, 'serve_path'),
    ({'serve_path': '/nonexistent/brim/dir'}, 'serve_path'), ('file', 'serve_path')])
def test_parse_conf_errors(tree, options, option):
    if options == 'file':
        options = {'serve_path': str(tree / 'secret.txt')}
    with pytest.raises(ConfError) as caught:
        WSGIFS.parse_conf('fs', Conf({'fs': options}))
    assert caught.value.section == 'fs'
    assert caught.value.option == option
    assert '[fs] serve_path' in str(caught.value)


def test_parse_conf_expands_user(tree, monkeypatch):
    monkeypatch.setenv('HOME', str(tree))
    parsed = WSGIFS.parse_conf('fs', Conf({'fs': {'serve_path': '~/serve'}}))
    assert parsed['serve_path'] == os.path.realpath(tree / 'serve')
