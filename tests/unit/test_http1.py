"""Tests for brim.server.http1: request heads and chunk-size lines, in memory.

Every case cites the rule it checks (RFC 9112 unless another RFC is named).
Heads are built from a request line and field lines by :func:`head`, so a
case shows only what it is about.
"""

import random

import pytest

from brim.server.http1 import Head, HeadError, Limits, chunk_size, head_size_error, parse_field, parse_head

DEFAULT = Limits()


def head(request_line=b'GET / HTTP/1.1', *fields):
    """A whole request head: the request line, the field lines, the empty line."""
    return b'\r\n'.join((request_line,) + fields) + b'\r\n\r\n'


def parse(data, limits=DEFAULT):
    result = parse_head(data, limits)
    assert isinstance(result, Head)
    return result


def status_of(data, limits=DEFAULT):
    """The status parse_head refuses ``data`` with (it must refuse it)."""
    with pytest.raises(HeadError) as info:
        parse_head(data, limits)
    return info.value.status


# -- accepted heads ------------------------------------------------------------

ACCEPT = [
    pytest.param(head(b'GET /a/b?c=d HTTP/1.1', b'Host: example.com'),
                 dict(method='GET', target='/a/b?c=d', version='HTTP/1.1', headers=[('host', 'example.com')],
                      content_length=None, chunked=False, keep_alive=True, expect_continue=False),
                 id='simple-get-3.2.1'),
    pytest.param(head(b'GET / HTTP/1.0'), dict(version='HTTP/1.0', headers=[], keep_alive=False),
                 id='http10-without-host-3.2'),
    pytest.param(head(b'GET http://example.com:8080/p?q=1 HTTP/1.1', b'Host: other', b'X-A: 1'),
                 dict(target='/p?q=1', headers=[('x-a', '1'), ('host', 'example.com:8080')]),
                 id='absolute-form-replaces-host-3.2.2'),
    pytest.param(head(b'GET HTTPS://Example.com HTTP/1.1', b'Host: other'),
                 dict(target='/', headers=[('host', 'Example.com')]),
                 id='absolute-form-empty-path-scheme-case-insensitive-3.2.2'),
    pytest.param(head(b'GET http://h?x=1 HTTP/1.1', b'Host: h'), dict(target='/?x=1'),
                 id='absolute-form-query-only-3.2.2'),
    pytest.param(head(b'OPTIONS * HTTP/1.1', b'Host: h'), dict(method='OPTIONS', target='*'),
                 id='asterisk-form-3.2.4'),
    pytest.param(b'\r\n\r\n' + head(b'GET / HTTP/1.1', b'Host: h'), dict(target='/'),
                 id='leading-empty-lines-skipped-2.2'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A: \t value with  inner space \t '),
                 dict(headers=[('host', 'h'), ('x-a', 'value with  inner space')]),
                 id='value-trimmed-of-ows-5.1'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A:'), dict(headers=[('host', 'h'), ('x-a', '')]),
                 id='empty-value-5.5'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A: caf\xe9 \x80\xff'),
                 dict(headers=[('host', 'h'), ('x-a', 'caf\xe9 \x80\xff')]),
                 id='obs-text-latin-1-rfc9110-5.5'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A: a\tb'), dict(headers=[('host', 'h'), ('x-a', 'a\tb')]),
                 id='htab-in-value-rfc9110-5.5'),
    pytest.param(head(b'GET / HTTP/1.1', b'X-B: 1', b'Host: h', b'x-b: 2', b'X-B: 3'),
                 dict(headers=[('x-b', '1'), ('host', 'h'), ('x-b', '2'), ('x-b', '3')]),
                 id='repeated-fields-kept-in-order-lower-case-5.3'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b"X-!#$%&'*+-.^_`|~09Az: t"),
                 dict(headers=[('host', 'h'), ("x-!#$%&'*+-.^_`|~09az", 't')]),
                 id='every-tchar-in-a-name-rfc9110-5.6.2'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host:h'), dict(headers=[('host', 'h')]), id='no-ows-after-colon-5.1'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: '), dict(headers=[('host', '')]), id='empty-host-rfc9110-7.2'),
    # RFC 9112 §9.3: keep-alive.
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h'), dict(keep_alive=True), id='keep-alive-1.1-default-9.3'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'Connection: close'), dict(keep_alive=False),
                 id='close-1.1-9.6'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'Connection: CLOSE'), dict(keep_alive=False),
                 id='close-case-insensitive-rfc9110-7.6.1'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'Connection: foo, close'), dict(keep_alive=False),
                 id='close-in-a-list-rfc9110-7.6.1'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'Connection: foo', b'Connection: close'),
                 dict(keep_alive=False), id='close-in-a-second-field-rfc9110-5.3'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'Connection: closed, xclose'), dict(keep_alive=True),
                 id='close-is-a-whole-token-rfc9110-7.6.1'),
    pytest.param(head(b'GET / HTTP/1.0'), dict(keep_alive=False), id='keep-alive-1.0-default-off-9.3'),
    pytest.param(head(b'GET / HTTP/1.0', b'Connection: keep-alive'), dict(keep_alive=True),
                 id='keep-alive-1.0-9.3'),
    pytest.param(head(b'GET / HTTP/1.0', b'Connection: Upgrade, Keep-Alive'), dict(keep_alive=True),
                 id='keep-alive-1.0-list-case-insensitive-9.3'),
    # RFC 9110 §10.1.1: Expect.
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Expect: 100-continue', b'Content-Length: 3'),
                 dict(expect_continue=True, content_length=3), id='expect-100-continue-rfc9110-10.1.1'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Expect: 100-Continue', b'Content-Length: 3'),
                 dict(expect_continue=True), id='expect-case-insensitive-rfc9110-10.1.1'),
    pytest.param(head(b'POST / HTTP/1.0', b'Expect: 100-continue', b'Content-Length: 3'),
                 dict(expect_continue=False), id='expect-ignored-on-1.0-rfc9110-10.1.1'),
    # RFC 9112 §6: framing.
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: chunked'),
                 dict(chunked=True, content_length=None), id='chunked-6.1'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: Chunked'), dict(chunked=True),
                 id='chunked-case-insensitive-rfc9110-10.1.4'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: chunked, '), dict(chunked=True),
                 id='chunked-empty-list-member-ignored-rfc9110-5.6.1'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 0'), dict(content_length=0),
                 id='content-length-0-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 007'), dict(content_length=7),
                 id='content-length-leading-zeros-rfc9110-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 999999999999999999'),
                 dict(content_length=999999999999999999), id='content-length-18-digits-rfc9110-8.6'),
    pytest.param(head(b'GET / HTTP/1.2', b'Host: h'), dict(version='HTTP/1.1', keep_alive=True),
                 id='http-1.2-served-as-1.1-rfc9110-2.5'),
    pytest.param(head(b'PATCH /x HTTP/1.1', b'Host: h'), dict(method='PATCH'), id='other-method-rfc9110-9.1'),
    pytest.param(head(b'get / HTTP/1.1', b'Host: h'), dict(method='get'), id='method-case-sensitive-rfc9110-9.1'),
    pytest.param(head(b'GET /%7E?a=%20&b=/ HTTP/1.1', b'Host: h'), dict(target='/%7E?a=%20&b=/'),
                 id='percent-encoding-left-alone-rfc3986-2.1'),
]


@pytest.mark.parametrize('data, expected', ACCEPT)
def test_parse_head_accepts(data, expected):
    result = parse(data)
    for name, value in expected.items():
        assert getattr(result, name) == value, name


def test_http_1_x_without_host_is_refused_like_1_1():
    """RFC 9110 §2.5: a 1.x minor above 1 is served as 1.1, so Host is required (RFC 9112 §3.2)."""
    assert status_of(head(b'GET / HTTP/1.9')) == 400
    assert parse(head(b'GET / HTTP/1.9', b'Host: h')).version == 'HTTP/1.1'


def test_close_wins_over_keep_alive_on_http10():
    assert parse(head(b'GET / HTTP/1.0', b'Connection: keep-alive, close')).keep_alive is False


def test_close_wins_over_keep_alive_on_http11():
    assert parse(head(b'GET / HTTP/1.1', b'Host: h', b'Connection: keep-alive, close')).keep_alive is False


@pytest.mark.parametrize('data', [pytest.param(p.values[0], id=p.id) for p in ACCEPT])
def test_invariants_of_an_accepted_head(data):
    """The module docstring's invariants for a Head."""
    result = parse(data)
    assert result.version in ('HTTP/1.1', 'HTTP/1.0')
    for name, value in result.headers:
        assert name == name.lower() and name
        assert not set(value) & {'\r', '\n', '\0'}
        assert value == value.strip(' \t')
    assert result.content_length is None or not result.chunked
    assert result.target == '*' or result.target.startswith('/')


def test_parse_head_with_trailing_data_is_refused():
    """parse_head takes exactly one head; the connection splits off the rest."""
    assert status_of(head(b'GET / HTTP/1.1', b'Host: h') + b'GET') == 400


# -- refused heads -------------------------------------------------------------

REFUSE = [
    # RFC 9112 §2.2: CRLF only.
    pytest.param(b'GET / HTTP/1.1\r\nHost: h\r\n', 400, id='no-empty-line-2.1'),
    pytest.param(b'GET / HTTP/1.1\rHost: h\r\n\r\n', 400, id='bare-cr-2.2'),
    pytest.param(b'GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n', 400, id='bare-cr-in-value-2.2'),
    pytest.param(b'GET / HTTP/1.1\nHost: h\r\n\r\n', 400, id='bare-lf-2.2'),
    pytest.param(b'GET / HTTP/1.1\r\nHost: h\n\r\n', 400, id='bare-lf-before-end-2.2'),
    pytest.param(b'GET / HTTP/1.1\r\nHost: h\r\nX-A: a\nb\r\n\r\n', 400, id='bare-lf-in-value-2.2'),
    pytest.param(b'GET / HTTP/1.1\n\n', 400, id='lf-only-head-2.2'),
    # RFC 9112 §5.1, §5.2; RFC 9110 §5.5: field lines.
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A: a', b' folded'), 400, id='obs-fold-5.2'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A: a', b'\tfolded'), 400, id='obs-fold-htab-5.2'),
    pytest.param(head(b'GET / HTTP/1.1', b' Host: h'), 400, id='whitespace-before-first-field-2.2'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host : h'), 400, id='space-before-colon-5.1'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host\t: h'), 400, id='htab-before-colon-5.1'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b': v'), 400, id='empty-name-5.1'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X A: v'), 400, id='space-in-name-rfc9110-5.1'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X(A): v'), 400, id='non-token-name-rfc9110-5.1'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-\xe9: v'), 400, id='non-ascii-name-rfc9110-5.1'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A v'), 400, id='no-colon-5.1'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A: a\x00b'), 400, id='nul-in-value-rfc9110-5.5'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A: a\x7fb'), 400, id='del-in-value-rfc9110-5.5'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A: a\x01b'), 400, id='soh-in-value-rfc9110-5.5'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A: a\x1bb'), 400, id='esc-in-value-rfc9110-5.5'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A: a\x0bb'), 400, id='vt-in-value-rfc9110-5.5'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'X-A: \x00'), 400, id='nul-alone-in-value-rfc9110-5.5'),
    # RFC 9112 §3: the request line.
    pytest.param(head(b'GET  / HTTP/1.1', b'Host: h'), 400, id='two-spaces-3'),
    pytest.param(head(b'GET /  HTTP/1.1', b'Host: h'), 400, id='two-spaces-after-target-3'),
    pytest.param(head(b'GET\t/ HTTP/1.1', b'Host: h'), 400, id='tab-separator-3'),
    pytest.param(head(b'GET / http/1.1', b'Host: h'), 400, id='lower-case-http-2.3'),
    pytest.param(head(b'GET / HTTP/1', b'Host: h'), 400, id='version-without-minor-2.3'),
    pytest.param(head(b'GET / HTTP/1.10', b'Host: h'), 400, id='two-digit-minor-2.3'),
    pytest.param(head(b'GET / HTTP/1.1 ', b'Host: h'), 400, id='trailing-space-3'),
    pytest.param(head(b' GET / HTTP/1.1', b'Host: h'), 400, id='leading-space-3'),
    pytest.param(head(b'GE(T / HTTP/1.1', b'Host: h'), 400, id='method-not-a-token-3.1'),
    pytest.param(head(b'/ HTTP/1.1', b'Host: h'), 400, id='no-method-3'),
    pytest.param(head(b'GET HTTP/1.1', b'Host: h'), 400, id='no-target-3'),
    pytest.param(head(b'GET /', b'Host: h'), 400, id='http-0.9-request-line-3'),
    pytest.param(head(b'', b'Host: h'), 400, id='empty-request-line-3'),
    # RFC 9110 §15.6.6 allows 505; brimd answers 400 on purpose (a client's
    # mistake must not count as a server error), see parse_head.
    pytest.param(head(b'GET / HTTP/2.0', b'Host: h'), 400, id='http-2.0-400-not-505-rfc9110-15.6.6'),
    pytest.param(head(b'GET / HTTP/0.9', b'Host: h'), 400, id='http-0.9-400-not-505-rfc9110-15.6.6'),
    pytest.param(head(b'GET / HTTP/3.1'), 400, id='http-3.1-400-not-505-rfc9110-15.6.6'),
    # RFC 9112 §3.2: the request target.
    pytest.param(head(b'GET foo HTTP/1.1', b'Host: h'), 400, id='target-not-a-form-3.2'),
    pytest.param(head(b'GET * HTTP/1.1', b'Host: h'), 400, id='asterisk-with-get-3.2.4'),
    pytest.param(head(b'GET example.com:80 HTTP/1.1', b'Host: h'), 400, id='authority-form-not-connect-3.2.3'),
    pytest.param(head(b'CONNECT example.com:443 HTTP/1.1', b'Host: h'), 400, id='connect-not-served-3.2.3'),
    pytest.param(head(b'GET http:// HTTP/1.1', b'Host: h'), 400, id='absolute-form-without-host-3.2.2'),
    pytest.param(head(b'GET http:///p HTTP/1.1', b'Host: h'), 400, id='absolute-form-empty-host-3.2.2'),
    pytest.param(head(b'GET http://user@host/ HTTP/1.1', b'Host: h'), 400, id='absolute-form-userinfo-rfc9110-4.2.4'),
    pytest.param(head(b'GET ftp://host/ HTTP/1.1', b'Host: h'), 400, id='absolute-form-other-scheme-3.2'),
    pytest.param(head(b'GET /a b HTTP/1.1', b'Host: h'), 400, id='space-in-target-3.2'),
    pytest.param(head(b'GET /a\x01b HTTP/1.1', b'Host: h'), 400, id='control-in-target-3.2'),
    pytest.param(head(b'GET /a\tb HTTP/1.1', b'Host: h'), 400, id='htab-in-target-3.2'),
    pytest.param(head(b'GET /a\x7fb HTTP/1.1', b'Host: h'), 400, id='del-in-target-rfc3986-2'),
    pytest.param(head(b'GET /caf\xe9 HTTP/1.1', b'Host: h'), 400, id='non-ascii-in-target-rfc3986-2'),
    pytest.param(head(b'GET /a\x00b HTTP/1.1', b'Host: h'), 400, id='nul-in-target-3.2'),
    # RFC 9112 §3.2: Host.
    pytest.param(head(b'GET / HTTP/1.1'), 400, id='no-host-1.1-3.2'),
    pytest.param(head(b'GET http://h/ HTTP/1.1'), 400, id='no-host-absolute-form-1.1-3.2'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'Host: h'), 400, id='two-hosts-same-3.2'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', b'Host: i'), 400, id='two-hosts-different-3.2'),
    pytest.param(head(b'GET / HTTP/1.0', b'Host: h', b'host: i'), 400, id='two-hosts-1.0-3.2'),
    # RFC 9112 §6.3; RFC 9110 §8.6: Content-Length.
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: +1'), 400, id='cl-plus-rfc9110-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: -1'), 400, id='cl-minus-rfc9110-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length:  '), 400, id='cl-blank-rfc9110-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 1,1'), 400, id='cl-list-6.3'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 1 1'), 400, id='cl-two-numbers-6.3'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 0x10'), 400, id='cl-hex-rfc9110-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 1.0'), 400, id='cl-decimal-rfc9110-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', 'Content-Length: \uff11'.encode()), 400,
                 id='cl-full-width-digit-utf8-rfc9110-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: \xb2'), 400,
                 id='cl-superscript-two-latin1-rfc9110-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 1\xb2'), 400,
                 id='cl-digit-then-superscript-rfc9110-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 1000000000000000000'), 400,
                 id='cl-19-digits-rfc9110-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 0000000000000000001'), 400,
                 id='cl-19-digits-leading-zeros-rfc9110-8.6'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 1', b'Content-Length: 1'), 400,
                 id='two-cl-same-6.3'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 1', b'Content-Length: 2'), 400,
                 id='two-cl-different-6.3'),
    # RFC 9112 §6.1, §6.3, §7: Transfer-Encoding.
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Content-Length: 3', b'Transfer-Encoding: chunked'), 400,
                 id='cl-and-te-6.1'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: chunked', b'Content-Length: 3'), 400,
                 id='te-and-cl-6.1'),
    pytest.param(head(b'POST / HTTP/1.0', b'Transfer-Encoding: chunked'), 400, id='te-on-1.0-6.1'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: gzip'), 400, id='te-gzip-6.3'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: chunked, gzip'), 400,
                 id='te-chunked-not-final-6.3'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: gzip, chunked'), 400,
                 id='te-gzip-chunked-unsupported-6.1'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: identity'), 400,
                 id='te-identity-rfc9110-10.1.4'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: chunked, chunked'), 400,
                 id='te-chunked-twice-7'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: chunked', b'Transfer-Encoding: chunked'),
                 400, id='te-chunked-in-two-fields-7'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: gzip', b'Transfer-Encoding: chunked'),
                 400, id='te-split-across-fields-6.1'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding:'), 400, id='te-empty-6.1'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: "chunked"'), 400, id='te-quoted-6.1'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: xchunked'), 400, id='te-xchunked-6.1'),
    pytest.param(head(b'POST / HTTP/1.1', b'Host: h', b'Transfer-Encoding: chunked;q=1'), 400,
                 id='te-chunked-with-parameter-6.1'),
]


@pytest.mark.parametrize('data, status', REFUSE)
def test_parse_head_refuses(data, status):
    assert status_of(data) == status


@pytest.mark.parametrize('line, expected', [
    pytest.param(b'Host: h', ('host', 'h'), id='simple-5.1'),
    pytest.param(b'X-A:\t v \t', ('x-a', 'v'), id='ows-trimmed-5.1'),
    pytest.param(b'X-A: caf\xe9', ('x-a', 'caf\xe9'), id='obs-text-rfc9110-5.5'),
    pytest.param(b'X-A: a:b', ('x-a', 'a:b'), id='colon-in-value-5.1'),
])
def test_parse_field_accepts(line, expected):
    """The field-line rules, shared by heads and trailer sections (RFC 9112 §5, §7.1.2)."""
    assert parse_field(line) == expected


@pytest.mark.parametrize('line', [
    pytest.param(b' X-A: v', id='obs-fold-5.2'),
    pytest.param(b'X-A v', id='no-colon-5.1'),
    pytest.param(b'X-A : v', id='space-before-colon-5.1'),
    pytest.param(b': v', id='empty-name-5.1'),
    pytest.param(b'X(A): v', id='non-token-name-rfc9110-5.1'),
    pytest.param(b'X-A: a\x00b', id='nul-rfc9110-5.5'),
    pytest.param(b'X-A: a\x7f', id='del-rfc9110-5.5'),
    pytest.param(b'X-A: a\rb', id='cr-rfc9110-5.5'),
    pytest.param(b'X-A: a\nb', id='lf-rfc9110-5.5'),
    pytest.param(b'', id='empty-line'),
])
def test_parse_field_refuses(line):
    with pytest.raises(HeadError) as info:
        parse_field(line)
    assert info.value.status == 400


def test_head_error_carries_status_and_reason():
    with pytest.raises(HeadError) as info:
        parse_head(head(b'GET / HTTP/1.1'), DEFAULT)
    err = info.value
    assert err.status == 400
    assert err.reason == 'no Host header'
    assert str(err) == '400 no Host header'
    assert isinstance(err, Exception)


@pytest.mark.parametrize('status', [400, 414, 431])
def test_head_error_fields(status):
    err = HeadError(status, 'why')
    assert (err.status, err.reason, str(err)) == (status, 'why', '%d why' % status)


# -- limits ----------------------------------------------------------------------

#: Small limits, so the cases are short.
SMALL = Limits(max_request_line=40, max_header_line=30, max_headers=6, max_header_size=120)


def request_line_of(length):
    """A valid request line of exactly ``length`` bytes."""
    line = b'GET /' + b'a' * (length - len(b'GET / HTTP/1.1')) + b' HTTP/1.1'
    assert len(line) == length
    return line


def field_of(length, name=b'X-A'):
    """A valid field line of exactly ``length`` bytes."""
    line = name + b': ' + b'v' * (length - len(name) - 2)
    assert len(line) == length
    return line


def head_of_size(size, limits=SMALL):
    """A valid head of exactly ``size`` bytes, CRLFs included (Limits' docstring),
    with field lines shorter than ``max_header_line``."""
    start = b'GET / HTTP/1.1\r\nHost: h\r\n'
    left = size - len(start) - 2
    count = -(-left // (limits.max_header_line + 1))
    sizes = [left // count + (i < left % count) for i in range(count)]
    fields = [field_of(n - 2, b'X-%d' % i) + b'\r\n' for i, n in enumerate(sizes)]
    data = start + b''.join(fields) + b'\r\n'
    assert len(data) == size and count < limits.max_headers
    return data


AT_LIMIT = [
    pytest.param(head(request_line_of(SMALL.max_request_line), b'Host: h'), id='max_request_line'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', field_of(SMALL.max_header_line)), id='max_header_line'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', *[b'X-%d: v' % i for i in range(SMALL.max_headers - 1)]),
                 id='max_headers'),
    pytest.param(head_of_size(SMALL.max_header_size), id='max_header_size'),
]

OVER_LIMIT = [
    pytest.param(head(request_line_of(SMALL.max_request_line + 1), b'Host: h'), 414,
                 id='max_request_line-414-rfc9110-15.5.15'),
    pytest.param(head(request_line_of(SMALL.max_request_line * 4), b'Host: h'), 414,
                 id='max_request_line-far-414-rfc9110-15.5.15'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', field_of(SMALL.max_header_line + 1)), 431,
                 id='max_header_line-431-rfc6585-5'),
    pytest.param(head(b'GET / HTTP/1.1', field_of(SMALL.max_header_line + 1), b'Host: h'), 431,
                 id='max_header_line-first-field-431-rfc6585-5'),
    pytest.param(head(b'GET / HTTP/1.1', b'Host: h', *[b'X-%d: v' % i for i in range(SMALL.max_headers)]), 431,
                 id='max_headers-431-rfc6585-5'),
    pytest.param(head_of_size(SMALL.max_header_size + 3), 431, id='max_header_size-plus-3-431-rfc6585-5'),
    pytest.param(head_of_size(SMALL.max_header_size + 1), 431,
                 id='max_header_size-plus-1-431-rfc6585-5'),
]


@pytest.mark.parametrize('data', AT_LIMIT)
def test_limit_exactly_reached_passes(data):
    parse(data, SMALL)


@pytest.mark.parametrize('data, status', OVER_LIMIT)
def test_limit_passed_by_one_byte_is_refused(data, status):
    assert status_of(data, SMALL) == status


def test_default_limits():
    """The defaults the options registry documents."""
    assert Limits() == Limits(8192, 8192, 100, 65536)


def test_414_wins_over_431_for_a_long_request_line():
    """Limits: the head is too long, but the request line alone is too: 414."""
    tiny = Limits(max_request_line=40, max_header_line=30, max_headers=4, max_header_size=30)
    assert status_of(head(request_line_of(41), b'Host: h'), tiny) == 414


# -- head_size_error: a head still being received ---------------------------------

def prefixes(data):
    return [data[:i] for i in range(1, len(data) + 1)]


@pytest.mark.parametrize('kind, data, limit, status', [
    pytest.param('request line', request_line_of(SMALL.max_request_line + 10), SMALL.max_request_line, 414,
                 id='request-line-414'),
    pytest.param('header line', b'GET / HTTP/1.1\r\nHost: h\r\n' + field_of(SMALL.max_header_line + 10),
                 SMALL.max_header_line, 431, id='header-line-431'),
])
def test_head_size_error_byte_by_byte(kind, data, limit, status):
    """None until the line being received passes its limit, then the status."""
    line_start = data.rfind(b'\r\n') + 2 if b'\r\n' in data else 0
    for prefix in prefixes(data):
        error = head_size_error(prefix, SMALL)
        if len(prefix) - line_start <= limit:
            assert error is None, (kind, prefix)
        else:
            assert isinstance(error, HeadError) and error.status == status, (kind, prefix)


def test_head_size_error_whole_head_size_byte_by_byte():
    data = head_of_size(SMALL.max_header_size + 10)
    for prefix in prefixes(data):
        error = head_size_error(prefix, SMALL)
        if len(prefix) <= SMALL.max_header_size:
            assert error is None, prefix
        else:
            assert error is not None and error.status == 431, prefix


# A line exactly at its limit whose CR came without its LF is not over it.
AT_LIMIT_SPLIT = [
    pytest.param(*AT_LIMIT[0].values, id='max_request_line'),
    pytest.param(*AT_LIMIT[1].values, id='max_header_line'),
    AT_LIMIT[2],
    AT_LIMIT[3],
]


@pytest.mark.parametrize('data', AT_LIMIT_SPLIT)
def test_head_size_error_never_refuses_a_head_within_the_limits(data):
    """Whatever way the head is split across reads, a head parse_head accepts
    is never refused while it is still arriving (read_head checks each
    prefix that lacks the final CRLF CRLF)."""
    parse(data, SMALL)
    for prefix in prefixes(data)[:-1]:
        error = head_size_error(prefix, SMALL)
        assert error is None, (prefix, error)


# -- chunk_size (RFC 9112 §7.1) -----------------------------------------------------

@pytest.mark.parametrize('line, size', [
    pytest.param(b'0', 0, id='last-chunk-7.1'),
    pytest.param(b'000', 0, id='last-chunk-zeros-7.1'),
    pytest.param(b'a', 10, id='lower-hex-rfc5234-b.1'),
    pytest.param(b'A', 10, id='upper-hex-rfc5234-b.1'),
    pytest.param(b'1f4', 500, id='several-digits-7.1'),
    pytest.param(b'ffffffffffffffff', 2 ** 64 - 1, id='16-digits-7.1'),
    pytest.param(b'0000000000000005', 5, id='16-digits-leading-zeros-7.1'),
    pytest.param(b'5;a', 5, id='ext-name-7.1.1'),
    pytest.param(b'5;a=b', 5, id='ext-name-value-7.1.1'),
    pytest.param(b'5 ; a = "q\\"x"', 5, id='ext-bws-quoted-pair-7.1.1'),
    pytest.param(b'5;a=b;c', 5, id='two-exts-7.1.1'),
    pytest.param(b'5\t;\ta\t=\tb', 5, id='ext-bws-htab-7.1.1'),
    pytest.param(b'5;a=""', 5, id='ext-empty-quoted-7.1.1'),
    pytest.param(b'5;a="x;y=z"', 5, id='ext-quoted-separators-7.1.1'),
    pytest.param(b'5;a="\xe9"', 5, id='ext-quoted-obs-text-rfc9110-5.6.4'),
    pytest.param(b'0;last', 0, id='last-chunk-ext-7.1.1'),
])
def test_chunk_size_accepts(line, size):
    assert chunk_size(line) == size


@pytest.mark.parametrize('line', [
    pytest.param(b'0x5', id='0x-prefix'),
    pytest.param(b'-5', id='minus'),
    pytest.param(b'+5', id='plus'),
    pytest.param(b' 5', id='space-before'),
    pytest.param(b'5 ', id='space-after-no-ext'),
    pytest.param(b'\t5', id='htab-before'),
    pytest.param(b'5_0', id='underscore'),
    pytest.param(b'1' + b'0' * 16, id='17-digits'),
    pytest.param(b'0' * 17, id='17-zeros'),
    pytest.param(b'g', id='not-hex'),
    pytest.param(b'', id='empty'),
    pytest.param(b';a', id='ext-without-size'),
    pytest.param(b'5;', id='ext-without-name'),
    pytest.param(b'5;=b', id='ext-empty-name'),
    pytest.param(b'5;a=', id='ext-empty-value'),
    pytest.param(b'5;a=b=c', id='ext-two-equals'),
    pytest.param(b'5;a="b', id='ext-unterminated-quote'),
    pytest.param(b'5;a="b"c', id='ext-text-after-quote'),
    pytest.param(b'5;a b', id='ext-space-in-name'),
    pytest.param(b'5;a=\xe9', id='ext-obs-text-unquoted'),
    pytest.param(b'5;a="\x00"', id='ext-nul-in-quoted'),
    pytest.param(b'5\x00', id='nul-after'),
    pytest.param(b'\x005', id='nul-before'),
    pytest.param(b'5\r', id='bare-cr'),
    pytest.param(b'5\n', id='bare-lf'),
    pytest.param('\uff15'.encode(), id='full-width-digit'),
    pytest.param(b'\xb2', id='superscript-two'),
])
def test_chunk_size_refuses(line):
    """RFC 9112 §7.1: chunk-size = 1*HEXDIG, then chunk-ext (§7.1.1); nothing else."""
    with pytest.raises(HeadError) as info:
        chunk_size(line)
    assert info.value.status == 400


# -- nothing but HeadError ---------------------------------------------------------

def garbage(seed):
    """Random bytes, some shaped like a head, every one ending with CRLF CRLF."""
    rng = random.Random(seed)
    alphabet = b'GET /HTP1.0\r\n:;, \t\x00\x7f\x80\xffHostContent-LengthTransfer-Encodingchunked0123456789'
    size = rng.randrange(0, 200)
    if seed % 2:
        body = bytes(rng.choice(alphabet) for _ in range(size))
    else:
        body = bytes(rng.randrange(256) for _ in range(size))
    return body + b'\r\n\r\n'


def mutations(seed):
    """A valid head with a few bytes replaced, inserted or removed."""
    rng = random.Random(seed)
    data = bytearray(head(b'POST http://h/p?q HTTP/1.1', b'Host: h', b'Connection: close',
                          b'Transfer-Encoding: chunked', b'Expect: 100-continue'))
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(data) - 4)
        action = rng.randrange(3)
        if action == 0:
            data[at] = rng.randrange(256)
        elif action == 1:
            data.insert(at, rng.choice(b'\r\n \t:,;\x00'))
        else:
            del data[at]
    return bytes(data)


@pytest.mark.parametrize('data', [garbage(seed) for seed in range(100)] + [mutations(seed) for seed in range(300)]
                         + [b'', b'\r\n\r\n', b'\r\n' * 50, b'\x00' * 64, b'\xff' * 64 + b'\r\n\r\n'])
def test_only_head_error_escapes(data):
    """Module docstring: every rejection is a HeadError and nothing else."""
    try:
        result = parse_head(data, SMALL)
    except HeadError as err:
        assert err.status in (400, 414, 431)  # HeadError's docstring
        assert isinstance(err.reason, str) and err.reason
    else:
        assert result.version in ('HTTP/1.1', 'HTTP/1.0')
        assert result.content_length is None or not result.chunked


@pytest.mark.parametrize('seed', range(100))
def test_chunk_size_only_head_error_escapes(seed):
    rng = random.Random(seed)
    line = bytes(rng.choice(b'0123456789abcdefABCDEFxg;= \t"\\\x00\x80\xff') for _ in range(rng.randrange(30)))
    try:
        size = chunk_size(line)
    except HeadError as err:
        assert err.status == 400
    else:
        assert 0 <= size < 2 ** 64
