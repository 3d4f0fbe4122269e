#!/usr/bin/env python3
"""Long-run property fuzzing of the HTTP/1.1 request-head parser (``brim.server.http1``).

``parse_head(data, limits)`` gets one whole request head, final empty line
included, and either returns a ``Head`` or raises ``HeadError`` (status 400,
414, 431 or 505); nothing else may come out of it, whatever the bytes, and
it must answer quickly. Hypothesis drives it with:

* ``grammar``: request lines and header lines built from RFC 9112 pieces,
  each piece sometimes replaced by a near miss (odd whitespace, bare CR or
  LF, NUL and other control bytes, obs-fold, obs-text, bad versions) and
  Content-Length / Transfer-Encoding / Connection combinations, valid and
  not (RFC 9112 §6.1-6.3: the request-smuggling cases);
* ``mutated``: a valid head with bytes flipped, inserted and deleted;
* ``raw``: random bytes (then the final CRLF CRLF);
* ``valid``: well-formed heads, which must parse to exactly what was sent
  (names lower-cased, OWS stripped, values Latin-1, PEP 3333);
* ``limits``: well-formed heads against ``Limits`` set a few bytes either
  side of the head's own sizes (or at random): clearly over a limit gets
  its status (414 for the request line, else 431), clearly under all of
  them parses; within 2 bytes per line of a limit (CRLF counted or not)
  only the general invariants are checked;
* ``big``: heads up to and past the default limits (long values, many
  fields, up to 100000 empty lines before the request line), to catch
  super-linear time.

Every accepted head must obey (:class:`Checker`): version ``HTTP/1.1``
or ``HTTP/1.0``; method a token; target non-empty with no whitespace or
control bytes; header names non-empty lower-case tokens; values with no CR,
LF or NUL and no leading or trailing SP/HTAB; ``content_length`` None or
an int >= 0, never together with ``chunked``; a Content-Length header
accepted only as digits all equal to ``content_length`` unless chunked; a
Transfer-Encoding accepted in HTTP/1.1 only as ``chunked`` last; a
``close`` connection option never kept alive, nor HTTP/1.0 without
``keep-alive``. Every ``HeadError`` has an allowed status and a one-line
reason. Each call must return within ``--time-bound`` seconds plus
``--per-byte`` seconds per input byte (0.1 s + 0.1 µs/byte by default;
the parser needs about 0.01 µs/byte).

Speed: Hypothesis generates about 100 (valid, mutated, limits) to 2000
(raw) examples a second, so the default (200000 per property, six
properties) runs for about two and a half hours; ``--examples 3000``
takes about two minutes.

``tests/unit/test_fuzz.py`` runs the same properties a few hundred
examples each; this script runs them long (``--examples`` per property)
and prints, per property, the examples run, how they ended (accepted or
HeadError by status), the slowest call, and any failure with its minimal
input (shrunk by Hypothesis). Exit status 1 if any property failed, 2 if
``brim.server.http1`` has no ``parse_head`` yet.

Usage: python bench/fuzz_http.py [--examples 200000] [--seed N] [--time-bound 0.1] [--per-byte 1e-7]
       [--property NAME]...
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
import traceback
from typing import Any, Callable, Optional

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# ---- the parser, if it is there yet ----------------------------------------------


def load_parser() -> Optional[Any]:
    """Return the ``brim.server.http1`` module, or None before it has ``parse_head``.

    A module that is there but fails to import (a syntax error) raises: that
    is a bug to see, not a reason to skip.
    """
    try:
        from brim.server import http1
    except ImportError:
        return None
    if not all(hasattr(http1, name) for name in ('Limits', 'parse_head', 'HeadError')):
        return None
    return http1


# ---- RFC 9110/9112 alphabets ------------------------------------------------------

# RFC 9110 §5.6.2: tchar.
TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TCHAR_SET = frozenset(TCHAR)
# RFC 9110 §5.5: field-vchar = VCHAR / obs-text.
VCHAR = ''.join(chr(c) for c in range(0x21, 0x7f))
OBS_TEXT = ''.join(chr(c) for c in range(0x80, 0x100))
# RFC 3986 §3.3: pchar (less pct-encoded, added as whole triplets).
PCHAR = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"
# Field names the strategies add on purpose; random names avoid them.
FRAMING = frozenset({'host', 'content-length', 'transfer-encoding', 'connection'})
STATUSES = frozenset({400, 414, 431, 505})


def _latin1(alphabet: str, min_size: int = 0, max_size: int = 12) -> st.SearchStrategy[bytes]:
    return st.text(alphabet=alphabet, min_size=min_size, max_size=max_size).map(lambda s: s.encode('latin-1'))


tokens = _latin1(TCHAR, 1, 12)
methods = st.one_of(st.sampled_from([b'GET', b'HEAD', b'POST', b'PUT', b'DELETE', b'OPTIONS', b'PATCH',
                                     b'CONNECT', b'TRACE']), tokens)


@st.composite
def origin_targets(draw: Callable) -> bytes:
    """RFC 9112 §3.2.1 origin-form: absolute-path [ "?" query ]."""
    segment = st.lists(st.one_of(_latin1(PCHAR, 1, 8), st.sampled_from(['%20', '%2F', '%e2%82%ac', '%00', '%FF'])
                                 .map(str.encode)), max_size=3).map(b''.join)
    path = b'/' + b'/'.join(draw(st.lists(segment, max_size=4)))
    if draw(st.booleans()):
        path += b'?' + draw(_latin1(PCHAR + '/?', 0, 20))
    return path


@st.composite
def field_values(draw: Callable, obs_text: bool = True) -> bytes:
    """RFC 9110 §5.5 field-value: field-vchars with single SP/HTAB runs inside, none at the ends."""
    words = draw(st.lists(_latin1(VCHAR + OBS_TEXT if obs_text else VCHAR, 1, 10), max_size=4))
    seps = draw(st.lists(st.sampled_from([b' ', b'\t', b'  ', b' \t ']), min_size=len(words), max_size=len(words)))
    out = b''
    for i, word in enumerate(words):
        out += (seps[i] if i else b'') + word
    return out


hosts = st.sampled_from([b'example.com', b'localhost:8080', b'127.0.0.1', b'[::1]:80', b'a.b.c:1', b'x'])
ows = st.sampled_from([b'', b'', b' ', b'\t', b'  ', b' \t'])

# Pieces and near misses for the grammar strategy.
_BAD_METHODS = [b'', b'G ET', b'GET\x00', b'(GET)', b'G\xc9T', b'GET\r', b'\x00']
_BAD_TARGETS = [b'', b'*', b'http://example.com/a?b', b'example.com:443', b'/a b', b'/\x00', b'/\xff', b'//x',
                b'/%zz', b'/\r', b'/\t', b'/a\x7f', b'\\', b'/a#frag']
_VERSIONS = [b'HTTP/1.1', b'HTTP/1.0', b'HTTP/1.2', b'HTTP/1.9', b'HTTP/2.0', b'HTTP/2', b'HTTP/3.0', b'HTTP/0.9',
             b'http/1.1', b'HTTP/1', b'HTTP/1.10', b'HTTP/01.1', b'HTTP/1.1\x00', b'HTTP/1.1 ', b'', b'HTTP/',
             b'HTTP/1.a', b'HTTP/11', b'HTTPS/1.1', b'HTTP/1.1\t', b'HTTP/\xff.1', b'HTTP/-1.1']
_ODD_EOLS = [b'\n', b'\r', b'\r\r\n', b'\n\r', b'\r\n ']
_ODD_SEPS = [b'  ', b'\t', b'', b' \x00', b'\x0b', b'\xa0']
_CONTENT_LENGTHS = [b'0', b'5', b'005', b'-1', b'+5', b' 5 ', b'5, 5', b'5,5', b'5, 6', b'1e3', b'0x10', b'',
                    b'18446744073709551616', b'99999999999999999999999999', b'5 5', b'\xd9\xa1', b'\x00',
                    b'1' * 5000]
_TRANSFER_ENCODINGS = [b'chunked', b'Chunked', b'CHUNKED', b'gzip, chunked', b'chunked, gzip', b'identity',
                       b'chunked ', b'', b'chunked,', b',chunked', b'gzip', b'chunked, chunked', b'x-chunked',
                       b'chunked\x00', b'\tchunked', b'chunked;q=1']
_CONNECTIONS = [b'close', b'Close', b'keep-alive', b'Keep-Alive', b'upgrade', b'close, keep-alive',
                b'keep-alive, close', b'', b'x, CLOSE', b'closed']
_FRAMING_NAMES = [b'Content-Length', b'content-length', b'CONTENT-LENGTH', b'Transfer-Encoding',
                  b'transfer-encoding', b'Connection', b'Host']
_ODD_FRAMING_NAMES = [b'Content-Length ', b' Content-Length', b'Content_Length', b'Transfer-Encoding\x00',
                      b'Content-Length\t']

_GOOD_TARGETS = st.one_of(origin_targets(), origin_targets(), st.sampled_from(
    [b'*', b'http://example.com/a?b', b'https://h:8080', b'HTTP://h?x', b'http://u@h/', b'http:///x']))
_PLAIN_FIELD = st.tuples(tokens, ows, field_values(), ows).map(lambda t: t[0] + b':' + t[1] + t[2] + t[3])
_FRAMING_FIELD = st.tuples(st.sampled_from(_FRAMING_NAMES), ows, st.one_of(
    st.sampled_from(_CONTENT_LENGTHS + _TRANSFER_ENCODINGS + _CONNECTIONS), hosts), ows).map(
    lambda t: t[0] + b':' + t[1] + t[2] + t[3])
_FIELD_LINES = st.one_of(_PLAIN_FIELD, _PLAIN_FIELD, _FRAMING_FIELD)
# obs-fold (RFC 9112 §5.2), no colon, whitespace before the colon, odd names, junk.
_ODD_LINES = st.one_of(
    st.tuples(st.sampled_from([b' ', b'\t']), field_values()).map(b''.join),
    tokens,
    st.tuples(tokens, st.sampled_from([b' ', b'\t']), field_values()).map(lambda t: t[0] + t[1] + b':' + t[2]),
    st.tuples(st.sampled_from(_ODD_FRAMING_NAMES), field_values()).map(lambda t: t[0] + b': ' + t[1]),
    st.tuples(tokens, st.binary(max_size=16)).map(lambda t: t[0] + b':' + t[1]),
    st.tuples(st.binary(max_size=8), st.binary(max_size=16)).map(lambda t: t[0] + b':' + t[1]),
    st.just(b''),
)


@st.composite
def grammar_heads(draw: Callable) -> bytes:
    """A head from RFC 9112 pieces, up to two of them near misses."""
    broken = draw(st.one_of(st.just(frozenset()), st.frozensets(st.sampled_from(
        ['method', 'target', 'version', 'separator', 'line end', 'field']), min_size=1, max_size=2)))
    junk = st.binary(max_size=10)
    method = draw(st.one_of(st.sampled_from(_BAD_METHODS), junk) if 'method' in broken else methods)
    target = draw(st.one_of(st.sampled_from(_BAD_TARGETS), junk) if 'target' in broken else _GOOD_TARGETS)
    version = draw(st.one_of(st.sampled_from(_VERSIONS), junk) if 'version' in broken
                   else st.sampled_from([b'HTTP/1.1', b'HTTP/1.0']))
    seps = [b' ', b' ']
    if 'separator' in broken:
        seps[draw(st.integers(0, 1))] = draw(st.sampled_from(_ODD_SEPS))
    fields = draw(st.lists(_FIELD_LINES, max_size=6))
    if draw(st.integers(0, 3)):   # mostly one Host (RFC 9112 §3.2), sometimes none
        fields.insert(draw(st.integers(0, len(fields))), b'Host: ' + draw(hosts))
    if 'field' in broken:
        for odd in draw(st.lists(_ODD_LINES, min_size=1, max_size=2)):
            fields.insert(draw(st.integers(0, len(fields))), odd)
    lines = [method + seps[0] + target + seps[1] + version] + fields
    eols = [b'\r\n'] * len(lines)
    if 'line end' in broken:
        # Not the last: the caller found CRLF CRLF there.
        eols[draw(st.integers(0, len(lines) - 1))] = draw(st.sampled_from(_ODD_EOLS))
        eols[-1] = b'\r\n'
    return b''.join(line + eol for line, eol in zip(lines, eols, strict=True)) + b'\r\n'


@st.composite
def valid_heads(draw: Callable, long_values: bool = False) -> tuple[bytes, dict]:
    """A well-formed request head and what ``parse_head`` must return for it.

    Returns:
        (data, expected): ``expected`` has ``method``, ``target``,
        ``version``, ``headers`` (lower-cased names, Latin-1 values),
        ``content_length``, ``chunked``, ``keep_alive`` (None: either is
        right) and ``lines`` (the lines without CRLF, for the limits).
    """
    method = draw(methods)
    target = draw(origin_targets())
    version = draw(st.sampled_from([b'HTTP/1.1', b'HTTP/1.0']))
    if long_values and draw(st.booleans()):
        target += b'a' * draw(st.integers(0, 300))
    fields = []
    for name, value in draw(st.lists(st.tuples(tokens.filter(lambda n: n.lower().decode() not in FRAMING),
                                               field_values()), max_size=8)):
        if long_values and draw(st.booleans()):
            value += b'v' * draw(st.integers(0, 300))
        fields.append((name, value))
    fields.insert(draw(st.integers(0, len(fields))), (b'Host', draw(hosts)))
    content_length, chunked = None, False
    framing = draw(st.sampled_from(['none', 'length', 'chunked'] if version == b'HTTP/1.1' else ['none', 'length']))
    if framing == 'length':
        content_length = draw(st.integers(0, 10 ** 12))
        fields.insert(draw(st.integers(0, len(fields))), (b'Content-Length', str(content_length).encode()))
    elif framing == 'chunked':
        chunked = True
        fields.insert(draw(st.integers(0, len(fields))),
                      (b'Transfer-Encoding', draw(st.sampled_from([b'chunked', b'Chunked', b'CHUNKED']))))
    options = draw(st.lists(st.sampled_from([b'close', b'keep-alive', b'upgrade', b'te']), max_size=2, unique=True))
    if options:
        fields.insert(draw(st.integers(0, len(fields))), (b'Connection', b', '.join(options)))
    if b'close' in options:
        keep_alive: Optional[bool] = False
    elif version == b'HTTP/1.1':
        keep_alive = True   # RFC 9112 §9.3: otherwise the connection persists.
    elif b'keep-alive' in options:
        keep_alive = None   # honouring HTTP/1.0 keep-alive is the server's choice.
    else:
        keep_alive = False
    lines = [b'%s %s %s' % (method, target, version)]
    for name, value in fields:
        lines.append(name + b':' + draw(ows) + value + draw(ows))
    expected = {
        'method': method.decode('latin-1'), 'target': target.decode('latin-1'), 'version': version.decode(),
        'headers': [(name.decode('latin-1').lower(), value.decode('latin-1')) for name, value in fields],
        'content_length': content_length, 'chunked': chunked, 'keep_alive': keep_alive, 'lines': lines,
    }
    return b''.join(line + b'\r\n' for line in lines) + b'\r\n', expected


@st.composite
def mutated_heads(draw: Callable) -> bytes:
    """A valid head with a few bytes flipped, inserted or deleted (the final CRLF CRLF kept)."""
    data = bytearray(draw(valid_heads())[0][:-4])
    interesting = st.sampled_from(b'\x00\r\n \t:,;"\\\x7f\x80\xff')
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(['flip', 'insert', 'delete']))
        if op == 'flip':
            data[pos] = draw(st.one_of(interesting, st.integers(0, 255)))
        elif op == 'insert':
            data.insert(pos, draw(st.one_of(interesting, st.integers(0, 255))))
        else:
            del data[pos]
    return bytes(data) + b'\r\n\r\n'


raw_heads = st.binary(max_size=300).map(lambda b: b + b'\r\n\r\n')


@st.composite
def big_heads(draw: Callable, max_leading: int = 20000) -> bytes:
    """Heads near and past the default limits, built cheaply by repetition.

    Args:
        max_leading: The most empty lines before the request line (RFC 9112
            §2.2 says to skip them; no limit counts them).
    """
    kind = draw(st.sampled_from(['long target', 'long value', 'many fields', 'many tiny lines', 'long name',
                                 'many folds', 'leading empty lines']))
    n = draw(st.one_of(st.integers(0, 70000), st.sampled_from([8180, 8190, 8192, 8194, 8200, 65500, 65536, 65600])))
    target, fields, leading = b'/', [], b''
    if kind == 'leading empty lines':
        leading = b'\r\n' * draw(st.one_of(st.integers(0, max_leading), st.just(max_leading)))
    elif kind == 'long target':
        target = b'/' + b'a' * n
    elif kind == 'long value':
        fields.append(b'X-Big: ' + b'v ' * (n // 2))
    elif kind == 'many fields':
        fields += [b'X-%d: %d' % (i, i) for i in range(n // 256)]
    elif kind == 'many tiny lines':
        fields += [b'a:'] * (n // 4)
    elif kind == 'long name':
        fields.append(b'X' * n + b': 1')
    else:
        fields += [b'X-Fold: a'] + [b' b'] * (n // 4)
    return leading + b'GET ' + target + b' HTTP/1.1\r\nHost: x\r\n' + b''.join(f + b'\r\n' for f in fields) + b'\r\n'


# ---- the properties ---------------------------------------------------------------


class Tally:
    """How the calls of one property ended, and the slowest one."""

    def __init__(self) -> None:
        self.examples = 0
        self.outcomes: collections.Counter = collections.Counter()
        self.slowest = (0.0, b'')
        #: The input of the latest call: after a failure, the shrunk one (Hypothesis replays it last).
        self.last = b''

    def add(self, outcome: str, elapsed: float, data: bytes) -> None:
        self.examples += 1
        self.outcomes[outcome] += 1
        if elapsed > self.slowest[0]:
            self.slowest = (elapsed, data)


def _options(headers: list, name: str) -> list[str]:
    """The comma-separated list elements of every ``name`` field (RFC 9110 §5.6.1)."""
    return [item.strip().lower() for key, value in headers if key == name for item in value.split(',')]


class Checker:
    """Runs ``parse_head`` and asserts the properties; counts outcomes in ``tally``.

    Args:
        http1: The ``brim.server.http1`` module (or a stand-in).
        time_bound: Seconds any call may take, plus ``per_byte`` seconds per
            input byte: linear time passes with a wide margin, quadratic
            time on the big inputs does not.
        tally: Where to count the outcomes, or None.
    """

    def __init__(self, http1: Any, time_bound: float = 1.0, per_byte: float = 1e-7,
                 tally: Optional[Tally] = None) -> None:
        self.http1 = http1
        self.time_bound = time_bound
        self.per_byte = per_byte
        self.tally = tally

    def head(self, data: bytes, limits: Any = None) -> Any:
        """Parse ``data``; assert it raised only a proper HeadError or returned a sane Head.

        Returns:
            The Head, or the HeadError.
        """
        http1 = self.http1
        if self.tally is not None:
            self.tally.last = data
        start = time.perf_counter()
        try:
            result = http1.parse_head(data, limits if limits is not None else http1.Limits())
        except http1.HeadError as err:
            result = err
        elapsed = time.perf_counter() - start
        bound = self.time_bound + self.per_byte * len(data)
        if elapsed >= bound:
            raise AssertionError('parse_head took %.3f s for %d bytes (bound %.3f s)' % (elapsed, len(data), bound))
        if isinstance(result, http1.HeadError):
            assert result.status in STATUSES, result.status
            assert isinstance(result.reason, str) and result.reason, result.reason
            assert '\r' not in result.reason and '\n' not in result.reason, result.reason
            outcome = str(result.status)
        else:
            self._invariants(result)
            outcome = 'accepted'
        if self.tally is not None:
            self.tally.add(outcome, elapsed, data)
        return result

    def _invariants(self, head: Any) -> None:
        assert head.version in ('HTTP/1.1', 'HTTP/1.0'), head.version
        assert isinstance(head.method, str) and head.method and _TCHAR_SET.issuperset(head.method), head.method
        assert isinstance(head.target, str) and head.target, head.target
        assert not any(ord(c) <= 0x20 or ord(c) == 0x7f for c in head.target), head.target
        for name, value in head.headers:
            assert isinstance(name, str) and name and _TCHAR_SET.issuperset(name) and name == name.lower(), name
            assert isinstance(value, str), value
            assert not {'\r', '\n', '\x00'} & set(value), value
            assert value == value.strip(' \t'), value   # RFC 9112 §5.1: OWS is not part of the value
        assert head.content_length is None or (type(head.content_length) is int and head.content_length >= 0)
        assert type(head.chunked) is bool and type(head.keep_alive) is bool
        assert not (head.chunked and head.content_length is not None), 'both Content-Length and chunked'
        lengths = _options(head.headers, 'content-length')
        if lengths and not head.chunked:
            # RFC 9112 §6.3: an invalid Content-Length is 400, so an accepted one is digits,
            # and one value however often repeated.
            assert all(v.isdigit() and v.isascii() and int(v) == head.content_length for v in lengths), lengths
        codings = _options(head.headers, 'transfer-encoding')
        if codings and head.version == 'HTTP/1.1':
            # RFC 9112 §6.3: chunked not last in a request is 400.
            assert head.chunked and codings[-1] == 'chunked', codings
        if head.chunked:
            assert codings, 'chunked without a Transfer-Encoding field'
        connection = _options(head.headers, 'connection')
        if 'close' in connection or (head.version == 'HTTP/1.0' and 'keep-alive' not in connection):
            # RFC 9112 §9.3: "close" wins, whatever the version; HTTP/1.0 persists only on "keep-alive".
            assert not head.keep_alive, connection

    def valid(self, data: bytes, expected: dict) -> None:
        """A well-formed head within the default limits parses to exactly what was sent."""
        head = self.head(data)
        assert not isinstance(head, self.http1.HeadError), 'valid head refused: %r' % head
        keys = ('method', 'target', 'version', 'headers', 'content_length', 'chunked')
        got = {key: getattr(head, key) for key in keys}
        got['headers'] = [tuple(pair) for pair in got['headers']]
        assert got == {key: expected[key] for key in keys}
        if expected['keep_alive'] is not None:
            assert head.keep_alive == expected['keep_alive']

    def limits(self, data: bytes, expected: dict, sizes: tuple) -> None:
        """Clearly over a limit gets its status; clearly under all of them parses.

        A line's length may be counted with or without its CRLF, the head's
        size with or without the CRLFs: only the clear cases are asserted.
        """
        http1 = self.http1
        max_request_line, max_header_line, max_headers, max_header_size = sizes
        result = self.head(data, http1.Limits(max_request_line=max_request_line, max_header_line=max_header_line,
                                              max_headers=max_headers, max_header_size=max_header_size))
        request_line, fields = expected['lines'][0], expected['lines'][1:]
        size_over = len(data) - 2 * (len(expected['lines']) + 1) > max_header_size
        if len(request_line) > max_request_line:
            assert isinstance(result, http1.HeadError), 'request line over max_request_line accepted'
            assert result.status in ((414, 431) if size_over else (414,)), result.status
        elif len(request_line) + 2 > max_request_line:
            return
        elif size_over or len(fields) > max_headers or any(len(f) > max_header_line for f in fields):
            assert isinstance(result, http1.HeadError) and result.status == 431, result
        elif len(data) <= max_header_size and all(len(f) + 2 <= max_header_line for f in fields):
            assert not isinstance(result, http1.HeadError), 'head within limits refused: %r' % result


@st.composite
def limited_heads(draw: Callable) -> tuple[bytes, dict, tuple]:
    """(data, expected, sizes): a valid head and limits near its own sizes.

    Each limit is the head's own measure plus a small offset (-4 to 4,
    where off-by-one and CRLF-counting mistakes show) or a random value.
    """
    data, expected = draw(valid_heads(long_values=True))
    request_line, fields = expected['lines'][0], expected['lines'][1:]

    def near(measure: int) -> int:
        return max(1, draw(st.one_of(st.integers(-4, 4).map(measure.__add__), st.integers(1, 2 * measure + 8))))

    sizes = (near(len(request_line)), near(max((len(f) for f in fields), default=0)), near(len(fields)),
             near(len(data)))
    return data, expected, sizes



# ---- the long run -------------------------------------------------------------------


def _properties(checker: Callable[[str], Checker]) -> dict[str, Callable[[], None]]:
    @given(grammar_heads())
    def grammar(data: bytes) -> None:
        checker('grammar').head(data)

    @given(mutated_heads())
    def mutated(data: bytes) -> None:
        checker('mutated').head(data)

    @given(raw_heads)
    def raw(data: bytes) -> None:
        checker('raw').head(data)

    @given(valid_heads())
    def valid(case: tuple) -> None:
        checker('valid').valid(*case)

    @given(limited_heads())
    def limits(case: tuple) -> None:
        checker('limits').limits(*case)

    @given(big_heads(max_leading=100000))
    def big(data: bytes) -> None:
        checker('big').head(data)

    return {'grammar': grammar, 'mutated': mutated, 'raw': raw, 'valid': valid, 'limits': limits, 'big': big}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--examples', type=int, default=200000, help='examples per property (default 200000)')
    parser.add_argument('--seed', type=int, default=None, help='Hypothesis seed, to repeat a run')
    parser.add_argument('--time-bound', type=float, default=0.1,
                        help='seconds one parse_head call may take, plus --per-byte (default 0.1)')
    parser.add_argument('--per-byte', type=float, default=1e-7, help='seconds per input byte (default 1e-7)')
    parser.add_argument('--property', action='append', dest='names', metavar='NAME',
                        help='run only this property (grammar mutated raw valid limits big); repeatable')
    args = parser.parse_args()
    http1 = load_parser()
    if http1 is None:
        print('brim.server.http1 has no parse_head yet: nothing to fuzz')
        return 2
    settings.register_profile(
        'long', max_examples=args.examples, deadline=None, database=None, derandomize=False,
        phases=[Phase.generate, Phase.shrink], print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.load_profile('long')
    tallies: dict[str, Tally] = {}

    def checker(name: str) -> Checker:
        return Checker(http1, args.time_bound, args.per_byte, tallies.setdefault(name, Tally()))

    properties = _properties(checker)
    names = args.names or list(properties)
    failed = []
    for name in names:
        test = properties[name]
        if args.seed is not None:
            test = seed(args.seed)(test)
        started = time.monotonic()
        print('%s: running %d examples ...' % (name, args.examples), flush=True)
        try:
            test()
        except Exception:
            failed.append(name)
            traceback.print_exc()
            last = tallies[name].last if name in tallies else b''
            shown = repr(last) if len(last) <= 300 else '%r ... %r' % (last[:150], last[-150:])
            print('%s: minimal failing input (%d bytes): %s' % (name, len(last), shown))
        tally = tallies.get(name, Tally())
        outcomes = ', '.join('%s %d' % item for item in sorted(tally.outcomes.items()))
        print('%s: %d calls in %.1f s (%s); slowest %.4f s (%d bytes)%s' % (
            name, tally.examples, time.monotonic() - started, outcomes or '-', tally.slowest[0],
            len(tally.slowest[1]), '; FAILED' if name in failed else ''), flush=True)
    total = sum(t.examples for t in tallies.values())
    print('summary: %d properties, %d parse_head calls, %d failed%s' % (
        len(names), total, len(failed), (': ' + ' '.join(failed)) if failed else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
