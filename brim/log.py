"""Logging for brimd: syslog with NOTICE, fallbacks, and the access-log line.

Loggers are stdlib ``logging.Logger`` objects named ``brim.<route>`` (route:
``main``, a subserver section name, a daemon name), configured here and
nowhere else. ``NOTICE`` (25) is registered with :func:`logging.addLevelName`
and sent to syslog as ``notice``; brimd logs one access line per request at
NOTICE so operators can filter access logs on it.

Where lines go: ``log_file`` set → that file (``-`` → stderr); else syslog
through ``/dev/log`` (``/var/run/syslog`` on macOS); with no such socket,
stderr in the foreground and ``~/.brimd.log`` (``/var/log/brimd.log`` as
root) when daemonized. Nothing is dropped silently. Log files reopen on
SIGUSR1 (:func:`reopen_log_files`), for logrotate.

Invariant: formatting the access line (:func:`access_line`) is a pure
function; nothing here touches sockets except the syslog handler.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
import weakref
from logging.handlers import SysLogHandler
from types import TracebackType
from typing import Callable, Iterable, Optional

#: Between INFO and WARNING; the access log of every request (RFC 5424 notice).
NOTICE = 25
logging.addLevelName(NOTICE, 'NOTICE')

SYSLOG_SOCKETS = ('/dev/log', '/var/run/syslog')

#: How log files and stderr stamp a line (UTC, ``time.strftime`` format).
STAMP_FORMAT = '%Y-%m-%dT%H:%M:%S'


class _SysLogHandler(SysLogHandler):
    """SysLogHandler that maps NOTICE to syslog's notice priority."""

    priority_map = dict(SysLogHandler.priority_map, NOTICE='notice')


class ReopenableFileHandler(logging.FileHandler):
    """A log file that :func:`reopen_log_files` makes reopen (log rotation).

    Reopening happens at the next record, in the thread that logs, never in
    a signal handler. If the file cannot be opened (say privileges have
    dropped and the directory is root's), the old file is kept and the
    failure is written to it.
    """

    _instances: 'weakref.WeakSet[ReopenableFileHandler]' = weakref.WeakSet()

    def __init__(self, path: str) -> None:
        super().__init__(path, encoding='utf-8')
        self.reopen_requested = False
        ReopenableFileHandler._instances.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        if self.reopen_requested:
            self.reopen_requested = False
            self.reopen()
        super().emit(record)

    def reopen(self) -> None:
        """Reopen the file at its path now; on OSError keep the old one and say so in it."""
        try:
            stream = self._open()
        except OSError as err:
            if self.stream is not None:
                self.stream.write('cannot reopen log file %s: %s; still writing to the old one\n'
                                  % (self.baseFilename, err.strerror))
            return
        old, self.stream = self.stream, stream
        if old is not None:
            old.close()


def reopen_log_files() -> None:
    """Ask every log file of this process to reopen at its next record.

    Safe to call from a signal handler: it only sets flags. Used on SIGUSR1
    after logrotate has moved the files.
    """
    for handler in list(ReopenableFileHandler._instances):
        handler.reopen_requested = True


def fallback_log_path() -> str:
    """Where a daemonized brimd writes its log when there is no syslog socket."""
    if os.geteuid() == 0 and os.access('/var/log', os.W_OK):
        return '/var/log/brimd.log'
    return os.path.expanduser('~/.brimd.log')


def syslog_socket() -> Optional[str]:
    """The first syslog socket present, or None."""
    for path in SYSLOG_SOCKETS:
        if os.path.exists(path):
            return path
    return None


def make_handler(name: str, facility: str, log_file: str, console: bool) -> logging.Handler:
    """Create the one handler of a brimd logger.

    Args:
        name: The syslog tag (``log_name``).
        facility: A syslog facility name such as ``'LOCAL0'``.
        log_file: ``''`` for syslog, ``'-'`` for stderr, or a file path.
        console: True in the foreground: fall back to stderr, not a file.

    Raises:
        OSError: if a log file cannot be opened.
    """
    stamp = '%(asctime)s ' + name + '[%(process)d] %(levelname)s %(message)s'
    path = log_file
    if not path:
        sock = syslog_socket()
        if sock:
            handler: logging.Handler = _SysLogHandler(sock, SysLogHandler.facility_names[facility.lower()])
            handler.setFormatter(logging.Formatter(name + '[%(process)d]: %(message)s'))
            return handler
        path = '-' if console else fallback_log_path()
    if path == '-':
        handler = logging.StreamHandler(sys.stderr)
    else:
        # Append mode: every process writes whole lines with O_APPEND.
        handler = ReopenableFileHandler(path)
    formatter = logging.Formatter(stamp, STAMP_FORMAT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.brim_tag = name  # type: ignore[union-attr]  # AccessLog writes lines of this shape itself
    return handler


def get_logger(route: str, name: str = 'brim', level: str = 'INFO', facility: str = 'LOCAL0',
               console: bool = False, log_file: str = '') -> logging.Logger:
    """Return the logger ``brim.<route>``, (re)configured.

    Args:
        route: What the lines are about (``'main'``, ``'wsgi'``, a daemon
            name); prefixed to every message.
        name: The syslog tag (``log_name``).
        level: CRITICAL ERROR WARNING NOTICE INFO DEBUG.
        facility: Syslog facility (``LOCAL0``...).
        console: True in the foreground (fallback to stderr).
        log_file: See :func:`make_handler`.

    Raises:
        OSError: if a log file cannot be opened.
    """
    logger = logging.getLogger('brim.' + route)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler = make_handler(name, facility, log_file, console)
    handler.addFilter(_RouteFilter(route))
    logger.addHandler(handler)
    logger.setLevel(logging.getLevelName(level))
    logger.propagate = False
    return logger


class _RouteFilter(logging.Filter):
    def __init__(self, route: str) -> None:
        super().__init__()
        self.route = route

    def filter(self, record: logging.LogRecord) -> bool:
        # One line per record: syslog splits or drops at newlines.
        message = record.getMessage()
        if record.exc_info:
            message += ' ' + sysloggable_excinfo(*record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = '%s %s' % (self.route, message.replace('\n', '#012'))
        record.args = ()
        return True


def sysloggable_excinfo(exctype: Optional[type], value: Optional[BaseException],
                        tb: Optional[TracebackType]) -> str:
    """Return exception info as one line for syslog.

    The type and message come first (in case the line is truncated), then
    the frames innermost first as ``file:line func``.

    Args:
        exctype, value, tb: As returned by :func:`sys.exc_info`.
    """
    name = getattr(exctype, '__name__', str(exctype))
    text = ' '.join(str(value).split()) if value is not None else ''
    frames = traceback.extract_tb(tb) if tb is not None else []
    where = ' < '.join('%s:%s %s' % (os.path.basename(f.filename), f.lineno, f.name) for f in reversed(frames))
    line = '%s: %s' % (name, text) if text else name
    return line + (' [%s]' % where if where else '')


# ---- access log -------------------------------------------------------------

def _quote_table() -> list[str]:
    table = []
    for byte in range(256):
        char = chr(byte)
        table.append(char if 0x21 <= byte <= 0x7e and char != '%' else '%%%02X' % byte)
    return table


_QUOTE = _quote_table()
_SAFE = frozenset(chr(b) for b in range(0x21, 0x7f)) - {'%'}


def quote_log_field(value: object) -> str:
    """Make one access-log field: bytes below ``!`` or above ``~``, and ``%``,
    percent-encoded; ``-`` for empty or None.

    ``str`` values are encoded as Latin-1 where they can be (WSGI environ
    strings are bytes decoded as Latin-1, PEP 3333), else UTF-8.
    """
    if value is None:
        return '-'
    if not isinstance(value, (str, bytes)):
        value = str(value)
    if not value:
        return '-'
    if isinstance(value, str):
        if _SAFE.issuperset(value):
            return value
        try:
            data = value.encode('latin-1')
        except UnicodeEncodeError:
            try:
                # A lone surrogate from os.fsdecode of a non-UTF-8 name
                # gives back its original byte...
                data = value.encode('utf-8', 'surrogateescape')
            except UnicodeEncodeError:
                # ...and any other is logged as its three UTF-8-style bytes.
                data = value.encode('utf-8', 'surrogatepass')
    else:
        data = value
    return ''.join([_QUOTE[b] for b in data])


def access_line(fields: Iterable[object]) -> str:
    """Join access-log fields (SPEC §6 order) into one space-separated line,
    each made by :func:`quote_log_field`."""
    parts = []
    for value in fields:
        if type(value) is str:
            # The common case, without a call: printable ASCII, no space, no %.
            if value and value.isascii() and value.isprintable() and ' ' not in value and '%' not in value:
                parts.append(value)
                continue
        elif type(value) is int:
            parts.append(str(value))
            continue
        elif value is None:
            parts.append('-')
            continue
        parts.append(quote_log_field(value))
    return ' '.join(parts)


class _SecondCache:
    """``time.strftime(fmt, time.gmtime(t))``, computed once per second."""

    __slots__ = ('fmt', 'second', 'text')

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.second = -1
        self.text = ''

    def __call__(self, when: float) -> str:
        second = int(when)
        if second != self.second:
            self.text = time.strftime(self.fmt, time.gmtime(second))
            self.second = second
        return self.text


_utc_stamp = _SecondCache('%Y%m%dT%H%M%SZ')


def utc_stamp(when: float) -> str:
    """``%Y%m%dT%H%M%SZ`` of a Unix time, as the access log writes it."""
    return _utc_stamp(when)


class AccessLog:
    """Writes one subserver's access lines at NOTICE, off the request's path.

    To a log file or stderr, lines are buffered and written together, one
    ``write`` per batch, exactly as the logger's own handler would have
    written each (same stamp, tag, pid, level and route; the file reopens
    on SIGUSR1 the same way). The first line of a batch calls ``schedule``
    with :meth:`flush`: a worker passes a function that runs it as soon as
    its event loop has no more ready work (an Eventlet timer of 0 s), so a
    line is written before the worker waits for anything, and every
    orderly exit calls :func:`flush_access_logs`. Only a process killed
    between sending a response and its next trip round the event loop
    loses lines (at most one batch), as it would lose the requests then in
    progress. Through syslog each line stays its own record
    (``Logger.log``), since syslog takes one message per datagram.

    Args:
        logger: From :func:`get_logger`.
        schedule: Called with a no-argument callable to run soon; None
            writes every line at once (no batching).
    """

    _instances: 'weakref.WeakSet[AccessLog]' = weakref.WeakSet()

    def __init__(self, logger: logging.Logger, schedule: Optional[Callable[[Callable[[], None]], object]] = None
                 ) -> None:
        self.logger = logger
        self.schedule = schedule
        self.buffer: list[str] = []
        self.handler: Optional[logging.StreamHandler] = None
        self.prefix = ''
        self.stamp = _SecondCache(STAMP_FORMAT)
        handlers = logger.handlers
        if len(handlers) == 1 and isinstance(handlers[0], logging.StreamHandler) \
                and getattr(handlers[0], 'brim_tag', None) is not None:
            handler = handlers[0]
            route = ''.join(f.route + ' ' for f in handler.filters if isinstance(f, _RouteFilter))
            self.handler = handler
            self.prefix = ' %s[%d] NOTICE %s' % (handler.brim_tag, os.getpid(), route)  # type: ignore[attr-defined]
        AccessLog._instances.add(self)

    def write(self, line: str) -> None:
        """Log ``line`` (one line, no newline: :func:`access_line` makes it)."""
        if not self.logger.isEnabledFor(NOTICE):
            return
        if self.handler is None:
            self.logger.log(NOTICE, '%s', line)
            return
        buffer = self.buffer
        buffer.append(self.stamp(time.time()) + self.prefix + line + '\n')
        if len(buffer) == 1 and self.schedule is not None:
            self.schedule(self.flush)
        elif self.schedule is None or len(buffer) >= 512:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines now."""
        if not self.buffer or self.handler is None:
            return
        text = ''.join(self.buffer)
        self.buffer = []
        handler = self.handler
        handler.acquire()
        try:
            if isinstance(handler, ReopenableFileHandler) and handler.reopen_requested:
                handler.reopen_requested = False
                handler.reopen()
            if handler.stream is None and isinstance(handler, logging.FileHandler):
                handler.stream = handler._open()  # closed by logging.shutdown: open it again
            handler.stream.write(text)
            handler.stream.flush()
        except Exception:
            handler.handleError(logging.makeLogRecord({'msg': text}))
        finally:
            handler.release()


def flush_access_logs() -> None:
    """Write every :class:`AccessLog`'s buffered lines (before a process exits)."""
    for log in list(AccessLog._instances):
        log.flush()
