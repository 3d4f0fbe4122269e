"""Every brimd conf option, declared once; resolution and the conf sample.

Each :class:`Option` names the section kinds it is valid in, its converter,
default, units and help. From this one table come: the ``[brim]``-then-
section fallback (:func:`resolve`), conversion errors that name section,
option and value, the "unknown option (a typo?)" warnings of ``brimd check``,
and ``brimd.conf-sample`` itself (:func:`render_sample`; a test fails when
the shipped file and this table disagree).

Section kinds: ``brim`` (global), ``wsgi``, ``tcp``, ``udp`` (one subserver
per section named the kind, the kind plus digits, or the kind plus ``#`` and a
name), ``daemons`` (exactly that name), and app sections named by ``apps =``
or ``daemons =``. An option valid in a subserver kind may also be set in
``[brim]`` as the default for every subserver that accepts it.

Apps may declare their own options the same way (a class attribute
``OPTIONS``) and parse them with :func:`parse_section`; ``brimd check`` then
checks their sections for typos too.

Invariant: nothing here imports Eventlet or any app module except brim's own
sample apps in :func:`render_sample`.
"""

from __future__ import annotations

import difflib
import grp
import os
import pwd
import re
import socket
from dataclasses import dataclass, field
from logging.handlers import SysLogHandler
from typing import Any, Callable, Iterable, Optional

from brim.conf import Conf
from brim.errors import ConfError

GLOBAL = 'brim'
WSGI, TCP, UDP, DAEMONS = 'wsgi', 'tcp', 'udp', 'daemons'
SUBSERVER_KINDS = (WSGI, TCP, UDP, DAEMONS)
IP_KINDS = frozenset((WSGI, TCP, UDP))
ALL_SUBSERVERS = frozenset(SUBSERVER_KINDS)

#: NOTICE sits between INFO and WARNING, as syslog's notice (RFC 5424 §6.2.1).
LOG_LEVELS = ('CRITICAL', 'ERROR', 'WARNING', 'NOTICE', 'INFO', 'DEBUG')


# Converters: each takes the raw str and returns the typed value or raises
# ValueError whose text says what was expected.

def to_str(value: str) -> str:
    """The value with surrounding whitespace removed; never raises."""
    return value.strip()


def to_int(value: str) -> int:
    """A decimal integer (any sign).

    Raises:
        ValueError: ``not an integer``.
    """
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError('not an integer') from None


def _int_at_least(low: int) -> Callable[[str], int]:
    def convert(value: str) -> int:
        number = to_int(value)
        if number < low:
            raise ValueError('must be %d or more' % low)
        return number
    convert.__name__ = 'int_at_least_%d' % low
    return convert


to_positive_int = _int_at_least(1)
to_nonnegative_int = _int_at_least(0)


def to_port(value: str) -> int:
    """A TCP or UDP port number, 0 to 65535 (0: any free port).

    Raises:
        ValueError: if not an integer in that range.
    """
    number = to_int(value)
    if not 0 <= number <= 65535:
        raise ValueError('not a port number (0-65535)')
    return number


def to_seconds(value: str) -> float:
    """A finite number of seconds, 0 or more (fractions allowed).

    Raises:
        ValueError: if not a number, negative, NaN or infinite.
    """
    try:
        number = float(value.strip())
    except ValueError:
        raise ValueError('not a number of seconds') from None
    if number < 0 or number != number:
        raise ValueError('must be 0 seconds or more')
    if number == float('inf'):
        # socket.settimeout(inf) raises OverflowError in every worker.
        raise ValueError('must be a finite number of seconds')
    return number


def to_bool(value: str) -> bool:
    """A boolean: :data:`~brim.conf.TRUE_VALUES` or :data:`~brim.conf.FALSE_VALUES`, any case.

    Raises:
        ValueError: for any other word.
    """
    from brim.conf import FALSE_VALUES, TRUE_VALUES
    lowered = value.strip().lower()
    if lowered in TRUE_VALUES:
        return True
    if lowered in FALSE_VALUES:
        return False
    raise ValueError('not a boolean (yes/no, true/false, on/off, 1/0)')


def to_umask(value: str) -> int:
    """An octal umask such as ``0022``, 0 to 0o777.

    Raises:
        ValueError: if not octal or out of that range.
    """
    try:
        mask = int(value.strip(), 8)
    except ValueError:
        raise ValueError('not an octal umask such as 0022') from None
    if not 0 <= mask <= 0o777:
        raise ValueError('not an octal umask such as 0022')
    return mask


def to_tls_version(value: str) -> str:
    """The lowest TLS version to accept: ``'1.2'`` or ``'1.3'``.

    Raises:
        ValueError: for anything else.
    """
    lowered = value.strip()
    if lowered not in ('1.2', '1.3'):
        raise ValueError('not a TLS version brimd accepts (1.2 or 1.3)')
    return lowered


def _launch_dir() -> str:
    try:
        return os.getcwd()
    except OSError:  # started from a directory since removed
        return '/'


#: The directory brimd was started from, read when this module is first
#: imported (before brimd changes directory to ``/``, and inherited by every
#: process it forks): relative paths in the conf are relative to it.
LAUNCH_DIR = _launch_dir()


def to_path(value: str) -> str:
    """Expand ``~`` and make absolute, relative to :data:`LAUNCH_DIR` (the
    directory brimd was started from, in every process: workers and the
    app probe run in ``/``); never raises."""
    value = value.strip()
    return os.path.normpath(os.path.join(LAUNCH_DIR, os.path.expanduser(value))) if value else ''


def to_optional_path(value: str) -> str:
    """Like :func:`to_path`, but ``-`` (stderr) is kept as it is."""
    value = value.strip()
    return value if value in ('', '-') else to_path(value)


def to_words(value: str) -> list[str]:
    """Whitespace-separated words, as a list (empty for an empty value); never raises."""
    return value.split()


def to_status_codes(value: str) -> list[int]:
    """Whitespace-separated HTTP status codes, each 100 to 599.

    Raises:
        ValueError: naming the first word that is not such a code.
    """
    codes = []
    for word in value.split():
        if not (word.isdigit() and 100 <= int(word) <= 599):
            raise ValueError('%r is not an HTTP status code (100-599)' % word)
        codes.append(int(word))
    return codes


def to_log_level(value: str) -> str:
    """A level name of :data:`LOG_LEVELS`, any case; returned upper case.

    Raises:
        ValueError: for any other name.
    """
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError('not one of %s' % ' '.join(LOG_LEVELS))
    return level


def to_log_facility(value: str) -> str:
    """A syslog facility name such as ``LOCAL0`` or ``LOG_DAEMON``, any case.

    Returns:
        The name upper case, without the ``LOG_`` prefix (``'DAEMON'``).

    Raises:
        ValueError: if syslog has no such facility.
    """
    facility = value.strip().upper()
    if facility.startswith('LOG_'):
        facility = facility[4:]
    if facility.lower() not in SysLogHandler.facility_names:
        raise ValueError('not a syslog facility (LOCAL0..LOCAL7, USER, DAEMON, ...)')
    return facility


_DOTTED = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$')


def to_dotted(value: str) -> str:
    """A ``package.module.name`` to import later (in a worker, not here)."""
    value = value.strip()
    if not _DOTTED.match(value):
        raise ValueError('not a dotted name such as package.module.Name')
    return value


def to_ip(value: str) -> str:
    """``*`` (every address), an IPv4 or IPv6 address, or a host name."""
    value = value.strip()
    if value.startswith('[') and value.endswith(']'):
        value = value[1:-1]
    if value in ('*', ''):
        return '*'
    try:
        socket.getaddrinfo(value, None, 0, 0, 0, socket.AI_NUMERICHOST)
        return value
    except socket.gaierror:
        pass
    try:
        socket.getaddrinfo(value, None)
    except socket.gaierror:
        raise ValueError('not an address or resolvable host name') from None
    return value


def to_user(value: str) -> Optional[str]:
    """A user name that exists; empty for none (stay the current user)."""
    value = value.strip()
    if not value:
        return None
    try:
        pwd.getpwnam(value)
    except KeyError:
        raise ValueError('no such user') from None
    return value


def to_group(value: str) -> Optional[str]:
    """A group name that exists; empty for none (the user's primary group)."""
    value = value.strip()
    if not value:
        return None
    try:
        grp.getgrnam(value)
    except KeyError:
        raise ValueError('no such group') from None
    return value


def to_hub(value: str) -> str:
    """An Eventlet hub name (``epolls``, ``poll``, ``selects``, ``kqueue``, or a dotted module).

    Returns:
        The name, or ``''`` for ``default`` or empty (Eventlet picks).
        Whether the hub exists is checked when it is used, not here.

    Raises:
        ValueError: if the value is not shaped like a name.
    """
    value = value.strip()
    if value in ('', 'default'):
        return ''
    if not re.match(r'^[A-Za-z_][A-Za-z0-9_.]*$', value):
        raise ValueError('not an Eventlet hub name (epolls, poll, selects, kqueue)')
    return value


def to_pid_file(value: str) -> str:
    """A path, ``-`` for none, or empty for :func:`default_pid_file`."""
    value = value.strip()
    return to_optional_path(value) if value else default_pid_file()


def default_pid_file() -> str:
    """``/var/run/brimd.pid`` when that directory is writable, else ``~/.brimd.pid``."""
    if os.access('/var/run', os.W_OK):
        return '/var/run/brimd.pid'
    return os.path.expanduser('~/.brimd.pid')


@dataclass(frozen=True)
class Option:
    """One conf option.

    Attributes:
        name: The option name as written in the conf.
        kinds: Section kinds it is valid in (``'brim'``, ``'wsgi'``, ...);
            ``[brim]`` also accepts every subserver option as a default.
        convert: Turns the raw ``str`` into the typed value or raises
            ValueError saying what was expected.
        default: The typed default, or a callable returning it (computed
            where brimd runs), or None for unset.
        help: One or more sentences for ``brimd.conf-sample``.
        shown_default: The default as written in the sample.
        units: ``'seconds'``, ``'bytes'``, ... shown in the sample.
        section_only: True for options that identify a section (``apps``,
            ``call``, ``daemons``): not valid as ``[brim]`` defaults.
    """

    name: str
    kinds: frozenset[str]
    convert: Callable[[str], Any]
    default: Any
    help: str
    shown_default: str = ''
    units: str = ''
    section_only: bool = False

    def default_value(self) -> Any:
        """The typed default: :attr:`default`, called first if it is callable."""
        return self.default() if callable(self.default) else self.default

    def parse(self, section: str, raw: str) -> Any:
        """Convert ``raw`` found in ``[section]``.

        Raises:
            ConfError: naming section, option and value.
        """
        try:
            return self.convert(raw)
        except ValueError as err:
            raise ConfError(section, self.name, raw, str(err)) from None


def _o(name: str, kinds: Iterable[str], convert: Callable[[str], Any], default: Any,
       help: str, shown: Optional[str] = None, units: str = '', section_only: bool = False) -> Option:
    if shown is None:
        shown = '' if default is None else (' '.join(map(str, default)) if isinstance(default, (list, tuple)) else str(default))
    return Option(name, frozenset(kinds), convert, default, help, shown, units, section_only)


def app_option(name: str, convert: Callable[[str], Any], default: Any, help: str,
               units: str = '', shown: Optional[str] = None) -> Option:
    """Declare an option of an app class (for its ``OPTIONS`` tuple).

    Args:
        name: The option name in the app's section.
        convert: A converter such as :func:`to_int` or :func:`to_str`.
        default: The typed default.
        help: What it does, for ``brimd.conf-sample`` and ``brimd check``.
        units: ``'seconds'``, ``'bytes'``... shown in the sample.
        shown: The default as written in the sample (default ``str(default)``).
    """
    return _o(name, (), convert, default, help, shown, units)



_G = (GLOBAL,)
_IP = tuple(IP_KINDS)
_STREAM = (WSGI, TCP)
_ALL = tuple(ALL_SUBSERVERS)

#: Every option brimd itself reads, in the order the sample documents them.
#:
#: :meta hide-value:
OPTIONS: tuple[Option, ...] = (
    _o('additional_confs', _G, to_str, '',
       'More conf files to read after this one (shell-style quoting, ~ expanded); '
       'their values win.', shown=''),
    _o('user', _G, to_user, None,
       'The user to run as once the ports are bound (needs root to change). '
       'Privileges are dropped only when user or group is set. Default: the current user.', shown=''),
    _o('group', _G, to_group, None,
       "The group to run as. Default: the user's primary group.", shown=''),
    _o('umask', _G, to_umask, 0o022, 'The umask (octal) of every brimd process.', shown='0022'),
    _o('pid_file', _G, to_pid_file, default_pid_file,
       'Where start writes the main process id and where stop, status etc. look for it; '
       '- for none. Default: /var/run/brimd.pid if writable, else ~/.brimd.pid.', shown=''),
    _o('log_name', _G + _ALL, to_str, 'brim', 'The name (syslog tag) log lines carry.'),
    _o('log_level', _G + _ALL, to_log_level, 'INFO',
       'The least severe level logged: CRITICAL ERROR WARNING NOTICE INFO DEBUG. '
       'The access log of every request is at NOTICE.'),
    _o('log_facility', _G + _ALL, to_log_facility, 'LOCAL0',
       'The syslog facility: LOCAL0 to LOCAL7, USER, DAEMON, ...'),
    _o('log_file', _G, to_optional_path, '',
       'Write log lines to this file instead of syslog (- for stderr). Unset: syslog '
       'through /dev/log; where there is no /dev/log, lines go to stderr in the '
       'foreground and to ~/.brimd.log (/var/log/brimd.log as root) when daemonized.',
       shown=''),
    _o('json_dumps', _G + _ALL, to_dotted, 'json.dumps',
       'The json.dumps compatible function apps get as env["brim.json_dumps"].'),
    _o('json_loads', _G + _ALL, to_dotted, 'json.loads',
       'The json.loads compatible function apps get as env["brim.json_loads"].'),
    _o('ip', _IP, to_ip, '*',
       'The address to listen on: * for every address (IPv6 and IPv4 where the '
       'machine has both), an IPv4 or IPv6 address, or a host name.'),
    _o('port', _IP, to_port, 80, 'The port to listen on.'),
    _o('workers', _IP, to_positive_int, 1,
       'The number of pre-forked worker processes, each serving on the shared socket.'),
    _o('certfile', _STREAM, to_path, '',
       'PEM certificate (chain) file: when set, connections use TLS (1.2 at least). Default: '
       'unset, no TLS.', shown=''),
    _o('keyfile', _STREAM, to_path, '', 'PEM private key file for certfile, if the key is not in '
       'certfile.', shown=''),
    _o('ca_certs', _STREAM, to_path, '',
       'PEM file of CA certificates: when set (with certfile), every client must present a '
       'certificate signed by one of them (TLS client authentication). Default: unset, no '
       'client certificates asked for.', shown=''),
    _o('tls_min_version', _STREAM, to_tls_version, '1.2',
       'The oldest TLS version accepted: 1.2 or 1.3.'),
    _o('client_timeout', _STREAM, to_seconds, 60.0,
       'Seconds a client may take to send a whole request head (from its first byte, or '
       'from the connection on TLS), to send each body read an app asks for, to accept each '
       'write, or to start its next request on a kept-alive connection, before it is '
       'disconnected; 0 for no limit (not for the internet). A wait of a second or more '
       'times out up to 0.1 s late, never early.', shown='60', units='seconds'),
    _o('concurrent_per_worker', _IP, to_positive_int, 1024,
       'The most requests, connections or datagrams one worker handles at once; past it, '
       'new connections wait in the kernel\'s backlog until one closes. UDP: it applies to a '
       'handler class with blocks = True (a green thread per datagram; past it, datagrams '
       'wait in the socket\'s receive buffer); other handlers run inline, one datagram at a '
       'time.'),
    _o('backlog', _STREAM, to_positive_int, 4096,
       'The listen backlog: connections the kernel queues before they are accepted.'),
    _o('listen_retry', _IP, to_seconds, 30.0,
       'Seconds to keep retrying to bind a port in use before giving up.',
       shown='30', units='seconds'),
    _o('graceful_timeout', _ALL, to_seconds, 30.0,
       'Seconds a worker or daemon may take to finish its in-flight work after a graceful '
       'shutdown, restart or recycle (SIGHUP) before it is killed, and the kill logged; '
       '0 waits for ever.', shown='30', units='seconds'),
    _o('worker_timeout', _IP, to_seconds, 30.0,
       'Seconds a worker\'s event loop may go without running (an app blocking it, say '
       'with time.sleep) before the worker is killed and replaced; 0 for off.',
       shown='30', units='seconds'),
    _o('max_requests', _IP, to_nonnegative_int, 0,
       'Retire a worker gracefully after this many requests (connections for TCP, '
       'datagrams for UDP), its replacement serving first; 0 for never.'),
    _o('max_requests_jitter', _IP, to_nonnegative_int, 0,
       'Add a random 0 to this many to each worker\'s max_requests, so workers do not all '
       'retire at once.'),
    _o('max_lifetime', _IP, to_seconds, 0.0,
       'Retire a worker gracefully after this many seconds; 0 for never.', shown='0',
       units='seconds'),
    _o('max_lifetime_jitter', _IP, to_seconds, 0.0,
       'Add a random 0 to this many seconds to each worker\'s max_lifetime.', shown='0',
       units='seconds'),
    _o('max_rss', _IP, to_nonnegative_int, 0,
       'Retire a worker gracefully once its resident memory exceeds this many MiB; 0 for '
       'no limit.', units='MiB'),
    _o('min_lifetime', _IP, to_seconds, 10.0,
       'Seconds a worker runs at least before max_requests, max_lifetime or max_rss may '
       'retire it (no restart storms).', shown='10', units='seconds'),
    _o('eventlet_hub', _G + _ALL, to_hub, '',
       "The Eventlet hub (epolls, poll, selects, kqueue). Default: Eventlet's own choice.",
       shown=''),
    _o('apps', (WSGI,), to_words, [],
       'The WSGI pipeline: app section names, first to last. Each section has a call = '
       'naming a class; the last passes unmatched requests to brimd\'s 404.', shown='',
       section_only=True),
    _o('log_headers', (WSGI,), to_bool, False,
       'Append the request headers to each access-log line.', shown='no'),
    _o('log_auth_token', (WSGI,), to_bool, False,
       'Put the X-Auth-Token request header in each access-log line (it is a credential, '
       'so off by default).', shown='no'),
    _o('count_status_codes', (WSGI,), to_status_codes, [404, 408, 499, 501],
       'Status codes counted on their own as status_<code>_count stats.'),
    # The limits on a request head follow common practice: Eventlet and nginx
    # allow 8 KiB lines, gunicorn 100 fields; 64 KiB in all is Eventlet's and
    # Node's order of magnitude. Over a limit: 414 (RFC 9112 §3, RFC 9110
    # §15.5.15) or 431 (RFC 6585 §5), then the connection closes.
    _o('max_request_line', (WSGI,), to_positive_int, 8192,
       'The longest request line (method, target, version) accepted; longer gets 414 URI '
       'Too Long.', units='bytes'),
    _o('max_header_line', (WSGI,), to_positive_int, 8192,
       'The longest header field line accepted; longer gets 431 Request Header Fields Too '
       'Large.', units='bytes'),
    _o('max_headers', (WSGI,), to_positive_int, 100,
       'The most header field lines a request may have; more gets 431 Request Header '
       'Fields Too Large.'),
    _o('max_header_size', (WSGI,), to_positive_int, 65536,
       'The most bytes a whole request head may have (request line and header fields); '
       'more gets 431 Request Header Fields Too Large.', units='bytes'),
    # Off by default: wsgi.input streams, so a large body costs memory only
    # in an app that reads it whole; such an app should set a limit.
    _o('max_body_size', (WSGI,), to_nonnegative_int, 0,
       'The largest request body accepted: a larger Content-Length gets 413 Content Too '
       'Large before any app runs, and a chunked body that grows past it ends the request '
       'with 413; 0 for no limit.', units='bytes'),
    _o('wsgi_input_iter_chunk_size', (WSGI,), to_positive_int, 4096,
       'Bytes read at a time when an app iterates over wsgi.input.', units='bytes'),
    _o('wsgi_output_iter_chunk_size', (WSGI,), to_positive_int, 4096,
       'Response body bytes gathered before each write to the client (small chunks are '
       'joined up to this size).', units='bytes'),
    _o('call', (TCP, UDP), to_dotted, None,
       'The handler class, package.module.Class, called for each connection (TCP) or '
       'datagram (UDP). Required.', shown='', section_only=True),
    _o('max_datagram_size', (UDP,), to_positive_int, 65536,
       'The largest datagram read; longer ones are truncated.', units='bytes'),
    _o('daemons', (DAEMONS,), to_words, [],
       'Names of daemon sections to run, each with a call = naming its class.', shown='',
       section_only=True),
)

BY_NAME = {option.name: option for option in OPTIONS}
#: ``call`` in an app section (one named by apps = or daemons =).
#:
#: :meta hide-value:
APP_CALL = Option('call', frozenset(), to_dotted, None, 'The app class, package.module.Class.')


def kind_of(section: str) -> Optional[str]:
    """Return the subserver kind of a section name, or None.

    ``wsgi``, ``wsgi2``, ``wsgi#admin`` are WSGI; likewise ``tcp``, ``udp``;
    ``daemons`` only as itself.

    >>> kind_of('wsgi#admin'), kind_of('tcp12'), kind_of('daemons'), kind_of('echo')
    ('wsgi', 'tcp', 'daemons', None)
    """
    if section == DAEMONS:
        return DAEMONS
    for kind in (WSGI, TCP, UDP):
        if section == kind:
            return kind
        rest = section[len(kind):] if section.startswith(kind) else None
        if rest and (rest.isdigit() or (rest.startswith('#') and len(rest) > 1)):
            return kind
    return None


def options_for(kind: str) -> list[Option]:
    """The options valid in a section of ``kind``.

    ``[brim]`` gets its own and every subserver option but the
    ``section_only`` ones.
    """
    if kind == GLOBAL:
        return [o for o in OPTIONS if GLOBAL in o.kinds or not o.section_only]
    return [o for o in OPTIONS if kind in o.kinds]


def lookup(conf: Conf, section: str, option: Option) -> Any:
    """Return the typed value of ``option`` for ``section``.

    The section's own value wins, then ``[brim]``'s, then the default.

    Raises:
        ConfError: naming the section the bad value was found in.
    """
    chain = (section,) if section == GLOBAL or option.section_only else (section, GLOBAL)
    for where in chain:
        raw = conf.get(where, option.name)
        if raw is not None:
            return option.parse(where, raw)
    return option.default_value()


def parse_section(name: str, conf: Conf, options: Iterable[Option]) -> dict[str, Any]:
    """Parse an app section's declared options into ``{option: value}``.

    For an app's ``parse_conf``: only ``[name]`` itself is read (no
    ``[brim]`` fallback), missing options get their defaults.

    Raises:
        ConfError: for a value its converter refuses.
    """
    parsed = {}
    for option in options:
        raw = conf.get(name, option.name)
        parsed[option.name] = option.default_value() if raw is None else option.parse(name, raw)
    return parsed


def unknown_options(conf: Conf, section: str, known: Iterable[str]) -> list[str]:
    """Warnings for options in ``[section]`` not in ``known``, with a guess.

    Returns:
        One line per unknown option, e.g. ``[wsgi] wrokers = '2': unknown
        option (a typo? did you mean workers)``.
    """
    known = list(known)
    lines = []
    for option, value in conf.store.get(section, {}).items():
        if option in known:
            continue
        guess = difflib.get_close_matches(option, known, 1)
        hint = ' did you mean %s' % guess[0] if guess else ''
        lines.append('[%s] %s = %r: unknown option (a typo?%s)' % (section, option, value, hint))
    return lines


@dataclass
class SubserverConf:
    """A subserver section resolved against the registry.

    Attributes:
        name: The section name (``'wsgi'``, ``'tcp#raw'``, ``'daemons'``).
        kind: ``'wsgi'``, ``'tcp'``, ``'udp'`` or ``'daemons'``.
        values: ``{option name: typed value}`` for every option of the kind.
    """

    name: str
    kind: str
    values: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, option: str) -> Any:
        return self.values[option]


@dataclass
class ServerConf:
    """The whole conf resolved: global values, subservers, warnings."""

    conf: Conf
    values: dict[str, Any]
    subservers: list[SubserverConf]
    warnings: list[str]

    def __getitem__(self, option: str) -> Any:
        return self.values[option]


def resolve(conf: Conf) -> ServerConf:
    """Resolve every brimd option of ``conf``.

    Returns:
        The :class:`ServerConf`; ``warnings`` lists unknown options in
        ``[brim]`` and subserver sections (app sections are checked by the
        loader, which knows their classes).

    Raises:
        ConfError: for the first value that cannot be converted, a missing
            ``call`` or app section, or a conf with no subserver.
    """
    values = {o.name: lookup(conf, GLOBAL, o) for o in OPTIONS if GLOBAL in o.kinds}
    warnings = unknown_options(conf, GLOBAL, [o.name for o in options_for(GLOBAL)])
    subservers = []
    for section in conf.store:
        kind = kind_of(section)
        if kind is None:
            continue
        sub = SubserverConf(section, kind, {o.name: lookup(conf, section, o) for o in options_for(kind)})
        warnings.extend(unknown_options(conf, section, [o.name for o in options_for(kind)] + ['__app__']))
        subservers.append(sub)
        if kind in (TCP, UDP) and not sub['call']:
            raise ConfError(section, 'call', None, 'missing: name the handler class, call = package.module.Class')
        names = sub['apps'] if kind == WSGI else sub['daemons'] if kind == DAEMONS else []
        for name in names:
            if name not in conf.store:
                raise ConfError(section, 'apps' if kind == WSGI else 'daemons', ' '.join(names),
                                'names [%s], which is not in the conf' % name)
            raw = conf.get(name, 'call')
            if raw is None:
                raise ConfError(name, 'call', None, 'missing: name the app class, call = package.module.Class')
            APP_CALL.parse(name, raw)
    if not subservers:
        raise ConfError('', '', None, 'no [wsgi], [tcp], [udp] or [daemons] section: nothing to run')
    # Subserver option warnings for tcp/udp sections are refined by the loader,
    # which knows the handler's own options; keep them only for other kinds here.
    warnings = [w for w in warnings if not _is_handler_section_warning(w, subservers)]
    return ServerConf(conf, values, subservers, warnings)


def _is_handler_section_warning(line: str, subservers: list[SubserverConf]) -> bool:
    return any(line.startswith('[%s] ' % s.name) for s in subservers if s.kind in (TCP, UDP))


# ---- brimd.conf-sample -----------------------------------------------------

SAMPLE_HEADER = """\
# brimd.conf-sample: a working brimd conf and the manual of every option.
#
# Run it as shipped (unprivileged ports on 127.0.0.1):
#   brimd -c brimd.conf-sample start     # daemonize; status, stop, shutdown, restart
#   brimd -c brimd.conf-sample           # foreground, one process, no daemons
#   brimd -c brimd.conf-sample check     # validate and show what would run
#
# Lines starting with # show an option with its default. Options of [brim]
# apply to the whole server; options valid in a subserver section ([wsgi],
# [wsgi2], [wsgi#admin], [tcp], [udp], [daemons] ...) may also be set in [brim]
# as the default for every subserver.
#
# Values may name environment variables, expanded when the conf is read:
# ${NAME}, or ${NAME:-default} used when NAME is unset or empty, as in
# port = ${PORT:-8080}. $$ is a literal $; any other $ stays as it is. A
# variable that is not set and has no default is a conf error.
#
# This file is generated from brim/options.py and the sample apps' OPTIONS:
#   python -m brim.options > brimd.conf-sample
"""

#: The sample's sections, each (section, settings written active, app class or None).
#:
#: :meta hide-value:
SAMPLE_SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...], Optional[str]], ...] = (
    (GLOBAL, (('ip', '127.0.0.1'), ('pid_file', '~/.brimd-sample.pid')), None),
    (WSGI, (('port', '8080'), ('workers', '2'), ('apps', 'echo stats')), None),
    ('echo', (('call', 'brim.wsgi_echo.WSGIEcho'),), 'brim.wsgi_echo.WSGIEcho'),
    ('stats', (('call', 'brim.wsgi_stats.WSGIStats'),), 'brim.wsgi_stats.WSGIStats'),
    (TCP, (('port', '8081'), ('call', 'brim.tcp_echo.TCPEcho')), 'brim.tcp_echo.TCPEcho'),
    (UDP, (('port', '8082'), ('call', 'brim.udp_echo.UDPEcho')), 'brim.udp_echo.UDPEcho'),
    (DAEMONS, (('daemons', 'daemon_sample'),), None),
    ('daemon_sample', (('call', 'brim.daemon_sample.DaemonSample'), ('interval', '5')),
     'brim.daemon_sample.DaemonSample'),
    ('auth', (('call', 'brim.wsgi_basic_auth.WSGIBasicAuth'), ('auth_path', '/etc/brimd.auth')),
     'brim.wsgi_basic_auth.WSGIBasicAuth'),
    ('files', (('call', 'brim.wsgi_fs.WSGIFS'), ('path', '/files'), ('serve_path', '/srv/www')),
     'brim.wsgi_fs.WSGIFS'),
    ('blog', (('call', 'brim.wsgi_app.WSGIApp'), ('app', 'myblog:create_app()'), ('path', '/blog')),
     'brim.wsgi_app.WSGIApp'),
)

#: Sample sections written commented out (they need files of the operator's),
#: with the lines that introduce them.
#:
#: :meta hide-value:
SAMPLE_COMMENTED = {
    'auth': ('Password-protected files: create the auth file and the directory, uncomment',
             '[auth] and [files], and set [wsgi] apps = auth files echo stats'),
    'blog': ('A Flask, Django or any WSGI application at /blog: put its package on',
             'PYTHONPATH, name it in app =, uncomment [blog] and add blog to [wsgi] apps'),
}


def _comment(text: str, width: int = 78) -> list[str]:
    import textwrap
    return ['#   ' + line for line in textwrap.wrap(text, width - 4)]


def _render_option(option: Option, active: dict[str, str], where: bool) -> list[str]:
    lines = []
    if option.name in active:
        lines.append('%s = %s' % (option.name, active.pop(option.name)))
    else:
        lines.append(('# %s = %s' % (option.name, option.shown_default)).rstrip())
    text = option.help
    if option.units:
        text += ' In %s.' % option.units
    if where:
        kinds = sorted(option.kinds & ALL_SUBSERVERS, key=SUBSERVER_KINDS.index)
        sections = ['[%s]' % kind for kind in kinds]
        text += ' (Valid in [brim] and %s.)' % ' '.join(sections) if sections else ' ([brim] only.)'
    return lines + _comment(text)


def _app_options(dotted: str) -> tuple[Option, ...]:
    import importlib
    module, _, name = dotted.rpartition('.')
    return tuple(getattr(getattr(importlib.import_module(module), name), 'OPTIONS', ()))


def render_sample() -> str:
    """Return the text of ``brimd.conf-sample``, generated from the registry."""
    out = [SAMPLE_HEADER]
    commented = False
    for section, settings, app in SAMPLE_SECTIONS:
        if section in SAMPLE_COMMENTED:
            commented = True
            out.extend(['# ' + line for line in SAMPLE_COMMENTED[section]] + [''])
        start = len(out)
        active = dict(settings)
        out.append('[%s]' % section)
        if app and section not in SUBSERVER_KINDS:
            out.append('call = %s' % active.pop('call'))
        kind = kind_of(section)
        if section == GLOBAL:
            options = options_for(GLOBAL)
        elif kind:
            # The defaults settable in [brim] are documented there once.
            options = [o for o in options_for(kind) if o.section_only]
            out.append('# Any [brim] option valid in [%s] may be overridden here.' % kind)
        else:
            options = []
        if app:
            options = options + list(_app_options(app))
        for option in options:
            out.extend(_render_option(option, active, section == GLOBAL))
        out.extend('%s = %s' % item for item in active.items())
        if commented:
            out[start:] = _comment_out(out[start:])
        out.append('')
    return '\n'.join(out)


def _comment_out(lines: list[str]) -> list[str]:
    return [line if line.startswith('#') or not line else '# ' + line for line in lines]


if __name__ == '__main__':
    print(render_sample(), end='')
