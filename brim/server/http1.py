"""HTTP/1.1 request syntax, server side (RFC 9112), with no I/O.

:func:`parse_head` turns the bytes of one request head into a :class:`Head`
or raises :class:`HeadError` with the status to answer; :func:`chunk_size`
reads one chunk-size line of a chunked body. The connection code in
:mod:`brim.server.wsgi` does the reading and writing; everything that
decides whether a request is acceptable is here, as plain functions tested
in memory (``tests/unit/test_http1.py``) and by the hostile-request corpus
(``tests/hostile/``).

The parser is strict on purpose. A request that two parsers could read two
ways is how request smuggling works (a proxy in front frames it one way,
brimd another), so anything RFC 9112 lets a server reject is rejected, with
400 and a closed connection, before any app runs:

- line endings are CRLF only; a bare CR or a bare LF is an error
  (RFC 9112 §2.2 allows a server to accept a bare LF; brimd does not);
- obs-fold, whitespace before a field's colon, a field name that is not a
  token, and control characters or NUL in a field value (RFC 9112 §5.1,
  §5.2; RFC 9110 §5.5);
- a request line that is not ``method SP request-target SP HTTP/1.x``
  with single spaces (RFC 9112 §3), or a target that is neither
  origin-form, absolute-form, nor ``*`` for OPTIONS (RFC 9112 §3.2);
- ``Transfer-Encoding`` anything but one final ``chunked``, or sent with
  HTTP/1.0; ``Content-Length`` that is not digits, or that appears more than
  once, or together with ``Transfer-Encoding`` (RFC 9112 §6.1, §6.3);
- no ``Host``, or several, on HTTP/1.1 (RFC 9112 §3.2);
- an HTTP major version other than 1 (400, not 505: see :func:`parse_head`).

Invariants: a :class:`Head` that :func:`parse_head` returns has a version of
``'HTTP/1.1'`` or ``'HTTP/1.0'``, header names that are lower-case tokens,
values with no CR, LF or NUL, and at most one of ``content_length`` and
``chunked``; every rejection is a :class:`HeadError` and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

#: RFC 9110 §5.6.2: token = 1*tchar.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
#: RFC 9112 §3: request-line = method SP request-target SP HTTP-version.
#: The target is checked for forbidden bytes on its own, below.
_REQUEST_LINE = re.compile(rb'(' + _TOKEN + rb') ([^ ]+) HTTP/([0-9])\.([0-9])')
#: RFC 9112 §7.1.1: chunk-size [ chunk-ext ] CRLF, with
#: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ).
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_LINE = re.compile(rb'([0-9A-Fa-f]{1,16})((?:[ \t]*;[ \t]*' + _TOKEN + rb'(?:[ \t]*=[ \t]*(?:'
                         + _TOKEN + rb'|' + _QUOTED + rb'))?)*)')

# RFC 9110 §5.5: field-value bytes are VCHAR, obs-text, SP and HTAB; every
# other byte (controls, NUL, DEL) is refused. bytes.translate(None, OK)
# leaves exactly the refused bytes of a value.
_VALUE_OK = bytes([9]) + bytes(range(32, 127)) + bytes(range(128, 256))
# RFC 3986 §2 and RFC 9112 §3.2: no controls, SP, DEL, or non-ASCII in a
# target (clients percent-encode them); the rest is left to the app.
_TARGET_OK = bytes(range(33, 127))
# Longest Content-Length accepted: 18 digits stay below 2**63.
_MAX_LENGTH_DIGITS = 18


@dataclass(frozen=True)
class Limits:
    """How big a request head may be, in bytes (and field lines).

    Attributes:
        max_request_line: Longest request line, without CRLF; longer is 414.
        max_header_line: Longest field line, without CRLF; longer is 431.
        max_headers: Most field lines; more is 431.
        max_header_size: Most bytes in the whole head, CRLFs included; more
            is 431 (or 414 when the request line alone is too long).
    """

    max_request_line: int = 8192
    max_header_line: int = 8192
    max_headers: int = 100
    max_header_size: int = 65536


class HeadError(Exception):
    """A request that cannot be served: answer ``status`` and close.

    Attributes:
        status: 400, 414 or 431 (RFC 9110 §15.5, RFC 6585 §5).
        reason: What was wrong, for the response body and the log.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__('%d %s' % (status, reason))
        self.status = status
        self.reason = reason


@dataclass
class Head:
    """One parsed request head.

    Attributes:
        method: The method token, e.g. ``'GET'`` (case-sensitive, RFC 9110 §9.1).
        target: The request target in origin form (``/path?query``), or
            ``'*'`` for ``OPTIONS *``; an absolute-form target is turned
            into origin form and its authority replaces Host (RFC 9112 §3.2.2).
        version: ``'HTTP/1.1'`` or ``'HTTP/1.0'`` (HTTP/1.2 and up are
            served as 1.1, RFC 9110 §2.5).
        headers: ``(name, value)`` pairs in order; names lower-case, values
            latin-1 text with surrounding whitespace removed (PEP 3333).
        content_length: The body's length in bytes, or None (no body, or chunked).
        chunked: True if the body is chunked (RFC 9112 §7.1).
        keep_alive: True unless the client asked to close (HTTP/1.1) or
            did not ask to keep alive (HTTP/1.0), RFC 9112 §9.3.
        expect_continue: True if the client waits for ``100 Continue``
            before it sends the body (RFC 9110 §10.1.1).
    """

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    content_length: Optional[int] = None
    chunked: bool = False
    keep_alive: bool = True
    expect_continue: bool = False


def head_size_error(start: bytes, limits: Limits) -> Optional[HeadError]:
    """Check a head still being received (no blank line yet) against the limits.

    Args:
        start: The bytes received so far, leading empty lines removed.

    Returns:
        The error to answer at once, or None to keep reading.
    """
    end = start.find(b'\r\n')
    # A CR at the very end may be the first half of a CRLF still coming.
    cr = 1 if start.endswith(b'\r') else 0
    first = len(start) - cr if end < 0 else end
    if first > limits.max_request_line:
        return HeadError(414, 'request line longer than %d bytes' % limits.max_request_line)
    if len(start) > limits.max_header_size:
        return HeadError(431, 'request head longer than %d bytes' % limits.max_header_size)
    if end >= 0:
        last = start.rfind(b'\r\n')
        if len(start) - cr - last - 2 > limits.max_header_line:
            return HeadError(431, 'header line longer than %d bytes' % limits.max_header_line)
    return None


def skip_empty_lines(data: bytes) -> int:
    """The length of the empty lines (CRLFs) at the start of ``data``, which
    a server ignores before a request line (RFC 9112 §2.2). Linear time."""
    index = 0
    while data.startswith(b'\r\n', index):
        index += 2
    return index


def parse_head(data: bytes, limits: Limits) -> Head:
    """Parse one request head (RFC 9112 §2-§6).

    Args:
        data: The head's bytes, from the request line up to and including
            the empty line that ends it (``b'\\r\\n\\r\\n'``); empty lines
            before the request line are skipped (RFC 9112 §2.2).
        limits: The size limits.

    Returns:
        The :class:`Head`.

    Raises:
        HeadError: 414 for a request line over ``limits.max_request_line``;
            431 for a field line over ``max_header_line``, more than
            ``max_headers`` fields or a head over ``max_header_size``; 400
            for everything else this module's docstring lists, and for an
            HTTP major version other than 1.
    """
    data = data[skip_empty_lines(data):]
    if not data.endswith(b'\r\n\r\n'):
        raise HeadError(400, 'request head not ended by an empty line')
    error = head_size_error(data[:-2], limits)
    if error is None and len(data) > limits.max_header_size:
        error = HeadError(431, 'request head longer than %d bytes' % limits.max_header_size)
    if error is not None:
        raise error
    crlf = data.count(b'\r\n')
    if data.count(b'\r') != crlf or data.count(b'\n') != crlf:
        # RFC 9112 §2.2: a bare CR is invalid; brimd refuses a bare LF too.
        raise HeadError(400, 'line ending other than CRLF')
    lines = data[:-4].split(b'\r\n')
    method, target, version = _request_line(lines[0])
    if len(lines) - 1 > limits.max_headers:
        raise HeadError(431, 'more than %d header lines' % limits.max_headers)
    headers = []
    for line in lines[1:]:
        if len(line) > limits.max_header_line:
            raise HeadError(431, 'header line longer than %d bytes' % limits.max_header_line)
        headers.append(parse_field(line))
    head = Head(method, target, version, headers)
    _frame(head)
    return head


def _request_line(line: bytes) -> tuple[str, str, str]:
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        raise HeadError(400, 'malformed request line')
    method, target, major, minor = match.groups()
    if major != b'1':
        # RFC 9110 §15.6.6 allows 505 here. brimd answers 400 instead, on
        # purpose: a client speaking another version is the client's error,
        # and must not count as a server error in status_5xx_count.
        raise HeadError(400, 'HTTP version %s.%s not supported' % (major.decode(), minor.decode()))
    if target.translate(None, _TARGET_OK):
        raise HeadError(400, 'control, space or non-ASCII byte in the request target')
    if not (target[:1] == b'/' or (target == b'*' and method == b'OPTIONS')
            or target[:7].lower() == b'http://' or target[:8].lower() == b'https://'):
        # RFC 9112 §3.2: origin-form, absolute-form or asterisk-form; the
        # authority-form is for CONNECT, which brimd does not serve.
        raise HeadError(400, 'request target is not origin-form, absolute-form or OPTIONS *')
    return method.decode('ascii'), target.decode('ascii'), 'HTTP/1.0' if minor == b'0' else 'HTTP/1.1'


def parse_field(line: bytes) -> tuple[str, str]:
    """Parse one field line (RFC 9112 §5), of a head or a trailer section.

    Args:
        line: The line without its CRLF, e.g. ``b'Host: example.com'``.

    Returns:
        ``(name, value)``: the name lower-case, the value latin-1 text
        without surrounding SP or HTAB.

    Raises:
        HeadError: 400 for obs-fold, no colon, a name that is not a token
            (or whitespace before the colon), or a control byte in the value.
    """
    if line[:1] in (b' ', b'\t'):
        # RFC 9112 §5.2: obs-fold; a server may reject it with 400.
        raise HeadError(400, 'obsolete line folding in a header')
    name, colon, value = line.partition(b':')
    if not colon:
        raise HeadError(400, 'header line without a colon')
    if _TOKEN_RE.fullmatch(name) is None:
        if name and _TOKEN_RE.fullmatch(name.rstrip(b' \t')) is not None:
            # RFC 9112 §5.1: "A server MUST reject, with a response status code
            # of 400 (Bad Request), any received request message that contains
            # whitespace between a header field name and colon."
            raise HeadError(400, 'whitespace before the colon of a header')
        raise HeadError(400, 'header name is not a token')
    value = value.strip(b' \t')
    if value.translate(None, _VALUE_OK):
        raise HeadError(400, 'control character in the value of header %s' % name.decode('ascii'))
    return name.decode('ascii').lower(), value.decode('latin-1')


def is_token(text: str) -> bool:
    """True if ``text`` is an RFC 9110 §5.6.2 token (a valid field name or method)."""
    return text.isascii() and _TOKEN_RE.fullmatch(text.encode('ascii')) is not None


def _tokens(head: Head, name: str) -> list[str]:
    """The comma-separated list members of every ``name`` field, lower-case."""
    return [member.strip(' \t').lower() for key, value in head.headers if key == name
            for member in value.split(',') if member.strip(' \t')]


def _frame(head: Head) -> None:
    """Work out the body's framing (RFC 9112 §6), Host, keep-alive and Expect."""
    lengths = [value for key, value in head.headers if key == 'content-length']
    encodings = [value for key, value in head.headers if key == 'transfer-encoding']
    hosts = sum(1 for key, _ in head.headers if key == 'host')
    http11 = head.version == 'HTTP/1.1'
    if encodings:
        if not http11:
            # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
            raise HeadError(400, 'Transfer-Encoding in an HTTP/1.0 request')
        if lengths:
            # RFC 9112 §6.1: a server MAY reject both; it must then close.
            raise HeadError(400, 'both Content-Length and Transfer-Encoding')
        if _tokens(head, 'transfer-encoding') != ['chunked']:
            # RFC 9112 §6.3: chunked must be the final coding, applied once
            # (§7); other codings are not supported here.
            raise HeadError(400, 'Transfer-Encoding other than chunked')
        head.chunked = True
    elif lengths:
        if len(lengths) > 1:
            # RFC 9112 §6.3 allows merging identical values; brimd refuses
            # any repeat, since proxies disagree on which one wins.
            raise HeadError(400, 'more than one Content-Length')
        value = lengths[0]
        if not (value.isascii() and value.isdigit()) or len(value) > _MAX_LENGTH_DIGITS:
            raise HeadError(400, 'Content-Length is not a number of bytes')
        head.content_length = int(value)
    if hosts != 1 and (http11 or hosts > 1):
        # RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
        # code to any HTTP/1.1 request message that lacks a Host header field
        # and to any request message that contains more than one Host header
        # field line".
        raise HeadError(400, 'no Host header' if not hosts else 'more than one Host header')
    connection = _tokens(head, 'connection')
    # RFC 9112 §9.3: close wins; HTTP/1.0 stays open only if asked.
    head.keep_alive = 'close' not in connection and (http11 or 'keep-alive' in connection)
    head.expect_continue = http11 and _tokens(head, 'expect') == ['100-continue']
    if head.target[:1] not in ('/', '*'):
        _origin_form(head)


def _origin_form(head: Head) -> None:
    """RFC 9112 §3.2.2: a server "MUST ignore the received Host header field
    (if any) and instead use the host information of the request-target"."""
    rest = head.target.split('://', 1)[1]
    cut = min((i for i in (rest.find('/'), rest.find('?')) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if not authority or '@' in authority:
        raise HeadError(400, 'absolute-form target without a host, or with userinfo')
    head.target = path if path.startswith('/') else '/' + path
    head.headers = [(key, value) for key, value in head.headers if key != 'host']
    head.headers.append(('host', authority))


def chunk_size(line: bytes) -> int:
    """Parse one chunk-size line (RFC 9112 §7.1), extensions ignored.

    Args:
        line: The line without its CRLF, e.g. ``b'1a'`` or ``b'1a;name=value'``.

    Returns:
        The chunk's size in bytes (0 for the last chunk).

    Raises:
        HeadError: 400 if the line is not ``1*HEXDIG [chunk-ext]``: no sign,
            ``0x`` prefix, underscores, spaces around the size, or more than
            16 hex digits.
    """
    match = _CHUNK_LINE.fullmatch(line)
    if match is None:
        raise HeadError(400, 'malformed chunk size line')
    return int(match.group(1), 16)
