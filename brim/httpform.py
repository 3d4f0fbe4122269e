"""Parse ``multipart/form-data`` request bodies (RFC 7578) part by part, streaming.

Nothing here reads the whole body into memory: :func:`iter_form` yields one
:class:`FormPart` at a time, whose ``fp`` reads that part's content straight
from ``wsgi.input``. Typical use in a WSGI app::

    from brim.http import HTTPBadRequest, HTTPRequestEntityTooLarge
    from brim.httpform import CappedFileLikeObject, FormInvalid, FormTooLarge, iter_form, parse_attrs

    def __call__(self, env, start_response):
        fields = {}
        try:
            for part in iter_form(env):
                value, attrs = parse_attrs(part.get_header('content-disposition', ''))
                if value != 'form-data' or 'name' not in attrs:
                    continue
                if 'filename' in attrs:
                    save_upload(attrs['filename'], part.fp)   # reads in chunks
                else:
                    fields[attrs['name']] = CappedFileLikeObject(part.fp, 4096).read()
        except (FormTooLarge, EOFError):
            return HTTPRequestEntityTooLarge()(env, start_response)
        except FormInvalid as err:
            return HTTPBadRequest('%s\\n' % err)(env, start_response)

Invariants:

* Memory is bounded by ``read_chunk_size`` plus the boundary length plus
  ``max_header_size``, whatever the body size.
* A part's ``fp`` is valid only until the generator is advanced; advancing
  skips (reads and discards) whatever of the part was not read.
* Reads never go past ``CONTENT_LENGTH`` (PEP 3333); with no
  ``CONTENT_LENGTH`` (a chunked request) the input is read until it ends.
* Bad input always ends in :class:`FormInvalid` (400) or :class:`FormTooLarge`
  (413), never in a hang: every loop consumes input or ends at its end.
"""

from __future__ import annotations

import codecs
import io
import urllib.parse
from collections.abc import Iterator
from typing import Any, Optional

#: Default bytes read from ``wsgi.input`` at a time.
DEFAULT_READ_CHUNK_SIZE = 65536
#: Default cap on one part's header block, in bytes; browsers send a few
#: hundred, so 16 KiB is generous yet keeps a hostile client's cost small.
DEFAULT_MAX_HEADER_SIZE = 16384

# RFC 2046 section 5.1.1: a boundary is 1 to 70 characters.
_MAX_BOUNDARY_LENGTH = 70
_CRLF = b'\r\n'


class FormInvalid(Exception):
    """The body is not valid ``multipart/form-data``; answer 400 Bad Request.

    Raised for: a Content-Type that is not multipart or has no usable
    boundary; a body that ends before the closing boundary (truncated, or
    the boundary never comes); malformed part headers; junk after a boundary.
    """


class FormTooLarge(FormInvalid):
    """A form part exceeds a configured cap; answer 413 Content Too Large.

    Raised when a part's header block exceeds ``max_header_size`` or its
    content exceeds ``max_part_size``.
    """


class _BodyReader:
    """Buffered reads of ``wsgi.input`` that never pass CONTENT_LENGTH."""

    def __init__(self, wsgi_input: Any, remaining: Optional[int], chunk_size: int) -> None:
        self.input = wsgi_input
        self.remaining = remaining
        self.chunk_size = chunk_size
        self.eof = False

    def read_chunk(self) -> bytes:
        """Return the next bytes of the body, b'' once it has ended."""
        if self.eof:
            return b''
        size = self.chunk_size
        if self.remaining is not None:
            size = min(size, self.remaining)
        data = self.input.read(size) if size > 0 else b''
        if not data:
            self.eof = True
            return b''
        if self.remaining is not None:
            self.remaining -= len(data)
        return data


class _MultipartScanner:
    """Splits the body at ``CRLF--boundary`` delimiters (RFC 2046 section 5.1.1).

    The stream is treated as if it began with CRLF, so the first delimiter
    (which may start the body) looks like every other one; a preamble before
    it is skipped as if it were the content of a part.
    """

    def __init__(self, reader: _BodyReader, boundary: bytes) -> None:
        self.reader = reader
        self.delimiter = _CRLF + b'--' + boundary
        self.buf = bytearray(_CRLF)
        # Scan state over self.buf: index of the delimiter (or -1) and how
        # many leading bytes are known to hold no delimiter; None = unknown.
        self._found: Optional[int] = None
        self._safe = 0

    def _fill(self) -> bool:
        data = self.reader.read_chunk()
        if not data:
            return False
        self.buf += data
        self._found = None
        return True

    def _consume(self, size: int) -> bytes:
        data = bytes(self.buf[:size])
        del self.buf[:size]
        if self._found == -1 or (self._found is not None and self._found >= size):
            if self._found >= 0:
                self._found -= size
            self._safe -= size
        else:
            # Consumed past a delimiter (read_line did): scan again.
            self._found = None
        return data

    def read_content(self, size: int) -> bytes:
        """Return up to ``size`` bytes of the current part, b'' at its delimiter.

        At the delimiter the delimiter is consumed; the caller then reads
        what follows it with :meth:`after_delimiter`.

        Raises:
            FormInvalid: if the body ends before the delimiter.
        """
        while True:
            if self._found is None:
                self._found = self.buf.find(self.delimiter)
                # Bytes before the last len(delimiter)-1 cannot start one.
                self._safe = len(self.buf) - len(self.delimiter) + 1
            if self._found == 0:
                self._consume(len(self.delimiter))
                return b''
            if self._found > 0:
                return self._consume(min(size, self._found))
            if self._safe > 0:
                return self._consume(min(size, self._safe))
            if not self._fill():
                raise FormInvalid('Form body ended before the closing boundary.')

    def peek(self, size: int) -> bytes:
        """Return the next ``size`` bytes (fewer at the end) without consuming them."""
        while len(self.buf) < size and self._fill():
            pass
        return bytes(self.buf[:size])

    def read_line(self, limit: int) -> bytes:
        """Return the next line, without its CRLF.

        Raises:
            FormTooLarge: if no CRLF comes within ``limit`` bytes.
            FormInvalid: if the body ends first.
        """
        start = 0
        while True:
            index = self.buf.find(_CRLF, start)
            if index >= 0:
                if index > limit:
                    break
                line = self._consume(index + 2)
                return line[:-2]
            if len(self.buf) > limit + 1:
                break
            start = max(0, len(self.buf) - 1)
            if not self._fill():
                raise FormInvalid('Form body ended inside part headers.')
        raise FormTooLarge('Form part headers exceed %d bytes.' % limit)

    def after_delimiter(self) -> bool:
        """Read what follows a delimiter; True if a part follows, False at the end.

        RFC 2046: ``--`` marks the close delimiter (the epilogue after it is
        ignored); otherwise optional transport padding (spaces, tabs) and CRLF.

        Raises:
            FormInvalid: for anything else, or a body ending here.
        """
        if self.peek(2) == b'--':
            return False
        line = self.read_line(_MAX_BOUNDARY_LENGTH)
        if line.strip(b' \t'):
            raise FormInvalid('Junk after a form boundary.')
        return True


class _PartFile(io.RawIOBase):
    """The raw stream under one :class:`FormPart`'s ``fp``: its content, streamed."""

    def __init__(self, scanner: _MultipartScanner, max_part_size: Optional[int]) -> None:
        super().__init__()
        self._scanner = scanner
        self._max = max_part_size
        self._count = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        if self._done or size == 0:
            return 0
        data = self._scanner.read_content(size)
        if not data:
            self._done = True
            return 0
        self._count += len(data)
        if self._max is not None and self._count > self._max:
            raise FormTooLarge('Form part exceeds %d bytes.' % self._max)
        buffer[:len(data)] = data
        return len(data)

    def skip(self) -> None:
        """Read and discard the rest of the content (memory stays flat)."""
        chunk = bytearray(self._scanner.reader.chunk_size)
        while self.readinto(chunk):
            pass


class FormPart:
    """One part of a form: its headers and a file-like ``fp`` of its content.

    Attributes:
        headers: list of (name, value) ``str`` pairs as sent (values decoded
            as UTF-8, RFC 7578 section 5.1; invalid bytes become U+FFFD).
        fp: an :class:`io.BufferedReader` (``read``, ``readinto``,
            ``readline``, iteration) giving the part's content; it must be
            read before the next part is requested from :func:`iter_form`.
    """

    def __init__(self, headers: list[tuple[str, str]], fp: io.BufferedReader) -> None:
        self.headers = headers
        self.fp = fp

    def get_header(self, name: str, default: Any = None) -> Any:
        """Return the value of header ``name`` (case-insensitive), or ``default``."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return default

    getheader = get_header  # the rfc822.Message name the original brim docs use

    def __repr__(self) -> str:
        return 'FormPart(%r)' % (self.headers,)


def _read_part_headers(scanner: _MultipartScanner, max_header_size: int) -> list[tuple[str, str]]:
    """Read a part's header block, up to and including its empty line (RFC 5322 fields)."""
    headers: list[tuple[str, str]] = []
    budget = max_header_size
    while True:
        line = scanner.read_line(budget)
        budget -= len(line) + 2
        if not line:
            return headers
        if budget < 0:
            raise FormTooLarge('Form part headers exceed %d bytes.' % max_header_size)
        text = line.decode('utf-8', 'replace')
        if text[0] in ' \t':
            # Obsolete line folding (RFC 5322 section 4.2): join to the previous.
            if not headers:
                raise FormInvalid('Form part header starts with whitespace.')
            name, value = headers[-1]
            headers[-1] = (name, value + ' ' + text.strip())
            continue
        name, colon, value = text.partition(':')
        if not colon or not name or name != name.strip():
            raise FormInvalid('Malformed form part header %r.' % text[:80])
        headers.append((name, value.strip()))


def _get_boundary(env: dict[str, Any]) -> bytes:
    content_type = env.get('CONTENT_TYPE') or ''
    value, attrs = parse_attrs(content_type)
    if not value.lower().startswith('multipart/'):
        raise FormInvalid('Content-Type %r is not multipart.' % content_type[:80])
    boundary = attrs.get('boundary')
    if not boundary:
        raise FormInvalid('Content-Type has no multipart boundary.')
    # RFC 2046 section 5.1.1: 1 to 70 characters, no CR or LF; headers
    # reach WSGI as latin-1 (PEP 3333), which round-trips any byte.
    if len(boundary) > _MAX_BOUNDARY_LENGTH or '\r' in boundary or '\n' in boundary:
        raise FormInvalid('Invalid multipart boundary.')
    try:
        return boundary.encode('latin-1')
    except UnicodeError:
        raise FormInvalid('Invalid multipart boundary.') from None


def _content_length(env: dict[str, Any]) -> Optional[int]:
    text = env.get('CONTENT_LENGTH')
    if text in (None, ''):
        return None
    try:
        length = int(text)
    except ValueError:
        raise FormInvalid('Invalid Content-Length %r.' % text) from None
    if length < 0:
        raise FormInvalid('Invalid Content-Length %r.' % text)
    return length


def iter_form(env: dict[str, Any], read_chunk_size: int = DEFAULT_READ_CHUNK_SIZE,
              max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
              max_part_size: Optional[int] = None) -> Iterator[FormPart]:
    """Yield each :class:`FormPart` of a ``multipart/form-data`` request body.

    Args:
        env: The WSGI environ; ``CONTENT_TYPE`` gives the boundary,
            ``wsgi.input`` the body, ``CONTENT_LENGTH`` its length in bytes
            (absent: read ``wsgi.input`` until it ends).
        read_chunk_size: Bytes read from ``wsgi.input`` at a time.
        max_header_size: Cap in bytes on each part's header block.
        max_part_size: Cap in bytes on each part's content, or None for no cap
            (then wrap ``fp`` in :class:`CappedFileLikeObject` as needed).

    Yields:
        FormPart: read its ``fp`` before asking for the next one; what is
        left unread is skipped.

    Raises:
        FormInvalid: bad Content-Type or boundary, truncated body, missing
            boundary, malformed part headers (400).
        FormTooLarge: a part's headers or content exceed the caps (413).
    """
    boundary = _get_boundary(env)
    reader = _BodyReader(env['wsgi.input'], _content_length(env), read_chunk_size)
    scanner = _MultipartScanner(reader, boundary)
    # Whatever precedes the first delimiter is the preamble: skipped.
    part = _PartFile(scanner, None)
    while True:
        part.skip()
        if not scanner.after_delimiter():
            return
        headers = _read_part_headers(scanner, max_header_size)
        part = _PartFile(scanner, max_part_size)
        # Buffered: read(n) returns n bytes unless the part ends first.
        yield FormPart(headers, io.BufferedReader(part, read_chunk_size))


def _split_params(text: str) -> Iterator[tuple[str, str, bool]]:
    """Yield (name, raw value, was_quoted) for each ``; name=value`` in ``text``."""
    pos, end = 0, len(text)
    while pos < end:
        semi = text.find(';', pos)
        eq = text.find('=', pos)
        if eq < 0 or (0 <= semi < eq):
            # A parameter with no value: skip it.
            pos = end if semi < 0 else semi + 1
            continue
        name = text[pos:eq].strip().lower()
        pos = eq + 1
        while pos < end and text[pos] in ' \t':
            pos += 1
        if pos < end and text[pos] == '"':
            # quoted-string with quoted-pairs (RFC 9110 section 5.6.4).
            chars = []
            pos += 1
            while pos < end and text[pos] != '"':
                if text[pos] == '\\' and pos + 1 < end:
                    pos += 1
                chars.append(text[pos])
                pos += 1
            value, quoted = ''.join(chars), True
            semi = text.find(';', pos)
            pos = end if semi < 0 else semi + 1
        else:
            semi = text.find(';', pos)
            stop = end if semi < 0 else semi
            value, quoted = text[pos:stop].strip(), False
            pos = stop + 1
        if name:
            yield name, value, quoted


def _decode_ext_value(value: str) -> Optional[str]:
    """Decode an RFC 8187 ext-value (``UTF-8''%e2%82%ac.txt``), None if unusable."""
    charset, sep, rest = value.partition("'")
    _language, sep2, encoded = rest.partition("'")
    if not sep or not sep2:
        return None
    try:
        codec = codecs.lookup(charset.strip() or 'utf-8').name
        return urllib.parse.unquote(encoded, encoding=codec, errors='strict')
    except (LookupError, UnicodeError, ValueError):  # ValueError: a NUL in the charset name
        return None


def parse_attrs(header: str) -> tuple[str, dict[str, str]]:
    """Return (value, attrs) for a header like ``Content-Disposition``.

    ``form-data; name="abc"; filename="test.html"`` gives
    ``('form-data', {'name': 'abc', 'filename': 'test.html'})``.

    Parameter names are lower-cased; quoted strings lose their quotes and
    backslash escapes. An extended parameter such as ``filename*=UTF-8''%e2%82%ac``
    (RFC 8187, as RFC 6266 section 4.3 uses it) is decoded and stored under
    its plain name (``filename``), winning over the plain parameter; if it
    cannot be decoded it is kept raw under ``filename*``. Parameters without
    a value are skipped; nothing here raises.

    Args:
        header: The header value (``str``).

    Returns:
        (value, attrs): the text before the first ``;``, stripped, and a
        dict of parameter name to ``str`` value.
    """
    value, _semi, rest = header.partition(';')
    attrs: dict[str, str] = {}
    extended: dict[str, str] = {}
    for name, raw, quoted in _split_params(rest):
        if name.endswith('*') and not quoted:
            decoded = _decode_ext_value(raw)
            if decoded is not None:
                extended[name[:-1]] = decoded
                continue
        attrs[name] = raw
    attrs.update(extended)
    return value.strip(), attrs


class CappedFileLikeObject:
    """Reads at most ``max_file_size`` bytes from another file-like object.

    Reading past the cap raises EOFError, which is handy to cap form parts::

        try:
            content = CappedFileLikeObject(part.fp, 4096).read()
        except EOFError:
            raise HTTPRequestEntityTooLarge('Max form part size is 4096.\\n')

    Args:
        fp: A binary file-like object with ``read(size)`` (and ``readline``
            if :meth:`readline` is used).
        max_file_size: The cap in bytes.
    """

    def __init__(self, fp: Any, max_file_size: int) -> None:
        self.fp = fp
        self.max_file_size = max_file_size
        #: int: bytes read so far.
        self.amount_read = 0

    def _account(self, data: bytes) -> bytes:
        self.amount_read += len(data)
        if self.amount_read > self.max_file_size:
            raise EOFError('Max file size of %d bytes exceeded.' % self.max_file_size)
        return data

    def read(self, size: Optional[int] = -1) -> bytes:
        """Return up to ``size`` bytes (all that is left if negative or None).

        Raises:
            EOFError: if more than ``max_file_size`` bytes in all would be read.
        """
        if size is not None and size >= 0:
            return self._account(self.fp.read(size))
        # Read everything, but never more than one byte past the cap.
        chunks: list[bytes] = []
        while True:
            chunk = self._account(self.fp.read(self.max_file_size - self.amount_read + 1))
            if not chunk:
                return b''.join(chunks)
            chunks.append(chunk)

    def readline(self, size: Optional[int] = -1) -> bytes:
        """Return the next line (at most ``size`` bytes when given).

        Raises:
            EOFError: if more than ``max_file_size`` bytes in all would be read.
        """
        limit = self.max_file_size - self.amount_read + 1
        if size is not None and 0 <= size < limit:
            limit = size
        return self._account(self.fp.readline(limit))
