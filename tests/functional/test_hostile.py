"""The hostile-request corpus (tests/hostile/) against a real brimd over real sockets.

Each ``NAME.http`` is the exact bytes a client sends on a fresh connection;
``NAME.expect`` says, on its first line, the status codes of the responses
in order and whether the connection must then close (``400 close``,
``200 400 close``, or ``close`` for a close with no response), and on its
second line, after ``#``, the rule it tests.

Every case must get exactly its responses and no hang; never a 5xx it does
not expect, never a 2xx after an error (a smuggled request served). One
brimd with one worker serves the whole module; afterwards that same worker
still serves and its /stats counted the 4xx responses.

Each case is sent once per module (``Server.run`` keeps the outcome), so the
final test holds whatever order the tests run in, or however few are picked.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from harness import Brimd, free_port, get_stats, http_request, port_accepts, wait_until

CORPUS = Path(__file__).resolve().parents[1] / 'hostile'
CASES = sorted(path.stem for path in CORPUS.glob('*.http'))

#: Seconds any one read may wait. Below the server's client_timeout (5), so
#: a server that only lets go when client_timeout strikes shows as a hang.
HANG = 3.0
#: Seconds a whole exchange may take.
DEADLINE = 10.0

CONF = """
[wsgi]
port = %(port)d
workers = 1
apps = echo stats
client_timeout = 5
max_body_size = 1024

[echo]
call = brim.wsgi_echo.WSGIEcho

[stats]
call = brim.wsgi_stats.WSGIStats
"""

_STATUS_LINE = re.compile(rb'HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?')


@dataclass
class Expect:
    statuses: list[int]
    close: bool
    comment: str


def read_expect(name: str) -> Expect:
    """Parse ``NAME.expect``: ``[STATUS ...] [close]`` then ``# comment``."""
    lines = (CORPUS / (name + '.expect')).read_text().splitlines()
    words = lines[0].split()
    close = bool(words) and words[-1] == 'close'
    codes = words[:-1] if close else words
    assert codes or close, '%s.expect: expects nothing' % name
    assert all(re.fullmatch(r'[1-5][0-9][0-9]', code) for code in codes), '%s.expect: %r' % (name, lines[0])
    assert len(lines) == 2 and lines[1].startswith('# '), '%s.expect: no "# rule" second line' % name
    return Expect([int(code) for code in codes], close, lines[1][2:])


class BadResponse(AssertionError):
    pass


def parse_responses(data: bytes) -> tuple[list[int], bytes]:
    """The final status codes of the complete responses in ``data`` and what
    follows them (an incomplete response). 1xx interim responses are skipped.

    Raises:
        BadResponse: for bytes that are not an HTTP/1.x response.
    """
    statuses: list[int] = []
    pos = 0
    while pos < len(data):
        end = data.find(b'\r\n\r\n', pos)
        if end < 0:
            if not b'HTTP/1.'.startswith(data[pos:pos + 7]):
                raise BadResponse('not an HTTP/1.x response: %r' % data[pos:pos + 200])
            break
        lines = data[pos:end].split(b'\r\n')
        match = _STATUS_LINE.fullmatch(lines[0])
        if not match:
            raise BadResponse('not an HTTP/1.x status line: %r' % lines[0][:200])
        code = int(match.group(1))
        fields: dict[bytes, list[bytes]] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b':')
            if not colon or not name or name != name.strip():
                raise BadResponse('malformed response field line: %r' % line[:200])
            fields.setdefault(name.lower(), []).append(value.strip())
        body_start = end + 4
        if 100 <= code < 200:
            pos = body_start
            continue
        coding = b', '.join(fields.get(b'transfer-encoding', [])).lower()
        if code in (204, 304):
            body_end: Optional[int] = body_start
        elif coding:
            if coding != b'chunked':
                raise BadResponse('response Transfer-Encoding %r' % coding)
            body_end = _chunked_end(data, body_start)
        elif b'content-length' in fields:
            lengths = set(fields[b'content-length'])
            if len(lengths) != 1 or not next(iter(lengths)).isdigit():
                raise BadResponse('response Content-Length %r' % fields[b'content-length'])
            body_end = body_start + int(next(iter(lengths)))
            if body_end > len(data):
                body_end = None
        else:
            body_end = len(data)  # delimited by the close (RFC 9112 §6.3 item 8)
        if body_end is None:
            break
        statuses.append(code)
        pos = body_end
    return statuses, data[pos:]


def _chunked_end(data: bytes, pos: int) -> Optional[int]:
    """Where the chunked body starting at ``pos`` ends; None if incomplete."""
    while True:
        line_end = data.find(b'\r\n', pos)
        if line_end < 0:
            return None
        size_text = data[pos:line_end].split(b';', 1)[0].strip()
        if not re.fullmatch(rb'[0-9A-Fa-f]{1,16}', size_text):
            raise BadResponse('response chunk size %r' % size_text[:100])
        size = int(size_text, 16)
        pos = line_end + 2
        if size == 0:
            while True:  # the trailer section, up to an empty line
                line_end = data.find(b'\r\n', pos)
                if line_end < 0:
                    return None
                if line_end == pos:
                    return pos + 2
                pos = line_end + 2
        if len(data) < pos + size + 2:
            return None
        if data[pos + size:pos + size + 2] != b'\r\n':
            raise BadResponse('response chunk data not followed by CRLF')
        pos += size + 2


@dataclass
class Outcome:
    statuses: list[int] = field(default_factory=list)
    closed: bool = False
    hung: bool = False
    received: bytes = b''
    rest: bytes = b''  # an incomplete response at the end
    error: Optional[str] = None  # bytes that are not an HTTP response

    def describe(self) -> str:
        state = 'closed' if self.closed else 'no close within %gs' % HANG if self.hung else 'kept open'
        return 'statuses %s, %s, received %r' % (self.statuses, state, self.received[:400])


def exchange(port: int, data: bytes, expect: Expect) -> Outcome:
    """Send ``data`` on a new connection and read every response: until EOF
    when ``expect.close``, else until the expected responses came (then a
    short wait shows whether it closes)."""
    outcome = Outcome()
    received = bytearray()
    deadline = time.monotonic() + DEADLINE
    with socket.create_connection(('127.0.0.1', port), timeout=HANG) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed early: what it answered is still to be read
        except socket.timeout:
            outcome.hung = True  # not reading what we send, nor closing
        while not outcome.hung:
            if time.monotonic() > deadline:
                outcome.hung = True
                break
            if not expect.close:
                try:
                    done = len(parse_responses(bytes(received))[0]) >= len(expect.statuses)
                except BadResponse:
                    done = True
                if done:
                    sock.settimeout(0.5)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                if sock.gettimeout() == HANG:
                    outcome.hung = True
                break  # kept open after the expected responses
            except ConnectionResetError:
                chunk = b''  # closed with our bytes unread: a close too
            if not chunk:
                outcome.closed = True
                break
            received += chunk
    outcome.received = bytes(received)
    try:
        outcome.statuses, outcome.rest = parse_responses(outcome.received)
    except BadResponse as err:
        outcome.error = str(err)
    return outcome


class Server:
    """The module's brimd, its worker at the start, and each case's outcome."""

    def __init__(self, brimd: Brimd, port: int) -> None:
        self.brimd = brimd
        self.port = port
        self.baseline = get_stats(port)['wsgi']
        self.outcomes: dict[str, Outcome] = {}

    def run(self, name: str) -> Outcome:
        if name not in self.outcomes:
            data = (CORPUS / (name + '.http')).read_bytes()
            self.outcomes[name] = exchange(self.port, data, read_expect(name))
        return self.outcomes[name]


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    brimd = Brimd(tmp_path_factory.mktemp('hostile'))
    try:
        port = free_port()
        brimd.write_conf(CONF % dict(port=port))
        brimd.start()
        wait_until(lambda: port_accepts(port), what='port')
        yield Server(brimd, port)
    finally:
        brimd.cleanup()


def test_corpus_is_complete():
    assert len(CASES) >= 40
    expects = sorted(path.stem for path in CORPUS.glob('*.expect'))
    assert expects == CASES, 'every NAME.http needs a NAME.expect and the reverse'
    for name in CASES:
        read_expect(name)
        assert (CORPUS / (name + '.http')).stat().st_size > 0, name


@pytest.mark.parametrize('name', CASES)
def test_hostile_request(server, name):
    expect = read_expect(name)
    outcome = server.run(name)
    context = '%s (%s): %s' % (name, expect.comment, outcome.describe())
    assert outcome.error is None, '%s; %s' % (outcome.error, context)
    statuses = outcome.statuses
    first_error = next((n for n, code in enumerate(statuses) if not 200 <= code < 300), len(statuses))
    served = [code for code in statuses[first_error:] if 200 <= code < 300]
    assert not served, 'a 2xx after an error (smuggled request served): ' + context
    unexpected_5xx = [code for code in statuses if code >= 500 and code not in expect.statuses]
    assert not unexpected_5xx, '5xx: ' + context
    assert statuses == expect.statuses, context
    assert not outcome.rest, 'truncated response: ' + context
    if expect.close:
        assert not outcome.hung, 'hang: no close within %gs of the last byte: %s' % (HANG, context)
        assert outcome.closed, context
    else:
        assert not outcome.hung and not outcome.closed, 'connection closed: ' + context


def test_same_worker_serves_and_counted_4xx(server):
    for name in CASES:
        server.run(name)
    expected_4xx = sum(1 for name in CASES for code in read_expect(name).statuses if 400 <= code < 500)
    expected_5xx = sum(1 for name in CASES for code in read_expect(name).statuses if code >= 500)
    status, _, body = http_request(server.port, 'POST', '/echo', body=b'still serving')
    assert (status, body) == (200, b'still serving')
    before = server.baseline
    stats: dict = {}

    def counted() -> bool:
        stats.update(get_stats(server.port)['wsgi'])
        return stats['status_4xx_count'] - before['status_4xx_count'] >= expected_4xx

    try:
        wait_until(counted, timeout=5, what='the 4xx to be counted')
    except AssertionError:
        pass  # said below
    assert stats['0']['pid'] == before['0']['pid'], 'the worker was replaced'
    assert stats['0']['restart_count'] == before['0']['restart_count'], 'the worker was restarted'
    counted_4xx = stats['status_4xx_count'] - before['status_4xx_count']
    assert counted_4xx >= expected_4xx, '/stats counted %d 4xx, the corpus expects %d' % (counted_4xx, expected_4xx)
    counted_5xx = stats['status_5xx_count'] - before['status_5xx_count']
    assert counted_5xx <= expected_5xx, '/stats counted %d 5xx, the corpus expects %d' % (counted_5xx, expected_5xx)
