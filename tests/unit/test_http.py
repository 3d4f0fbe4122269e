"""Tests for brim.http: response classes, QueryParser, get_header*, quote."""

import http as std_http

import pytest

from brim import http


def call(app, method='GET'):
    """Run a WSGI app; return (status, headers dict, body bytes)."""
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen['status'] = status
        seen['headers'] = headers

    body = b''.join(app({'REQUEST_METHOD': method}, start_response))
    return seen['status'], dict(seen['headers']), body


def response_classes():
    return [value for value in vars(http).values()
            if isinstance(value, type) and issubclass(value, http.HTTPException)]


@pytest.mark.parametrize('status', list(std_http.HTTPStatus), ids=lambda s: str(s.value))
def test_every_standard_code_has_a_class(status):
    codes = {cls.code for cls in response_classes()}
    assert status.value in codes
    assert http.CODE2NAME[status.value] == status.phrase


@pytest.mark.parametrize('code, base', [
    (100, http.HTTPInformational), (101, http.HTTPInformational),
    (200, http.HTTPSuccess), (206, http.HTTPSuccess),
    (300, http.HTTPRedirection), (304, http.HTTPRedirection), (308, http.HTTPRedirection),
    (400, http.HTTPClientError), (404, http.HTTPClientError), (451, http.HTTPClientError),
    (500, http.HTTPServerError), (503, http.HTTPServerError), (511, http.HTTPServerError),
])
def test_hierarchy(code, base):
    abstract = (http.HTTPException, http.HTTPError)
    classes = [cls for cls in response_classes() if cls.code == code and cls not in abstract]
    assert classes
    for cls in classes:
        assert issubclass(cls, base)
        assert issubclass(cls, http.HTTPException)
        assert issubclass(cls, Exception)
        if code >= 400:
            assert issubclass(cls, http.HTTPError)


@pytest.mark.parametrize('alias, target', [
    (http.HTTPOk, http.HTTPSuccess), (http.HTTPOK, http.HTTPSuccess),
    (http.HTTPBadRequest, http.HTTPClientError),
    (http.HTTPInternalServerError, http.HTTPServerError),
    (http.HTTPMultipleChoices, http.HTTPRedirection),
    (http.HTTPResponse, http.HTTPException),
    (http.HTTPRequestEntityTooLarge, http.HTTPContentTooLarge),
    (http.HTTPRequestedRangeNotSatisfiable, http.HTTPRangeNotSatisfiable),
])
def test_aliases(alias, target):
    assert alias is target


@pytest.mark.parametrize('cls, status', [
    (http.HTTPOk, '200 OK'), (http.HTTPNotFound, '404 Not Found'),
    (http.HTTPBadRequest, '400 Bad Request'), (http.HTTPServerError, '500 Internal Server Error'),
    (http.HTTPServiceUnavailable, '503 Service Unavailable'),
])
def test_default_body_and_headers(cls, status):
    got_status, headers, body = call(cls())
    assert got_status == status
    assert body == (status + '\n').encode()
    assert headers['Content-Length'] == str(len(body))
    assert headers['Content-Type'].startswith('text/plain')


def test_raise_and_catch_then_serve():
    with pytest.raises(http.HTTPClientError) as caught:
        raise http.HTTPNotFound('nope\n')
    assert caught.value.code == 404
    assert '404 Not Found nope' in str(caught.value)
    assert call(caught.value)[2] == b'nope\n'


@pytest.mark.parametrize('body, expected', [
    ('caf\u00e9', 'caf\u00e9'.encode('utf-8')),
    (b'raw\xff', b'raw\xff'),
    ('', b''),
])
def test_body_types_and_length(body, expected):
    status, headers, got = call(http.HTTPOk(body))
    assert got == expected
    assert headers['Content-Length'] == str(len(expected))


def test_iterable_body_has_no_computed_length():
    status, headers, body = call(http.HTTPOk(iter([b'a', b'b'])))
    assert body == b'ab'
    assert 'Content-Length' not in headers


def test_given_headers_win():
    response = http.HTTPOk('abc', {'content-type': 'application/json', 'Content-Length': '3'})
    status, headers, body = call(response)
    assert headers == {'content-type': 'application/json', 'Content-Length': '3'}
    assert response.get_header('CONTENT-TYPE') == 'application/json'


def test_transfer_encoding_suppresses_default_body():
    status, headers, body = call(http.HTTPOk(headers=[('Transfer-Encoding', 'chunked')]))
    assert body == b''
    assert 'Content-Length' not in headers


def test_head_gets_headers_and_no_body():
    status, headers, body = call(http.HTTPNotFound(), method='HEAD')
    assert status == '404 Not Found'
    assert headers['Content-Length'] == str(len('404 Not Found\n'))
    assert body == b''


@pytest.mark.parametrize('cls', [http.HTTPNoContent, http.HTTPNotModified, http.HTTPContinue])
def test_no_content_statuses(cls):
    status, headers, body = call(cls('ignored'))
    assert body == b''
    assert 'Content-Type' not in headers
    if cls is not http.HTTPNotModified:
        assert 'Content-Length' not in headers


@pytest.mark.parametrize('cls, code', [
    (http.HTTPMovedPermanently, 301), (http.HTTPFound, 302), (http.HTTPSeeOther, 303),
    (http.HTTPTemporaryRedirect, 307), (http.HTTPPermanentRedirect, 308)])
def test_redirect_location(cls, code):
    status, headers, body = call(cls(location='/new/place'))
    assert status.startswith(str(code))
    assert headers['Location'] == '/new/place'
    assert b'/new/place' in body


@pytest.mark.parametrize('headers', [
    {'X-Evil': 'a\r\nSet-Cookie: x=1'}, {'X-Evil': 'a\nb'}, {'X\r\nY': 'v'}, {'X': 'a\0'}])
def test_header_injection_refused(headers):
    with pytest.raises(ValueError):
        http.HTTPOk('x', headers)


def test_redirect_location_injection_refused():
    with pytest.raises(ValueError):
        http.HTTPFound(location='/x\r\nSet-Cookie: a=b')


def test_code_override_and_unknown_reason():
    status, headers, body = call(http.HTTPException(code=599))
    assert status == '599 Status'
    assert http.reason_phrase(404) == 'Not Found'


@pytest.mark.parametrize('query, name, default, expected', [
    ('a=1&b=2', 'a', None, '1'),
    ('a=1&a=2', 'a', None, '2'),
    ('', 'a', 'dflt', 'dflt'),
    (None, 'a', None, None),
    ('a=x+y%20z', 'a', None, 'x y z'),
    ('a=caf%C3%A9', 'a', None, 'caf\u00e9'),
    ('a=caf\u00c3\u00a9', 'a', None, 'caf\u00e9'),  # raw UTF-8 bytes, latin-1 str (PEP 3333)
    ('a=%ff', 'a', None, '\ufffd'),
    ('a', 'a', None, ''),
    ('a=', 'a', None, ''),
])
def test_query_get(query, name, default, expected):
    assert http.QueryParser(query).get(name, default) == expected


def test_query_get_all_values():
    assert http.QueryParser('a=1&b=0&a=2').get('a', last_only=False) == ['1', '2']


@pytest.mark.parametrize('query, default, expected', [
    ('v=yes', None, True), ('v=ON', False, True), ('v=0', True, False), ('v=off', None, False),
    ('v', False, True), ('v', True, False), ('v=', None, True), ('x=1', 'dflt', 'dflt'),
])
def test_query_get_bool(query, default, expected):
    assert http.QueryParser(query).get_bool('v', default) == expected


@pytest.mark.parametrize('method, query, expected', [
    ('get_int', 'v=42', 42), ('get_int', 'v=-7', -7), ('get_float', 'v=1.5', 1.5),
    ('get_float', 'v=3', 3.0), ('get_int', 'x=1', 'dflt'), ('get_float', 'x=1', 'dflt'),
])
def test_query_get_numbers(method, query, expected):
    assert getattr(http.QueryParser(query), method)('v', 'dflt') == expected


@pytest.mark.parametrize('method, query', [
    ('get_bool', 'verbose=maybe'), ('get_int', 'verbose=1.5'), ('get_int', 'verbose='),
    ('get_int', 'verbose=abc'), ('get_float', 'verbose=abc'), ('get_float', 'verbose'),
])
def test_query_bad_values_are_400_naming_parameter(method, query):
    with pytest.raises(http.HTTPBadRequest) as caught:
        getattr(http.QueryParser(query), method)('verbose')
    status, headers, body = call(caught.value)
    assert status == '400 Bad Request'
    assert b"'verbose'" in body


@pytest.mark.parametrize('name, key', [
    ('X-Auth-Token', 'HTTP_X_AUTH_TOKEN'), ('content-type', 'CONTENT_TYPE'),
    ('Content-Length', 'CONTENT_LENGTH'), ('Host', 'HTTP_HOST')])
def test_header_env_key(name, key):
    assert http.header_env_key(name) == key


@pytest.mark.parametrize('func, env, default, expected', [
    (http.get_header, {'HTTP_X_A': 'v'}, None, 'v'),
    (http.get_header, {}, 'd', 'd'),
    (http.get_header, {}, None, None),
    (http.get_header, {'CONTENT_TYPE': 'text/plain'}, None, 'text/plain'),
    (http.get_header_int, {'HTTP_X_A': '12'}, None, 12),
    (http.get_header_int, {'CONTENT_LENGTH': '5'}, None, 5),
    (http.get_header_int, {}, 3, 3),
    (http.get_header_float, {'HTTP_X_A': '2.5'}, None, 2.5),
    (http.get_header_bool, {'HTTP_X_A': 'true'}, None, True),
    (http.get_header_bool, {'HTTP_X_A': 'no'}, None, False),
    (http.get_header_bool, {}, False, False),
])
def test_get_header(func, env, default, expected):
    name = 'Content-Type' if 'CONTENT_TYPE' in env else 'Content-Length' if 'CONTENT_LENGTH' in env else 'X-A'
    assert func(env, name, default) == expected


@pytest.mark.parametrize('func, env', [
    (http.get_header_int, {'HTTP_X_A': 'abc'}), (http.get_header_int, {}),
    (http.get_header_float, {'HTTP_X_A': 'x'}), (http.get_header_bool, {'HTTP_X_A': 'perhaps'}),
    (http.get_header_bool, {}),
])
def test_get_header_bad_or_missing_is_400_naming_header(func, env):
    with pytest.raises(http.HTTPBadRequest) as caught:
        func(env, 'x-a')
    assert b'X-A' in call(caught.value)[2]


@pytest.mark.parametrize('value, safe, expected', [
    ('/a b/c', '/', '/a%20b/c'),
    ('caf\u00e9', '/', 'caf%C3%A9'),
    ('\u20ac/x', '', '%E2%82%AC%2Fx'),
    (b'\xff/', '/', '%FF/'),
    ('a?b#c&d', '/', 'a%3Fb%23c%26d'),
])
def test_quote(value, safe, expected):
    assert http.quote(value, safe) == expected
