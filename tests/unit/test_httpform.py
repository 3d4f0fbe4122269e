"""Tests for brim.httpform: iter_form, parse_attrs, CappedFileLikeObject."""

import io

import pytest

from brim.httpform import CappedFileLikeObject, FormInvalid, FormTooLarge, iter_form, parse_attrs

BOUNDARY = '----brimBoundary7MA4YWxk'
FIELDS = [
    ([('Content-Disposition', 'form-data; name="a"')], b'hello'),
    ([('Content-Disposition', 'form-data; name="f"; filename="x.txt"'), ('Content-Type', 'text/plain')],
     b'line one\r\nline two\r\n--' + BOUNDARY[:-3].encode() + b'\r\n'),
    ([('Content-Disposition', 'form-data; name="empty"')], b''),
    ([('Content-Disposition', 'form-data; name="bin"')], bytes(range(256)) * 3),
]


def make_body(parts, boundary=BOUNDARY, preamble=b'', epilogue=b''):
    out = [preamble + (b'\r\n' if preamble else b'')]
    for headers, content in parts:
        out.append(b'--' + boundary.encode() + b'\r\n')
        for name, value in headers:
            out.append(('%s: %s\r\n' % (name, value)).encode('utf-8'))
        out.append(b'\r\n' + content + b'\r\n')
    out.append(b'--' + boundary.encode() + b'--' + epilogue)
    return b''.join(out)


class Trickle(io.RawIOBase):
    """An input that returns at most ``step`` bytes per read, like a slow socket."""

    def __init__(self, data, step):
        self.data = io.BytesIO(data)
        self.step = step

    def readable(self):
        return True

    def read(self, size=-1):
        if size is None or size < 0:
            size = self.step
        return self.data.read(min(size, self.step))


def make_env(body, content_type=None, length=True, wsgi_input=None):
    env = {'CONTENT_TYPE': content_type or 'multipart/form-data; boundary=%s' % BOUNDARY,
           'wsgi.input': wsgi_input if wsgi_input is not None else io.BytesIO(body)}
    if length:
        env['CONTENT_LENGTH'] = str(len(body))
    return env


def read_all(env, **kwargs):
    return [(part.headers, part.fp.read()) for part in iter_form(env, **kwargs)]


@pytest.mark.parametrize('chunk', [1, 2, 3, 7, 64, 4096, 65536])
def test_parts_whole_and_in_tiny_chunks(chunk):
    assert read_all(make_env(make_body(FIELDS)), read_chunk_size=chunk) == FIELDS


@pytest.mark.parametrize('step', [1, 5, 100])
def test_trickling_input(step):
    body = make_body(FIELDS)
    assert read_all(make_env(body, wsgi_input=Trickle(body, step))) == FIELDS


@pytest.mark.parametrize('length', [True, False], ids=['content-length', 'chunked'])
def test_preamble_and_epilogue_ignored(length):
    body = make_body(FIELDS, preamble=b'This is the preamble.', epilogue=b'\r\nthe epilogue\r\n')
    assert read_all(make_env(body, length=length)) == FIELDS


def test_data_past_content_length_is_not_read():
    body = make_body(FIELDS)
    stream = io.BytesIO(body + b'NEXT REQUEST')
    env = make_env(body, wsgi_input=stream)
    assert read_all(env, read_chunk_size=7) == FIELDS
    assert stream.read() == b'NEXT REQUEST'


def test_unread_and_partly_read_parts_are_skipped():
    parts = list(iter_form(make_env(make_body(FIELDS)), read_chunk_size=5))
    assert [part.headers for part in parts] == [headers for headers, _content in FIELDS]
    got = []
    for index, part in enumerate(iter_form(make_env(make_body(FIELDS)), read_chunk_size=5)):
        if index == 1:
            got.append(part.fp.read(4))
        elif index == 3:
            got.append(part.fp.read())
    assert got == [b'line', FIELDS[3][1]]


def test_part_fp_is_a_binary_file():
    for part in iter_form(make_env(make_body(FIELDS[1:2]))):
        assert part.fp.readline() == b'line one\r\n'
        assert list(part.fp) == [b'line two\r\n', b'--' + BOUNDARY[:-3].encode() + b'\r\n']
        assert part.fp.read() == b''


@pytest.mark.parametrize('name', ['content-disposition', 'Content-Disposition', 'CONTENT-DISPOSITION'])
def test_get_header_any_case(name):
    part = next(iter_form(make_env(make_body(FIELDS))))
    assert part.get_header(name) == 'form-data; name="a"'
    assert part.getheader(name) == 'form-data; name="a"'
    assert part.get_header('x-missing', 'dflt') == 'dflt'


@pytest.mark.parametrize('raw, expected', [
    # No parts at all.
    (b'--B--', []),
    (b'--B--\r\n', []),
    # Transport padding after the boundary (RFC 2046).
    (b'--B \t\r\nX: 1\r\n\r\nv\r\n--B--', [([('X', '1')], b'v')]),
    # Obsolete folded header.
    (b'--B\r\nX: a\r\n b\r\n\r\nv\r\n--B--', [([('X', 'a b')], b'v')]),
    # No headers.
    (b'--B\r\n\r\nv\r\n--B--', [([], b'v')]),
    # Content that looks like a boundary but is not preceded by CRLF.
    (b'--B\r\n\r\nx--B y\r\n--B--', [([], b'x--B y')]),
    # A partial delimiter inside content.
    (b'--B\r\n\r\nx\r\n--C\r\n-\r\n--\r\n--B--', [([], b'x\r\n--C\r\n-\r\n--')]),
    # UTF-8 header values (RFC 7578 section 5.1).
    ('--B\r\nContent-Disposition: form-data; filename="\u20ac.txt"\r\n\r\n\r\n--B--'.encode(),
     [([('Content-Disposition', 'form-data; filename="\u20ac.txt"')], b'')]),
])
@pytest.mark.parametrize('chunk', [1, 3, 65536])
def test_edge_bodies(raw, expected, chunk):
    assert read_all(make_env(raw, 'multipart/form-data; boundary=B'), read_chunk_size=chunk) == expected


@pytest.mark.parametrize('content_type', [
    'multipart/form-data; boundary="B"', 'Multipart/Form-Data; Boundary=B',
    'multipart/form-data; charset=utf-8; boundary=B'])
def test_boundary_forms(content_type):
    raw = b'--B\r\n\r\nv\r\n--B--'
    assert read_all(make_env(raw, content_type)) == [([], b'v')]


@pytest.mark.parametrize('content_type', [
    '', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data',
    'multipart/form-data; boundary=', 'multipart/form-data; boundary="%s"' % ('x' * 71),
    'multipart/form-data; boundary=\u20ac'])
def test_bad_content_type_is_invalid(content_type):
    env = make_env(b'--B\r\n\r\nv\r\n--B--', content_type)
    with pytest.raises(FormInvalid):
        read_all(env)


@pytest.mark.parametrize('length', ['abc', '-1'])
def test_bad_content_length_is_invalid(length):
    env = make_env(b'--B--', 'multipart/form-data; boundary=B')
    env['CONTENT_LENGTH'] = length
    with pytest.raises(FormInvalid):
        read_all(env)


def test_every_truncation_is_invalid():
    body = make_body(FIELDS[:2])
    close = b'--' + BOUNDARY.encode() + b'--'
    for cut in range(len(body) - len(close) + 2):
        env = make_env(body[:cut])
        with pytest.raises(FormInvalid):
            read_all(env, read_chunk_size=5)


@pytest.mark.parametrize('raw', [
    b'no boundary anywhere in this body at all' * 1000,
    b'--B\r\n\r\ncontent that never sees its closing delimiter' * 1000,
    b'--B\r\nno blank line after headers',
    b'--B',
])
@pytest.mark.parametrize('length', [True, False])
def test_boundary_never_comes_is_invalid(raw, length):
    with pytest.raises(FormInvalid):
        read_all(make_env(raw, 'multipart/form-data; boundary=B', length=length))


@pytest.mark.parametrize('raw', [
    b'--Bjunk\r\n\r\nv\r\n--B--',
    b'--B\r\nno colon here\r\n\r\nv\r\n--B--',
    b'--B\r\n folded first\r\n\r\nv\r\n--B--',
    b'--B\r\n: no name\r\n\r\nv\r\n--B--',
    b'--B\r\n\r\nv\r\n--Bx\r\n\r\nw\r\n--B--',
])
def test_malformed_is_invalid(raw):
    with pytest.raises(FormInvalid) as caught:
        read_all(make_env(raw, 'multipart/form-data; boundary=B'))
    assert not isinstance(caught.value, FormTooLarge)


@pytest.mark.parametrize('raw', [
    b'--B\r\nX: ' + b'a' * 100 + b'\r\n\r\nv\r\n--B--',
    b'--B\r\n' + b'X: a\r\n' * 30 + b'\r\nv\r\n--B--',
    b'--B\r\nX: ' + b'a' * 10000,
])
def test_oversized_headers_are_too_large(raw):
    with pytest.raises(FormTooLarge):
        read_all(make_env(raw, 'multipart/form-data; boundary=B'), max_header_size=64)


def test_oversized_part_is_too_large():
    raw = b'--B\r\n\r\n' + b'x' * 100 + b'\r\n--B--'
    assert read_all(make_env(raw, 'multipart/form-data; boundary=B'), max_part_size=100)[0][1] == b'x' * 100
    with pytest.raises(FormTooLarge):
        read_all(make_env(raw, 'multipart/form-data; boundary=B'), max_part_size=99)


def test_too_large_is_invalid_subclass():
    assert issubclass(FormTooLarge, FormInvalid)


@pytest.mark.parametrize('header, expected', [
    ('form-data; name="abc"; filename="test.html"', ('form-data', {'name': 'abc', 'filename': 'test.html'})),
    ('form-data;name=abc', ('form-data', {'name': 'abc'})),
    ('  form-data  ;  NAME = "a b" ', ('form-data', {'name': 'a b'})),
    ('form-data; name="a;b=c"; x=1', ('form-data', {'name': 'a;b=c', 'x': '1'})),
    (r'form-data; filename="a\"b\\c"', ('form-data', {'filename': 'a"b\\c'})),
    ('attachment; filename="x.txt"; filename*=UTF-8\'\'%e2%82%ac%20rates.txt',
     ('attachment', {'filename': '\u20ac rates.txt'})),
    ('attachment; filename*=iso-8859-1\'en\'%A3%20rates', ('attachment', {'filename': '\u00a3 rates'})),
    ('attachment; filename*=bogus-charset\'\'x', ('attachment', {'filename*': "bogus-charset''x"})),
    ('attachment; filename*=no-quotes', ('attachment', {'filename*': 'no-quotes'})),
    ('form-data; novalue; name=x', ('form-data', {'name': 'x'})),
    ('form-data; name="unterminated', ('form-data', {'name': 'unterminated'})),
    ('form-data; =x; ;', ('form-data', {})),
    ('', ('', {})),
])
def test_parse_attrs(header, expected):
    assert parse_attrs(header) == expected


@pytest.mark.parametrize('data, cap, sizes, expected', [
    (b'abcdef', 6, [-1], [b'abcdef']),
    (b'abcdef', 6, [None], [b'abcdef']),
    (b'abcdef', 6, [2, 2, 2, 5], [b'ab', b'cd', b'ef', b'']),
    (b'abc', 100, [-1, -1], [b'abc', b'']),
    (b'', 0, [-1], [b'']),
])
def test_capped_reads_within_cap(data, cap, sizes, expected):
    capped = CappedFileLikeObject(io.BytesIO(data), cap)
    assert [capped.read(size) for size in sizes] == expected


@pytest.mark.parametrize('data, cap, sizes', [
    (b'abcdefg', 6, [-1]),
    (b'abcdefg', 6, [4, 4]),
    (b'abcdefg', 0, [1]),
])
def test_capped_reads_past_cap_raise_eof(data, cap, sizes):
    capped = CappedFileLikeObject(io.BytesIO(data), cap)
    with pytest.raises(EOFError):
        for size in sizes:
            capped.read(size)


def test_capped_read_all_never_reads_far_past_cap():
    stream = io.BytesIO(b'x' * 10000)
    with pytest.raises(EOFError):
        CappedFileLikeObject(stream, 10).read()
    assert stream.tell() == 11


def test_capped_readline():
    capped = CappedFileLikeObject(io.BytesIO(b'ab\ncd\nefgh\n'), 7)
    assert capped.readline() == b'ab\n'
    assert capped.readline(2) == b'cd'
    assert capped.readline() == b'\n'
    with pytest.raises(EOFError):
        capped.readline()


def test_capped_form_part():
    raw = b'--B\r\n\r\n' + b'x' * 50 + b'\r\n--B--'
    with pytest.raises(EOFError):
        for part in iter_form(make_env(raw, 'multipart/form-data; boundary=B')):
            CappedFileLikeObject(part.fp, 49).read()
