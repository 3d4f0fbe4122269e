"""Tests for brim.server.httpconn: one client connection over a socketpair.

The server end of a blocking ``socket.socketpair()`` goes to a
:class:`Connection` whose runner is a ``SimpleNamespace`` and whose
subserver is a :class:`Sub` wrapping a tiny WSGI app; the test talks HTTP
on the client end. ``Connection.run`` runs in a daemon thread joined with a
timeout, and every socket has a timeout, so no test can hang. What
``brim.server.wsgi`` adds on top (500 for an app that raises, answering an
uncaught ``wsgi.input`` error) is tested there, not here.
"""

import logging
import socket
import sys
import threading
import types

import pytest

from brim.http import HTTPBadRequest, HTTPContentTooLarge, HTTPRequestTimeout
from brim.server import httpconn
from brim.server.http1 import Limits
from brim.server.httpconn import Connection, RequestBody

#: Seconds a test waits for anything at most (nothing should come near it).
WAIT = 5.0


class Sub:
    """A stand-in subserver: calls ``app``, records refusals."""

    def __init__(self, app):
        self.app = app
        self.rejected = []
        self.calls = 0
        self.logger = logging.getLogger('test')

    def __call__(self, env, start_response):
        self.calls += 1
        return self.app(env, start_response)

    def count_rejected(self, code):
        self.rejected.append(code)


class OneByteSocket:
    """The server's socket, receiving one byte per recv(): the parser fed byte by byte."""

    def __init__(self, sock):
        self.sock = sock

    def recv(self, size):
        return self.sock.recv(1)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def make_runner(sub, **overrides):
    values = dict(sub=sub, timeout=1.0, limits=Limits(), max_body_size=0, in_chunk=4, out_min=1, tls=False,
                  draining=False, yield_now=lambda: None,
                  connection_environ=lambda sock, address: {'REMOTE_ADDR': address[0], 'REMOTE_PORT': str(address[1]),
                                                            'wsgi.url_scheme': 'http'})
    values.update(overrides)
    return types.SimpleNamespace(**values)


class Client:
    """The client end: send bytes, read responses."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError('closed')
        self.buf += data

    def read_until(self, marker):
        while marker not in self.buf:
            self._fill()
        end = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:end], self.buf[end:]
        return data

    def read_exactly(self, size):
        while len(self.buf) < size:
            self._fill()
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def read_to_end(self):
        while True:
            try:
                self._fill()
            except EOFError:
                break
        data, self.buf = self.buf, b''
        return data

    def at_end(self):
        """True if the server closed the connection (after what is buffered)."""
        if self.buf:
            return False
        try:
            return self.sock.recv(1) == b''
        except ConnectionResetError:
            return True

    def response(self, method='GET'):
        """Read one response: (status code, headers as (lower name, value) pairs, body, raw body bytes)."""
        head = self.read_until(b'\r\n\r\n')
        lines = head[:-4].decode('latin-1').split('\r\n')
        version, code, _ = lines[0].split(' ', 2)
        assert version == 'HTTP/1.1'
        headers = [(name.lower(), value.strip()) for name, _, value in (line.partition(':') for line in lines[1:])]
        fields = dict(headers)
        code = int(code)
        if method == 'HEAD' or code in (204, 304) or code < 200:
            return code, headers, b'', b''
        if 'content-length' in fields:
            body = self.read_exactly(int(fields['content-length']))
            return code, headers, body, body
        if fields.get('transfer-encoding') == 'chunked':
            raw, body = b'', b''
            while True:
                line = self.read_until(b'\r\n')
                raw += line
                size = int(line[:-2], 16)
                if not size:
                    raw += self.read_until(b'\r\n')
                    return code, headers, body, raw
                data = self.read_exactly(size + 2)
                raw += data
                assert data.endswith(b'\r\n')
                body += data[:-2]
        body = self.read_to_end()
        return code, headers, body, body


class Served:
    """One Connection running in a thread, and the client end."""

    def __init__(self, app, one_byte=False, **runner):
        self.sub = Sub(app)
        server, client = socket.socketpair()
        server.settimeout(WAIT)
        client.settimeout(WAIT)
        self.server = server
        self.client = Client(client)
        self.runner = make_runner(self.sub, **runner)
        self.conn = Connection(self.runner, OneByteSocket(server) if one_byte else server, ('192.0.2.1', 4321))
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.conn.run()
        except BaseException as err:  # pragma: no cover (run() catches everything)
            self.error = err

    def finish(self):
        """Close the client end; wait for the connection's thread to end."""
        self.client.sock.close()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        self.server.close()
        assert self.error is None

    def wait_closed(self):
        """Wait for the connection's thread to end, once the client has seen
        the server's end of the stream: stop sending, so that a lingering
        close ends now rather than after its timeout."""
        self.client.sock.shutdown(socket.SHUT_WR)
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


@pytest.fixture
def serve():
    made = []

    def start(app, **kwargs):
        served = Served(app, **kwargs)
        made.append(served)
        return served

    yield start
    for served in made:
        served.finish()


def fields(headers):
    return dict(headers)


def names(headers):
    return [name for name, _ in headers]


def code_and_body(response):
    code, _, body, _ = response
    return code, body


def hello(env, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello']


GET = b'GET / HTTP/1.1\r\nHost: h\r\n\r\n'


# -- responses: framing (RFC 9112 §6) ----------------------------------------------

def test_get_gets_200_with_content_length_and_date(serve):
    served = serve(hello)
    served.client.send(GET)
    code, headers, body, _ = served.client.response()
    assert code == 200
    assert body == b'hello'
    assert fields(headers)['content-length'] == '5'
    # RFC 9110 §6.6.1: an origin server with a clock MUST send Date.
    assert fields(headers)['date'].endswith(' GMT')
    assert fields(headers)['content-type'] == 'text/plain'
    assert 'connection' not in fields(headers)
    served.client.send(GET)  # RFC 9112 §9.3: HTTP/1.1 stays open
    assert served.client.response()[2] == b'hello'


def test_app_date_is_kept(serve):
    def app(env, start_response):
        start_response('200 OK', [('Date', 'Sun, 06 Nov 1994 08:49:37 GMT')])
        return [b'']
    served = serve(app)
    served.client.send(GET)
    _, headers, _, _ = served.client.response()
    assert [value for name, value in headers if name == 'date'] == ['Sun, 06 Nov 1994 08:49:37 GMT']


def test_list_body_gets_content_length(serve):
    def app(env, start_response):
        start_response('200 OK', [])
        return [b'ab', b'', b'cde']
    served = serve(app)
    served.client.send(GET)
    code, headers, body, _ = served.client.response()
    assert (code, body, fields(headers)['content-length']) == (200, b'abcde', '5')
    assert 'transfer-encoding' not in fields(headers)


def test_generator_body_on_http11_is_chunked(serve):
    def app(env, start_response):
        start_response('200 OK', [])
        yield b'ab'
        yield b''  # RFC 9112 §7.1: an empty chunk would end the body; it is skipped
        yield b'c' * 17
    served = serve(app)
    served.client.send(GET)
    code, headers, body, raw = served.client.response()
    assert fields(headers)['transfer-encoding'] == 'chunked'
    assert 'content-length' not in fields(headers)
    assert raw == b'2\r\nab\r\n11\r\n' + b'c' * 17 + b'\r\n0\r\n\r\n'
    served.client.send(GET)
    assert served.client.response()[2] == b'ab' + b'c' * 17


def test_small_generator_body_gets_content_length(serve):
    """A generator that ends before out_min bytes is sent whole, with Content-Length."""
    def app(env, start_response):
        start_response('200 OK', [])
        yield b'ab'
        yield b'cd'
    served = serve(app, out_min=100)
    served.client.send(GET)
    code, headers, body, _ = served.client.response()
    assert (body, fields(headers)['content-length']) == (b'abcd', '4')


def test_generator_body_on_http10_closes_the_connection(serve):
    """RFC 9112 §6.3: no chunked coding for 1.0, so the close ends the body."""
    def app(env, start_response):
        start_response('200 OK', [])
        yield b'ab'
        yield b'cd'
    served = serve(app)
    served.client.send(b'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
    code, headers, body, _ = served.client.response()
    assert (code, body) == (200, b'abcd')
    assert fields(headers)['connection'] == 'close'
    assert 'transfer-encoding' not in fields(headers) and 'content-length' not in fields(headers)
    served.wait_closed()


def test_http10_keep_alive(serve):
    """RFC 9112 §9.3: a 1.0 client asking for keep-alive is told it got it."""
    served = serve(hello)
    served.client.send(b'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
    code, headers, body, _ = served.client.response()
    assert fields(headers)['connection'] == 'keep-alive'
    served.client.send(b'GET / HTTP/1.0\r\n\r\n')
    code, headers, body, _ = served.client.response()
    assert fields(headers)['connection'] == 'close'
    assert served.client.at_end()


def test_head_sends_no_body_but_keeps_content_length(serve):
    """RFC 9110 §9.3.2: HEAD is GET without the content."""
    def app(env, start_response):
        start_response('200 OK', [('Content-Length', '5')])
        return [b'hello']
    served = serve(app)
    served.client.send(b'HEAD / HTTP/1.1\r\nHost: h\r\n\r\n' + GET)
    code, headers, body, _ = served.client.response('HEAD')
    assert (code, fields(headers)['content-length']) == (200, '5')
    # The next response starts right after the head: no body bytes were sent.
    code, headers, body, _ = served.client.response()
    assert (code, body) == (200, b'hello')


@pytest.mark.parametrize('status', ['204 No Content', '304 Not Modified'])
def test_no_body_statuses(serve, status):
    """RFC 9110 §15.3.5, §15.4.5: no content for 204 and 304, whatever the app returns."""
    def app(env, start_response):
        start_response(status, [])
        return [b'junk']
    served = serve(app)
    served.client.send(GET + GET)
    for _ in range(2):
        code, headers, _, _ = served.client.response()
        assert code == int(status[:3])
        assert 'transfer-encoding' not in fields(headers)
    served.client.sock.settimeout(0.1)
    with pytest.raises(TimeoutError):
        served.client.read_exactly(1)


def test_app_connection_close_closes(serve):
    """PEP 3333 leaves hop-by-hop fields to the server; an app's close is honoured (RFC 9112 §9.6)."""
    def app(env, start_response):
        start_response('200 OK', [('Connection', 'Close')])
        return [b'x']
    served = serve(app)
    served.client.send(GET)
    code, headers, body, _ = served.client.response()
    assert [value for name, value in headers if name == 'connection'] == ['close']
    assert served.client.at_end()


def test_hop_by_hop_app_headers_are_dropped(serve):
    """PEP 3333: hop-by-hop fields are the server's; RFC 9110 §7.6.1."""
    def app(env, start_response):
        start_response('200 OK', [('Transfer-Encoding', 'chunked'), ('Keep-Alive', 'timeout=5'),
                                  ('Connection', 'keep-alive'), ('TE', 'trailers'), ('Trailer', 'X-T'),
                                  ('Upgrade', 'h2c'), ('Proxy-Connection', 'keep-alive'), ('X-Kept', '1')])
        return [b'abc']
    served = serve(app)
    served.client.send(GET)
    code, headers, body, _ = served.client.response()
    assert body == b'abc'
    assert sorted(names(headers)) == ['content-length', 'date', 'x-kept']
    served.client.send(GET)
    assert served.client.response()[2] == b'abc'


def test_app_sending_less_than_its_content_length_closes(serve, caplog):
    """RFC 9112 §6.3: the client sees an incomplete message, told by the close."""
    def app(env, start_response):
        start_response('200 OK', [('Content-Length', '10')])
        return [b'abc']
    served = serve(app)
    served.client.send(GET)
    head = served.client.read_until(b'\r\n\r\n')
    assert b'Content-Length: 10\r\n' in head
    assert served.client.read_to_end() == b'abc'
    assert 'the app sent 3 of the 10 bytes' in caplog.text


def test_app_sending_more_than_its_content_length_is_cut_and_closes(serve):
    def app(env, start_response):
        start_response('200 OK', [('Content-Length', '3')])
        yield b'ab'
        yield b'cdef'
    served = serve(app)
    served.client.send(GET + GET)
    head = served.client.read_until(b'\r\n\r\n')
    assert b'Content-Length: 3\r\n' in head
    assert served.client.read_to_end() == b'abc'


def test_write_callable(serve):
    """PEP 3333: write() sends at once; the returned iterable follows."""
    def app(env, start_response):
        write = start_response('200 OK', [])
        write(b'ab')
        write(b'cd')
        return [b'ef']
    served = serve(app)
    served.client.send(GET)
    code, headers, body, raw = served.client.response()
    assert body == b'abcdef'
    assert raw == b'2\r\nab\r\n2\r\ncd\r\n2\r\nef\r\n0\r\n\r\n'


def test_write_with_content_length(serve):
    def app(env, start_response):
        write = start_response('200 OK', [('Content-Length', '4')])
        write(b'ab')
        return [b'cd']
    served = serve(app)
    served.client.send(GET + GET)
    for _ in range(2):
        assert served.client.response()[2] == b'abcd'


class Closing:
    """A response iterable that records close() (PEP 3333)."""

    def __init__(self, chunks, fail_at=None):
        self.chunks = chunks
        self.fail_at = fail_at
        self.closed = 0

    def __iter__(self):
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_at:
                raise RuntimeError('body failed')
            yield chunk
        if self.fail_at == len(self.chunks):
            raise RuntimeError('body failed')

    def close(self):
        self.closed += 1


@pytest.mark.parametrize('chunks, fail_at', [
    pytest.param([b'ab'], 0, id='at-once'),
    pytest.param([b'ab', b'cd'], 1, id='after-a-buffered-chunk'),
])
def test_body_raising_before_anything_is_sent_gets_500(serve, chunks, fail_at):
    result = Closing(chunks, fail_at)

    def app(env, start_response):
        start_response('200 OK', [('X-App', '1')])
        return result
    served = serve(app, out_min=1000)
    served.client.send(GET)
    code, headers, body, _ = served.client.response()
    assert (code, body) == (500, b'500 Internal Server Error\n')
    assert 'x-app' not in fields(headers)
    assert fields(headers)['connection'] == 'close'
    assert served.client.at_end()
    served.wait_closed()
    assert result.closed == 1


def test_body_raising_after_the_head_went_out_just_closes(serve):
    """Only the close can tell the client: a chunked body without its last chunk (RFC 9112 §7.1)."""
    result = Closing([b'abc', b'def'], 2)

    def app(env, start_response):
        start_response('200 OK', [])
        return result
    served = serve(app)
    served.client.send(GET + GET)
    head = served.client.read_until(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200 OK\r\n')
    assert b'Transfer-Encoding: chunked\r\n' in head
    assert served.client.read_to_end() == b'3\r\nabc\r\n3\r\ndef\r\n'
    served.wait_closed()
    assert result.closed == 1


def test_close_is_called_once_on_success(serve):
    result = Closing([b'ab', b'cd'])

    def app(env, start_response):
        start_response('200 OK', [])
        return result
    served = serve(app)
    served.client.send(GET + GET)
    assert served.client.response()[2] == b'abcd'
    assert served.client.response()[2] == b'abcd'
    served.wait_closed()
    assert result.closed == 2


def test_start_response_twice_without_exc_info_raises(serve):
    seen = []

    def app(env, start_response):
        start_response('200 OK', [])
        try:
            start_response('201 Created', [])
        except AssertionError as err:
            seen.append(err)
        return [b'x']
    served = serve(app)
    served.client.send(GET)
    assert served.client.response()[0] == 200
    assert len(seen) == 1


def test_start_response_twice_in_the_body_gets_500(serve):
    def app(env, start_response):
        start_response('200 OK', [])
        start_response('201 Created', [])
        yield b'x'
    served = serve(app)
    served.client.send(GET)
    assert code_and_body(served.client.response()) == (500, b'500 Internal Server Error\n')


def test_start_response_with_exc_info_before_the_head_replaces_it(serve):
    """PEP 3333: with exc_info and nothing sent, the new status wins."""
    def app(env, start_response):
        start_response('200 OK', [('X-A', '1')])
        try:
            raise RuntimeError('x')
        except RuntimeError:
            start_response('503 Service Unavailable', [('X-B', '1')], sys.exc_info())
        return [b'sorry']
    served = serve(app)
    served.client.send(GET)
    code, headers, body, _ = served.client.response()
    assert (code, body) == (503, b'sorry')
    assert 'x-a' not in fields(headers) and 'x-b' in fields(headers)


def test_start_response_with_exc_info_after_the_head_reraises_and_closes(serve):
    """PEP 3333: with the head sent, start_response re-raises exc_info; the
    Connection can only close (its sub, brim.server.wsgi, never raises otherwise)."""
    def app(env, start_response):
        write = start_response('200 OK', [])
        write(b'partial')
        try:
            raise RuntimeError('x')
        except RuntimeError:
            start_response('500 Internal Server Error', [], sys.exc_info())
        return [b'never']
    served = serve(app)
    served.client.send(GET + GET)
    head = served.client.read_until(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200 OK\r\n')
    assert served.client.read_to_end() == b'7\r\npartial\r\n'


@pytest.mark.parametrize('body', [
    pytest.param(['text'], id='str-in-list'),
    pytest.param((chunk for chunk in [b'a', 'text']), id='str-in-generator'),
    pytest.param([b'a', bytearray(b'b')], id='bytearray'),
    pytest.param([b'a', 5], id='int'),
])
def test_non_bytes_chunk_gets_500(serve, body):
    """PEP 3333: the body is an iterable of bytes."""
    def app(env, start_response):
        start_response('200 OK', [])
        return body
    served = serve(app, out_min=1000)
    served.client.send(GET)
    assert code_and_body(served.client.response()) == (500, b'500 Internal Server Error\n')


def test_body_before_start_response_gets_500(serve):
    def app(env, start_response):
        yield b'x'
    served = serve(app)
    served.client.send(GET)
    assert served.client.response()[0] == 500


def test_no_start_response_at_all_gets_500(serve):
    def app(env, start_response):
        return []
    served = serve(app)
    served.client.send(GET)
    assert served.client.response()[0] == 500


@pytest.mark.parametrize('status, headers', [
    pytest.param('200', [], id='status-without-reason'),
    pytest.param('OK', [], id='status-without-code'),
    pytest.param('099 Low', [], id='status-below-100'),
    pytest.param('200 OK', [('X-A', 'a\r\nX-Injected: 1')], id='crlf-in-value'),
    pytest.param('200 OK', [('X-A', 'a\x00')], id='nul-in-value'),
    pytest.param('200 OK', [('X:A', 'a')], id='colon-in-name'),
    pytest.param('200 OK', [('X-A', 1)], id='int-value'),
    pytest.param('200 OK', [['X-A', 'a']], id='list-not-tuple'),
    pytest.param('200 OK', [('Content-Length', 'ten')], id='content-length-not-digits'),
])
def test_start_response_refuses_bad_status_and_headers(serve, status, headers):
    """PEP 3333 status and header shapes; RFC 9110 §5.5: no CR, LF or NUL."""
    seen = []

    def app(env, start_response):
        try:
            start_response(status, headers)
        except ValueError as err:
            seen.append(err)
        start_response('200 OK', [])
        return [b'ok']
    served = serve(app)
    served.client.send(GET)
    assert code_and_body(served.client.response()) == (200, b'ok')
    assert len(seen) == 1


def test_non_latin1_header_value_gets_500(serve):
    """PEP 3333: header values are str of latin-1 code points."""
    def app(env, start_response):
        start_response('200 OK', [('X-A', '\u20ac')])
        return [b'x']
    served = serve(app)
    served.client.send(GET)
    assert served.client.read_to_end()[:12] == b'HTTP/1.1 500'


def test_app_sending_two_content_lengths_is_not_framed_two_ways(serve):
    def app(env, start_response):
        start_response('200 OK', [('Content-Length', '4'), ('Content-Length', '2')])
        return [b'ab']
    served = serve(app)
    served.client.send(GET)
    head = served.client.read_until(b'\r\n\r\n')
    assert head.count(b'Content-Length') <= 1 or head.startswith(b'HTTP/1.1 500')


# -- several requests on one connection (RFC 9112 §9.3) ------------------------------

def echo_path(env, start_response):
    body = ('%s %s' % (env['REQUEST_METHOD'], env['PATH_INFO'])).encode()
    start_response('200 OK', [])
    return [body]


def test_pipelined_requests_answered_in_order(serve):
    """RFC 9112 §9.3.2: responses in the order of the requests."""
    served = serve(echo_path)
    served.client.send(b''.join(b'GET /%d HTTP/1.1\r\nHost: h\r\n\r\n' % i for i in range(5))
                       + b'\r\nPOST /5 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc'
                       + b'HEAD /6 HTTP/1.1\r\nHost: h\r\n\r\n')
    for i in range(5):
        assert served.client.response()[2] == b'GET /%d' % i
    assert served.client.response()[2] == b'POST /5'
    assert served.client.response('HEAD')[0] == 200
    served.client.send(GET)
    assert served.client.response()[2] == b'GET /'


def test_request_connection_close_ends_the_connection(serve):
    """RFC 9112 §9.6: no request after one with "close" is served."""
    served = serve(echo_path)
    served.client.send(b'GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n' + GET)
    code, headers, body, _ = served.client.response()
    assert (body, fields(headers)['connection']) == (b'GET /a', 'close')
    assert served.client.read_to_end() == b''
    assert served.sub.calls == 1


@pytest.mark.parametrize('request_body', [
    pytest.param(b'Content-Length: 1000\r\n\r\n' + b'x' * 1000, id='content-length'),
    pytest.param(b'Content-Length: 65536\r\n\r\n' + b'x' * 65536, id='content-length-at-drain-limit'),
    pytest.param(b'Transfer-Encoding: chunked\r\n\r\n' + b'3e8\r\n' + b'x' * 1000 + b'\r\n0\r\n\r\n', id='chunked'),
])
def test_unread_small_body_is_drained(serve, request_body):
    served = serve(echo_path)
    served.client.send(b'POST /a HTTP/1.1\r\nHost: h\r\n' + request_body + b'GET /b HTTP/1.1\r\nHost: h\r\n\r\n')
    code, headers, body, _ = served.client.response()
    assert (code, body) == (200, b'POST /a')
    assert 'connection' not in fields(headers)
    assert served.client.response()[2] == b'GET /b'


def test_partly_read_body_is_drained(serve):
    def app(env, start_response):
        env['wsgi.input'].read(10)
        return echo_path(env, start_response)
    served = serve(app)
    served.client.send(b'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n' + b'x' * 100 + GET)
    assert served.client.response()[2] == b'POST /a'
    assert served.client.response()[2] == b'GET /'


@pytest.mark.parametrize('request_body', [
    pytest.param(b'Content-Length: 70000\r\n\r\n' + b'x' * 70000, id='content-length'),
    pytest.param(b'Transfer-Encoding: chunked\r\n\r\n' + b'11170\r\n' + b'x' * 70000 + b'\r\n0\r\n\r\n', id='chunked'),
])
def test_unread_large_body_closes(serve, request_body):
    """More than DRAIN_LIMIT bytes left unread: the connection closes rather than read them."""
    assert httpconn.DRAIN_LIMIT == 65536
    served = serve(echo_path)
    def send():
        try:
            served.client.send(b'POST /a HTTP/1.1\r\nHost: h\r\n' + request_body)
        except OSError:
            pass  # the server may close before it read everything
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    code, headers, body, _ = served.client.response()
    assert (code, body) == (200, b'POST /a')
    assert served.client.read_to_end() == b''
    sender.join(WAIT)
    served.wait_closed()
    assert served.sub.calls == 1


# RFC 9110 §10.1.1: a server that will not read the body says it closes.
@pytest.mark.parametrize('fields_', [
    pytest.param(b'Content-Length: 70000\r\n', id='large-body'),
    pytest.param(b'Content-Length: 3\r\nExpect: 100-continue\r\n', id='100-continue-not-read'),
])
def test_unread_body_response_says_close(serve, fields_):
    served = serve(echo_path)
    served.client.send(b'POST /a HTTP/1.1\r\nHost: h\r\n' + fields_ + b'\r\n')
    code, headers, body, _ = served.client.response()
    assert fields(headers).get('connection') == 'close'


# -- Expect: 100-continue (RFC 9110 §10.1.1) ------------------------------------------

CONTINUE = b'HTTP/1.1 100 Continue\r\n\r\n'


def test_100_continue_sent_when_the_app_reads(serve):
    def app(env, start_response):
        data = env['wsgi.input'].read()
        start_response('200 OK', [])
        return [b'got ' + data]
    served = serve(app)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n')
    assert served.client.read_exactly(len(CONTINUE)) == CONTINUE
    served.client.send(b'abc')
    assert served.client.response()[2] == b'got abc'
    served.client.send(GET)  # the body was read: the connection carries on
    assert served.client.response()[2] == b'got '


def test_100_continue_chunked(serve):
    def app(env, start_response):
        data = env['wsgi.input'].read()
        start_response('200 OK', [])
        return [b'got ' + data]
    served = serve(app)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n')
    assert served.client.read_exactly(len(CONTINUE)) == CONTINUE
    served.client.send(b'3\r\nabc\r\n0\r\n\r\n')
    assert served.client.response()[2] == b'got abc'


def test_100_continue_never_sent_when_the_app_does_not_read(serve):
    served = serve(echo_path)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n')
    code, headers, body, _ = served.client.response()
    assert (code, body) == (200, b'POST /')
    # The client may still send its body or not: the connection closes.
    assert served.client.read_to_end() == b''
    served.wait_closed()


def test_no_100_continue_for_an_empty_body(serve):
    def app(env, start_response):
        data = env['wsgi.input'].read()
        start_response('200 OK', [])
        return [b'got ' + data]
    served = serve(app)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n')
    code, headers, body, _ = served.client.response()
    assert (code, body) == (200, b'got ')
    served.client.send(GET)
    assert served.client.response()[2] == b'got '


def test_no_100_continue_on_http10(serve):
    """RFC 9110 §10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request."""
    def app(env, start_response):
        data = env['wsgi.input'].read()
        start_response('200 OK', [])
        return [b'got ' + data]
    served = serve(app)
    served.client.send(b'POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc')
    code, headers, body, _ = served.client.response()
    assert (code, body) == (200, b'got abc')


def test_no_100_continue_after_413(serve):
    """Content-Length over max_body_size: 413 at once, no 100, the app never called."""
    served = serve(echo_path, max_body_size=10)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n')
    code, headers, body, _ = served.client.response()
    assert code == 413
    assert fields(headers)['connection'] == 'close'
    assert served.client.read_to_end() == b''
    served.wait_closed()
    assert served.sub.calls == 0
    assert served.sub.rejected == [413]


# -- wsgi.input (PEP 3333) ----------------------------------------------------------

def reading_app(read):
    """An app that runs ``read(wsgi.input)`` and answers its repr, or the
    name of what it raised; the exception itself goes in ``app.errors``."""
    errors = []

    def app(env, start_response):
        try:
            result = repr(read(env['wsgi.input'])).encode()
        except Exception as err:
            errors.append(err)
            result = type(err).__name__.encode()
        start_response('200 OK', [])
        return [result]
    app.errors = errors
    return app


BODY = b'line one\nline two\n\nlast'
CL_BODY = b'Content-Length: %d\r\n\r\n%s' % (len(BODY), BODY)
CHUNKED_BODY = (b'Transfer-Encoding: chunked\r\n\r\n'
                b'3\r\nlin\r\n'
                b'A;name=value;other="q\\"x"\r\ne one\nline\r\n'
                b'a ; ext\r\n two\n\nlast\r\n'
                b'0;end=1\r\nX-Trailer: a\r\nX-Other: b\r\n\r\n')


def read_sizes(body):
    parts = []
    while True:
        data = body.read(5)
        if not data:
            return parts
        parts.append(data)


READS = [
    pytest.param(lambda body: body.read(), BODY, id='read'),
    pytest.param(lambda body: body.read(None), BODY, id='read-None'),
    pytest.param(lambda body: body.read(-1), BODY, id='read-minus-1'),
    pytest.param(lambda body: (body.read(0), body.read(4), body.read(100), body.read(1)),
                 (b'', BODY[:4], BODY[4:], b''), id='read-n'),
    pytest.param(read_sizes, [BODY[i:i + 5] for i in range(0, len(BODY), 5)], id='read-5-until-empty'),
    pytest.param(lambda body: [body.readline() for _ in range(6)],
                 [b'line one\n', b'line two\n', b'\n', b'last', b'', b''], id='readline'),
    pytest.param(lambda body: (body.readline(4), body.readline(100), body.readline(-1)),
                 (b'line', b' one\n', b'line two\n'), id='readline-size'),
    pytest.param(lambda body: (body.readline(), body.read(3), body.readline()),
                 (b'line one\n', b'lin', b'e two\n'), id='readline-then-read'),
    pytest.param(lambda body: body.readlines(), [b'line one\n', b'line two\n', b'\n', b'last'], id='readlines'),
    pytest.param(lambda body: body.readlines(10), [b'line one\n', b'line two\n'], id='readlines-hint'),
    pytest.param(lambda body: list(body), [BODY[i:i + 4] for i in range(0, len(BODY), 4)], id='iter-in_chunk'),
    pytest.param(lambda body: (body.read(), body.position), (BODY, len(BODY)), id='position'),
]


@pytest.mark.parametrize('one_byte', [False, True], ids=['whole', 'byte-by-byte'])
@pytest.mark.parametrize('framing', [CL_BODY, CHUNKED_BODY], ids=['content-length', 'chunked'])
@pytest.mark.parametrize('read, expected', READS)
def test_request_body_reads(serve, read, expected, framing, one_byte):
    """RequestBody returns the body's bytes only, b'' at the end (RFC 9112 §6.2, §7.1)."""
    app = reading_app(read)
    served = serve(app, one_byte=one_byte)
    # The body (and a chunked body's trailers) must end exactly where the
    # next request starts.
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\n' + framing + b'POST / HTTP/1.1\r\nHost: h\r\n' + CL_BODY)
    assert served.client.response()[2] == repr(expected).encode()
    assert served.client.response()[2] == repr(expected).encode()
    assert app.errors == []


@pytest.mark.parametrize('chunks, reason', [
    pytest.param(b'zz\r\n', 'chunk size', id='size-not-hex-7.1'),
    pytest.param(b'0x3\r\nabc\r\n0\r\n\r\n', 'chunk size', id='size-0x-7.1'),
    pytest.param(b'3\r\nabcX\r\n0\r\n\r\n', 'CRLF', id='data-without-crlf-7.1'),
    pytest.param(b'3\r\nabc\n0\r\n\r\n', 'CRLF', id='data-with-bare-lf-7.1'),
    pytest.param(b'3\r\nabc\r\n0\r\nX-T a\r\n\r\n', 'trailer', id='trailer-without-colon-7.1.2'),
    pytest.param(b'3\r\nabc\r\n0\r\nX-T: a\x01\r\n\r\n', 'trailer', id='trailer-control-byte-7.1.2'),
    pytest.param(b'3\r\nabc\r\n0\r\nX-T: a\r\n folded\r\n\r\n', 'trailer', id='trailer-obs-fold-7.1.2'),
    pytest.param(b'3\r\nabc\r\n0\r\nX T: a\r\n\r\n', 'trailer', id='trailer-name-not-token-7.1.2'),
    pytest.param(b'3\r\nabc\r\n0\r\nX-T: ' + b'a' * 8200 + b'\r\n\r\n', 'line too long',
                 id='trailer-over-max_header_line-7.1.2'),
    pytest.param(b'3\nabc\r\n0\r\n\r\n', 'line ending', id='size-line-bare-lf-7.1'),
    pytest.param(b'3\r\nabc\r\n0\r\nX-T: a\nb\r\n\r\n', 'line ending', id='trailer-bare-lf-7.1.2'),
    pytest.param(b'1' * 5000 + b'\r\n', 'line too long', id='size-line-over-MAX_CHUNK_LINE'),
    pytest.param(b'3\r\nabc\r\n0\r\n' + b'X-T: a\r\n' * 101 + b'\r\n', 'trailer section too large',
                 id='trailers-over-max_headers-7.1.2'),
])
def test_malformed_chunked_body_raises_bad_request_and_closes(serve, chunks, reason):
    def read(body):
        return body.read()
    app = reading_app(read)
    served = serve(app)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n' + chunks + GET)
    code, headers, body, _ = served.client.response()
    assert len(app.errors) == 1 and isinstance(app.errors[0], HTTPBadRequest), app.errors
    assert reason in str(app.errors[0])
    assert fields(headers)['connection'] == 'close'
    assert served.client.read_to_end() == b''  # the GET after it is never served
    served.wait_closed()
    assert served.sub.calls == 1


def test_read_after_an_error_returns_the_end(serve):
    """After a read raised, the body is over: b'' (the connection closes anyway)."""
    def read(body):
        try:
            body.read()
        except HTTPBadRequest:
            return body.read(), body.readline(), body.error is not None
    app = reading_app(read)
    served = serve(app)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')
    assert served.client.response()[2] == repr((b'', b'', True)).encode()


def test_client_gone_mid_body(serve):
    """The client closes with the body unfinished: nobody to answer, nothing sent."""
    seen = []

    def app(env, start_response):
        try:
            env['wsgi.input'].read()
        except ConnectionError as err:
            seen.append(err)
        return []
    served = serve(app)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc')
    served.client.sock.shutdown(socket.SHUT_WR)
    assert served.client.read_to_end() == b''
    served.thread.join(WAIT)
    assert len(seen) == 1 and isinstance(seen[0], httpconn.ClientDisconnected)


# -- max_body_size ------------------------------------------------------------------

def test_content_length_over_max_body_size_gets_413_without_the_app(serve):
    served = serve(echo_path, max_body_size=10)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n' + b'x' * 11)
    code, headers, body, _ = served.client.response()
    assert code == 413  # RFC 9110 §15.5.14
    assert b'longer than 10 bytes' in body
    assert fields(headers)['connection'] == 'close'
    assert served.client.read_to_end() == b''
    served.wait_closed()
    assert served.sub.calls == 0
    assert served.sub.rejected == [413]


def test_content_length_at_max_body_size_is_served(serve):
    app = reading_app(lambda body: body.read())
    served = serve(app, max_body_size=10)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n' + b'x' * 10)
    assert served.client.response()[2] == repr(b'x' * 10).encode()
    assert served.sub.rejected == []


@pytest.mark.parametrize('read', [
    pytest.param(lambda body: [body.read(4) for _ in range(5)], id='read-4'),
    pytest.param(list, id='iter'),
    pytest.param(lambda body: body.read(), id='read-all'),
    pytest.param(lambda body: body.read(100), id='read-100'),
    pytest.param(lambda body: body.readline(), id='readline'),
])
@pytest.mark.parametrize('chunks', [
    pytest.param(b'6\r\nxxxxxx\r\n6\r\nxxxxxx\r\n0\r\n\r\n', id='two-chunks-of-6'),
    pytest.param(b'1\r\nx\r\n' * 11 + b'0\r\n\r\n', id='eleven-chunks-of-1'),
])
def test_chunked_body_over_max_body_size_raises_413(serve, read, chunks):
    """Every chunk announced counts, however the app reads (a read() of
    many small chunks must not grow past the limit)."""
    app = reading_app(read)
    served = serve(app, max_body_size=10)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n' + chunks)
    code, headers, body, _ = served.client.response()
    assert [type(err) for err in app.errors] == [HTTPContentTooLarge], body
    assert fields(headers)['connection'] == 'close'


def test_one_chunk_over_max_body_size_raises_413(serve):
    app = reading_app(lambda body: body.read())
    served = serve(app, max_body_size=10)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n' + b'x' * 11)
    code, headers, body, _ = served.client.response()
    assert [type(err) for err in app.errors] == [HTTPContentTooLarge]
    assert fields(headers)['connection'] == 'close'


def test_chunked_body_at_max_body_size_is_served(serve):
    app = reading_app(lambda body: body.read())
    served = serve(app, max_body_size=10)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n'
                       b'5\r\nxxxxx\r\n5\r\nxxxxx\r\n0\r\n\r\n' + GET)
    assert served.client.response()[2] == repr(b'x' * 10).encode()
    assert served.client.response()[0] == 200


# -- client_timeout -----------------------------------------------------------------

TIMEOUT = 0.3


def test_partial_head_then_silence_gets_408(serve):
    served = serve(echo_path, timeout=TIMEOUT)
    served.client.send(b'GET / HTTP/1.1\r\nHo')
    code, headers, body, _ = served.client.response()
    assert code == 408  # RFC 9110 §15.5.9
    assert fields(headers)['connection'] == 'close'
    assert served.client.read_to_end() == b''
    served.wait_closed()
    assert served.sub.rejected == [408] and served.sub.calls == 0


def test_trickled_head_gets_408_on_time(serve):
    """The whole head within client_timeout, not each read."""
    served = serve(echo_path, timeout=TIMEOUT)
    stop = threading.Event()
    sent = []

    def trickle():
        for byte in GET[:-2]:
            if stop.wait(TIMEOUT / 6):
                return
            try:
                served.client.send(bytes([byte]))
            except OSError:
                return
            sent.append(byte)
    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        code = served.client.response()[0]
        at_answer = len(sent)
    finally:
        stop.set()
        sender.join(WAIT)
    assert code == 408
    # Answered while the client was still trickling: a bound per read would
    # have waited for the trickle to end.
    assert at_answer < len(GET) - 2


def test_idle_connection_closes_without_a_response(serve):
    served = serve(echo_path, timeout=TIMEOUT)
    served.client.send(GET)
    assert served.client.response()[0] == 200
    assert served.client.read_to_end() == b''  # no 408 for a request that never began
    served.wait_closed()
    assert served.sub.rejected == []


def test_new_connection_idle_closes_without_a_response(serve):
    served = serve(echo_path, timeout=TIMEOUT)
    assert served.client.read_to_end() == b''
    served.wait_closed()
    assert served.sub.rejected == []


def test_leading_empty_lines_do_not_start_a_request(serve):
    """RFC 9112 §2.2: empty lines before a request are ignored, so they are idle time, not a head."""
    served = serve(echo_path, timeout=TIMEOUT)
    served.client.send(b'\r\n\r\n')
    assert served.client.read_to_end() == b''
    assert served.sub.rejected == []


def test_stalled_body_read_raises_request_timeout(serve):
    app = reading_app(lambda body: body.read())
    served = serve(app, timeout=TIMEOUT)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc')
    code, headers, body, _ = served.client.response()
    assert [type(err) for err in app.errors] == [HTTPRequestTimeout]
    assert fields(headers)['connection'] == 'close'
    assert served.client.read_to_end() == b''


def test_stalled_chunked_body_read_raises_request_timeout(serve):
    app = reading_app(lambda body: body.read())
    served = serve(app, timeout=TIMEOUT)
    served.client.send(b'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab')
    served.client.response()
    assert [type(err) for err in app.errors] == [HTTPRequestTimeout]


# -- heads refused before the app (RFC 9112; RFC 6585 §5) ------------------------------

@pytest.mark.parametrize('data, status', [
    pytest.param(b'GET / HTTP/1.1\r\n\r\n', 400, id='no-host'),
    pytest.param(b'GET / HTTP/2.0\r\nHost: h\r\n\r\n', 400, id='http-2.0'),
    pytest.param(b'GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx', 400,
                 id='two-content-lengths'),
    pytest.param(b'GET / HTTP/1.1\nHost: h\n', 400, id='bare-lf-before-the-end'),
    pytest.param(b'GET /' + b'a' * 8200, 414, id='request-line-too-long-before-the-end'),
    pytest.param(b'GET / HTTP/1.1\r\nHost: h\r\nX-A: ' + b'a' * 8200, 431, id='header-line-too-long-before-the-end'),
    pytest.param(b'GET / HTTP/1.1\r\n' + b'X-A: a\r\n' * 101 + b'Host: h\r\n\r\n', 431, id='too-many-headers'),
])
def test_refused_head(serve, data, status):
    served = serve(echo_path)
    served.client.send(data)
    code, headers, body, _ = served.client.response()
    assert code == status
    assert fields(headers)['connection'] == 'close'
    assert fields(headers)['content-length'] == str(len(body))
    assert body.startswith(b'%d ' % status)
    assert served.client.read_to_end() == b''
    served.wait_closed()
    assert served.sub.rejected == [status]
    assert served.sub.calls == 0


def test_second_request_refused_after_a_first_served(serve):
    served = serve(echo_path)
    served.client.send(GET + b'GET / HTTP/1.1\r\n\r\n')
    assert served.client.response()[0] == 200
    assert served.client.response()[0] == 400
    assert served.client.read_to_end() == b''
    assert served.sub.rejected == [400]


SMALL = Limits(max_request_line=40, max_header_line=30, max_headers=6, max_header_size=200)


AT_LIMITS = [
    ('max_request_line', b'GET /' + b'a' * 26 + b' HTTP/1.1\r\nHost: h\r\n\r\n', True),
    ('max_header_line', b'GET / HTTP/1.1\r\nHost: h\r\nX-A: ' + b'a' * 25 + b'\r\n\r\n', True),
    ('one-under-each-limit', b'GET /' + b'a' * 25 + b' HTTP/1.1\r\nHost: h\r\nX-A: ' + b'a' * 24 + b'\r\n\r\n',
     False),
]


@pytest.mark.parametrize('data, one_byte', [
    pytest.param(data, one_byte, id='%s-%s' % (name, 'byte-by-byte' if one_byte else 'whole'))
    for name, data, _ in AT_LIMITS for one_byte in (False, True)
])
def test_head_within_the_limits_is_served_however_it_arrives(serve, data, one_byte):
    served = serve(echo_path, limits=SMALL, one_byte=one_byte)
    served.client.send(data)
    assert served.client.response()[0] == 200


# -- graceful stop -----------------------------------------------------------------

def test_draining_runner_answers_with_close(serve):
    """WSGIRunner: a request that arrives while draining is answered, then the connection closes (RFC 9112 §9.6)."""
    served = serve(echo_path, draining=True)
    served.client.send(GET + GET)
    code, headers, body, _ = served.client.response()
    assert (code, fields(headers)['connection']) == (200, 'close')
    assert served.client.read_to_end() == b''
    assert served.sub.calls == 1


# -- the environ (PEP 3333) ----------------------------------------------------------

def environ_of(serve, request):
    seen = []

    def app(env, start_response):
        seen.append(env)
        start_response('200 OK', [])
        return [b'']
    served = serve(app)
    served.client.send(request)
    served.client.response()
    assert len(seen) == 1
    return seen[0]


def test_environ(serve):
    env = environ_of(serve, b'POST /a%20b/caf%C3%A9/%2F%zz?x=1&y=%20 HTTP/1.1\r\n'
                            b'Host: example.com\r\n'
                            b'Content-Type: text/plain\r\n'
                            b'Content-Length: 3\r\n'
                            b'X-Multi: 1\r\n'
                            b'Cookie: a=1\r\n'
                            b'x-multi: 2, 3\r\n'
                            b'Cookie: b=2\r\n'
                            b'X_Under: dropped\r\n'
                            b'X-Under: kept\r\n'
                            b'\r\nabc')
    assert env['REQUEST_METHOD'] == 'POST'
    assert env['SCRIPT_NAME'] == ''
    # PEP 3333: PATH_INFO is the decoded path as latin-1 text (bytes to code points).
    assert env['PATH_INFO'] == '/a b/caf\xc3\xa9//%zz'
    assert env['RAW_PATH_INFO'] == '/a%20b/caf%C3%A9/%2F%zz'
    assert env['QUERY_STRING'] == 'x=1&y=%20'
    assert env['SERVER_PROTOCOL'] == 'HTTP/1.1'
    assert env['CONTENT_TYPE'] == 'text/plain'
    assert env['CONTENT_LENGTH'] == '3'
    assert 'HTTP_CONTENT_TYPE' not in env and 'HTTP_CONTENT_LENGTH' not in env
    assert env['HTTP_HOST'] == 'example.com'
    assert env['HTTP_X_MULTI'] == '1,2, 3'  # RFC 9110 §5.3
    assert env['HTTP_COOKIE'] == 'a=1; b=2'  # RFC 6265 §5.4
    assert env['HTTP_X_UNDER'] == 'kept'  # X_Under would share its key: dropped
    assert env['REMOTE_ADDR'] == '192.0.2.1' and env['REMOTE_PORT'] == '4321'
    assert env['wsgi.url_scheme'] == 'http'
    assert isinstance(env['wsgi.input'], RequestBody)
    assert all(isinstance(value, str) for key, value in env.items() if key.isupper())


def test_environ_http10_absolute_form_and_asterisk(serve):
    env = environ_of(serve, b'GET http://example.com:8080/p?q HTTP/1.0\r\nHost: other\r\n\r\n')
    assert (env['SERVER_PROTOCOL'], env['PATH_INFO'], env['QUERY_STRING'], env['HTTP_HOST']) == \
        ('HTTP/1.0', '/p', 'q', 'example.com:8080')
    assert 'CONTENT_LENGTH' not in env and 'CONTENT_TYPE' not in env


def test_environ_options_asterisk(serve):
    env = environ_of(serve, b'OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n')
    assert (env['REQUEST_METHOD'], env['PATH_INFO'], env['QUERY_STRING']) == ('OPTIONS', '*', '')


def test_environ_percent_decoded_non_utf8(serve):
    env = environ_of(serve, b'GET /%FF%00%41 HTTP/1.1\r\nHost: h\r\n\r\n')
    assert env['PATH_INFO'] == '/\xff\x00A'


def test_environ_obs_text_header_value(serve):
    env = environ_of(serve, b'GET / HTTP/1.1\r\nHost: h\r\nX-A: caf\xe9\r\n\r\n')
    assert env['HTTP_X_A'] == 'caf\xe9'
