"""A WSGI app that serves files from the file system, safely.

Configuration Options::

    [wsgi_fs]
    call = brim.wsgi_fs.WSGIFS
    # path = <path>
    #   The request path to match and serve; any paths that do not begin
    #   with this value are passed on to the next WSGI app in the chain.
    #   Default: /
    # serve_path = <path>
    #   The local directory containing the files to serve (required; ~ is
    #   expanded). Symlinks inside it are followed only when their target
    #   resolves inside it too.

Stats Variables (where n. is the name of the app in the config):

============  ======  ==================================================
Name          Type    Description
============  ======  ==================================================
n.requests    sum     The number of requests handled (not passed on).
start_time    worker  Timestamp when the app was started (set by brimd).
============  ======  ==================================================

Behaviour (RFC 9110): GET and HEAD (others get 405 with ``Allow``);
Content-Type guessed from the file name; Content-Length; Last-Modified
and ``If-Modified-Since`` (304, section 13.1.3); one ``bytes`` Range
(206 or 416, section 14), honouring ``If-Range`` by date; several ranges,
unknown units and malformed Range headers are ignored (200 with the whole
file, as section 14.2 allows). A directory requested without a trailing
slash is redirected (301) to one with it; with it, an HTML listing is sent
in which every name is HTML-escaped and percent-encoded.

Safety invariant: no request ever reads outside ``serve_path``. Paths with
NUL, backslashes, ``.`` or ``..`` segments (however they were encoded on
the wire: the WSGI server has already decoded ``%2e`` and ``%2f`` into
PATH_INFO) get 404; the joined path is resolved with ``os.path.realpath``
and refused (404) unless it lies inside the resolved ``serve_path``; the
resolved path is opened with ``O_NOFOLLOW | O_NONBLOCK`` (no FIFO can hang
a worker) and only regular files and directories are served. Files are
streamed in 64 KiB chunks, so memory stays flat whatever their size.
"""

from __future__ import annotations

import html
import logging
import mimetypes
import os
import stat
from collections.abc import Iterable, Iterator
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, Optional

from brim.conf import Conf
from brim.errors import ConfError
from brim.options import app_option, parse_section, to_path, to_str
from brim.http import (
    HTTPException,
    HTTPForbidden,
    HTTPMethodNotAllowed,
    HTTPMovedPermanently,
    HTTPNotFound,
    HTTPNotModified,
    HTTPOk,
    HTTPPartialContent,
    HTTPRangeNotSatisfiable,
    StartResponse,
    WSGIApp,
    quote,
)

#: Bytes read from a file and handed to the server at a time.
CHUNK_SIZE = 65536

# mimetypes reports compressed files as their inner type plus an encoding;
# served as stored (no Content-Encoding), their type is the compression's.
_ENCODING_TYPES = {
    'gzip': 'application/gzip', 'bzip2': 'application/x-bzip2', 'xz': 'application/x-xz',
    'compress': 'application/x-compress', 'br': 'application/x-brotli'}


def http_date(timestamp: float) -> str:
    """Return ``timestamp`` (Unix seconds) as an IMF-fixdate (RFC 9110 section 5.6.7)."""
    return formatdate(timestamp, usegmt=True)


def parse_http_date(text: Optional[str]) -> Optional[int]:
    """Return an HTTP date as integer Unix seconds, or None if absent or invalid."""
    if not text:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return int(when.timestamp())


def parse_range(header: Optional[str], size: int) -> Optional[tuple[int, int]]:
    """Interpret a Range header for a representation of ``size`` bytes.

    RFC 9110 section 14.1.2: ``bytes=first-last``, ``bytes=first-`` or
    ``bytes=-suffix_length``; ``last`` beyond the end is clamped.

    Returns:
        None to ignore the header (absent, malformed, another unit, or more
        than one range; section 14.2 lets a server ignore Range), ``(-1, -1)``
        when unsatisfiable (answer 416), else ``(first, last)`` inclusive.
    """
    if not header:
        return None
    unit, sep, spec = header.partition('=')
    if not sep or unit.strip().lower() != 'bytes' or ',' in spec:
        return None
    first_text, dash, last_text = spec.strip().partition('-')
    if not dash or not (first_text + last_text).isdigit() or not (first_text.isdigit() or last_text.isdigit()):
        return None
    if not first_text:
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return (-1, -1)
        return (max(0, size - suffix), size - 1)
    first = int(first_text)
    last = int(last_text) if last_text else None
    if last is not None and last < first:
        return None
    if first >= size:
        return (-1, -1)
    return (first, size - 1 if last is None else min(last, size - 1))


def content_type(name: str) -> str:
    """Return the Content-Type for a file named ``name`` (guessed from its extension)."""
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if encoding:
        return _ENCODING_TYPES.get(encoding, 'application/octet-stream')
    if guessed is None:
        return 'application/octet-stream'
    if guessed.startswith('text/') or guessed in ('application/javascript', 'application/json'):
        # Most text served today is UTF-8; say so rather than let clients guess.
        return guessed + '; charset=utf-8'
    return guessed


class _FileIter:
    """Iterates ``length`` bytes of an open file from ``offset``; PEP 3333 ``close()`` closes it."""

    def __init__(self, fp: Any, offset: int, length: int) -> None:
        self.fp = fp
        self.offset = offset
        self.length = length

    def __iter__(self) -> Iterator[bytes]:
        self.fp.seek(self.offset)
        left = self.length
        while left > 0:
            chunk = self.fp.read(min(CHUNK_SIZE, left))
            if not chunk:
                # The file shrank while being served; stop short.
                break
            left -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.fp.close()


class WSGIFS:
    """A WSGI app serving the files under ``serve_path`` at URL prefix ``path``.

    See :mod:`brim.wsgi_fs` for the options and behaviour.

    Args:
        name: The app's conf section name.
        parsed_conf: As returned by :meth:`parse_conf`: ``path`` (str, no
            leading or trailing slashes) and ``serve_path`` (str, absolute,
            resolved).
        next_app: The next WSGI app in the chain.
    """

    def __init__(self, name: str, parsed_conf: dict[str, Any], next_app: WSGIApp) -> None:
        #: The name of the app.
        self.name = name
        #: The next WSGI app in the chain.
        self.next_app = next_app
        #: The URL path prefix served, without leading or trailing slashes.
        self.path: str = parsed_conf['path'].strip('/')
        #: The resolved local directory served.
        self.serve_path: str = os.path.realpath(parsed_conf['serve_path'])
        self._prefix = '/' + self.path if self.path else ''

    #: This app's options, declared once; parse_conf, brimd check and
    #: brimd.conf-sample all use them.
    #:
    #: :meta hide-value:
    OPTIONS = (
        app_option('path', to_str, '/', 'The URL prefix served; requests for other paths go to the next app.'),
        app_option('serve_path', to_path, '', 'The directory whose files are served (required). Nothing '
                   'outside it is ever served; a symlink is followed only if its target is inside it.'),
    )

    @classmethod
    def parse_conf(cls, name: str, conf: Conf) -> dict[str, Any]:
        """Return this app's settings from ``conf`` (see :mod:`brim.wsgi_fs`).

        Returns:
            ``{'path': str, 'serve_path': str}``.

        Raises:
            ConfError: if ``serve_path`` is not set or is not a directory.
        """
        parsed = parse_section(name, conf, cls.OPTIONS)
        path, serve_path = parsed['path'], parsed['serve_path']
        if not serve_path:
            raise ConfError(name, 'serve_path', None, 'is required')
        if not os.path.isdir(serve_path):
            raise ConfError(name, 'serve_path', serve_path, 'is not a directory')
        return {'path': path.strip('/'), 'serve_path': os.path.realpath(serve_path)}

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict[str, Any]) -> list[tuple[str, str]]:
        """Return the stats this app keeps: ``[('<name>.requests', 'sum')]``."""
        return [('%s.requests' % name, 'sum')]

    def __call__(self, env: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serve the request if its path is under :attr:`path`, else pass it on."""
        path_info = env.get('PATH_INFO') or '/'
        if path_info != self._prefix and not path_info.startswith(self._prefix + '/'):
            return self.next_app(env, start_response)
        stats = env.get('brim.stats')
        if stats is not None:
            stats.incr('%s.requests' % self.name)
        try:
            response = self._respond(env, path_info[len(self._prefix):])
        except HTTPException as err:
            response = err
        return response(env, start_response)

    def _respond(self, env: dict[str, Any], rel_path: str) -> HTTPException:
        method = env.get('REQUEST_METHOD')
        if method not in ('GET', 'HEAD'):
            return HTTPMethodNotAllowed(headers={'Allow': 'GET, HEAD'})
        real = self._resolve(rel_path)
        try:
            # O_NOFOLLOW: the path was just resolved; a symlink appearing in
            # its place since then is refused. O_NONBLOCK: a FIFO can't hang us.
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
        except FileNotFoundError:
            raise HTTPNotFound() from None
        except PermissionError:
            raise HTTPForbidden() from None
        except OSError as err:
            self._logger(env).info('%s: cannot open %r: %s', self.name, real, err)
            raise HTTPNotFound() from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                return self._directory(env, rel_path, real, fd)
            if not stat.S_ISREG(info.st_mode):
                raise HTTPNotFound()
            response = self._file(env, real, fd, info)
            if isinstance(response.body, _FileIter):
                fd = -1  # now owned by the response, closed by its close()
            return response
        finally:
            if fd >= 0:
                os.close(fd)

    def _resolve(self, rel_path: str) -> str:
        """Return the resolved local path for ``rel_path``, or raise HTTPNotFound.

        ``rel_path`` is PATH_INFO after the prefix: a latin-1 ``str`` of the
        decoded request bytes (PEP 3333).
        """
        try:
            raw = rel_path.encode('latin-1')
        except UnicodeError:
            raise HTTPNotFound() from None  # not a PEP 3333 str
        if b'\0' in raw or b'\\' in raw:
            raise HTTPNotFound()
        segments = [seg for seg in raw.split(b'/') if seg]
        if any(seg in (b'.', b'..') for seg in segments):
            raise HTTPNotFound()
        joined = os.path.join(self.serve_path, *(os.fsdecode(seg) for seg in segments))
        real = os.path.realpath(joined)
        if not self._inside(real):
            raise HTTPNotFound()
        return real

    def _inside(self, path: str) -> bool:
        """True if ``path``, resolved, is ``serve_path`` or lies under it."""
        real = os.path.realpath(path)
        return real == self.serve_path or real.startswith(self.serve_path.rstrip(os.sep) + os.sep)

    def _file(self, env: dict[str, Any], real: str, fd: int, info: os.stat_result) -> HTTPException:
        last_modified = http_date(info.st_mtime)
        headers = {'Content-Type': content_type(real), 'Last-Modified': last_modified,
                   'Accept-Ranges': 'bytes'}
        since = parse_http_date(env.get('HTTP_IF_MODIFIED_SINCE'))
        if since is not None and int(info.st_mtime) <= since:
            return HTTPNotModified(headers={'Last-Modified': last_modified})
        size = info.st_size
        byte_range = None
        # RFC 9110 section 14.2: Range is defined for GET only; If-Range
        # (section 13.1.5) with a date that isn't our Last-Modified means
        # "send it all".
        if env.get('REQUEST_METHOD') == 'GET':
            if_range = env.get('HTTP_IF_RANGE')
            if if_range is None or if_range.strip() == last_modified:
                byte_range = parse_range(env.get('HTTP_RANGE'), size)
        if byte_range == (-1, -1):
            headers['Content-Range'] = 'bytes */%d' % size
            del headers['Content-Type']
            return HTTPRangeNotSatisfiable(headers=headers)
        fp = os.fdopen(fd, 'rb', buffering=0)
        if byte_range is None:
            headers['Content-Length'] = str(size)
            return HTTPOk(_FileIter(fp, 0, size), headers)
        first, last = byte_range
        headers['Content-Length'] = str(last - first + 1)
        headers['Content-Range'] = 'bytes %d-%d/%d' % (first, last, size)
        return HTTPPartialContent(_FileIter(fp, first, last - first + 1), headers)

    def _directory(self, env: dict[str, Any], rel_path: str, real: str, fd: int) -> HTTPException:
        if not rel_path.endswith('/'):
            location = quote((env.get('SCRIPT_NAME', '') + env.get('PATH_INFO', '') + '/').encode('latin-1', 'replace'))
            return HTTPMovedPermanently(location=location)
        entries = []
        try:
            with os.scandir(fd) as scan:
                for entry in scan:
                    if entry.is_symlink() and not self._inside(os.path.join(real, entry.name)):
                        continue  # don't even name what we would refuse to serve
                    entries.append((entry.name, entry.is_dir()))
        except OSError:
            raise HTTPForbidden() from None
        entries.sort()
        url_path = (env.get('SCRIPT_NAME', '') + env.get('PATH_INFO', '')).encode('latin-1', 'replace')
        title = html.escape(url_path.decode('utf-8', 'replace'))
        lines = ['<!DOCTYPE html>', '<html><head><meta charset="utf-8"><title>Index of %s</title></head>' % title,
                 '<body><h1>Index of %s</h1><ul>' % title]
        if rel_path.strip('/'):
            lines.append('<li><a href="../">../</a></li>')
        for name, is_dir in entries:
            raw = os.fsencode(name)
            slash = '/' if is_dir else ''
            href = html.escape(quote(raw, safe='') + slash, quote=True)
            text = html.escape(raw.decode('utf-8', 'replace') + slash)
            lines.append('<li><a href="%s">%s</a></li>' % (href, text))
        lines.append('</ul></body></html>\n')
        return HTTPOk('\n'.join(lines), {'Content-Type': 'text/html; charset=utf-8'})

    def _logger(self, env: dict[str, Any]) -> logging.Logger:
        return env.get('brim.logger') or logging.getLogger('brim')
