"""A WSGI app that requires HTTP Basic authentication (RFC 7617) for everything after it.

This is Basic auth: the password crosses the wire merely base64-encoded.
Serve it over TLS (``certfile`` and ``keyfile``) or behind a TLS proxy.

Configuration Options::

    [basic_auth]
    call = brim.wsgi_basic_auth.WSGIBasicAuth
    # auth_path = <path>
    #   The local file with the users (required, and must exist when brimd
    #   starts; ~ is expanded). Plain text (UTF-8), one user per line: the
    #   user name, whitespace, then the bcrypt hash of the password; blank
    #   lines and lines starting with # are ignored. Make a hash with:
    #     $ python3 -c 'import bcrypt, getpass; print(bcrypt.hashpw(
    #     >   getpass.getpass().encode(), bcrypt.gensalt()).decode())'
    #   A changed file is picked up without a restart, within 10 seconds
    #   (each worker looks at it at most once a second, when a request comes).
    # realm = <text>
    #   The protection space named in WWW-Authenticate. Default: brim

Stats Variables (where n. is the name of the app in the config):

==============  ======  ==================================================
Name            Type    Description
==============  ======  ==================================================
n.requests      sum     The number of requests seen.
n.denied        sum     The number of requests refused with 401.
start_time      worker  Timestamp when the app was started (set by brimd).
==============  ======  ==================================================

Behaviour: a request without valid credentials gets 401 with
``WWW-Authenticate: Basic realm="...", charset="UTF-8"`` (RFC 7617 section
2.1); a malformed Authorization header (wrong scheme, bad base64, no colon,
not UTF-8, an over-long password) is just "wrong credentials": 401, never
500. A valid one sets ``REMOTE_USER`` (PEP 3333 / CGI), ``AUTH_TYPE =
'Basic'`` and ``brim.authenticated_user`` (both users show in the access
log) and calls the next app.

The auth file fails closed: when it goes missing, becomes unreadable, is not
UTF-8 text, or has lines but not one valid ``user hash`` line, every request
gets 401 and the remembered checks are forgotten. One error line says why,
logged by each worker when it notices the change (not once per request);
when the file is usable again, one line says so and auth works again. Lines
that are malformed in an otherwise good file are skipped with a warning.
(At start-up :meth:`WSGIBasicAuth.parse_conf` refuses a missing file.)

Passwords are checked with ``bcrypt.checkpw`` (on their first 72 bytes, as
bcrypt always did); an unknown user is checked against another user's hash
and refused anyway, so both cases cost about the same time. bcrypt is slow
by design (about 0.25 s at its default cost 12), so:

* Under Eventlet (in brimd's workers) the check runs in Eventlet's pool of
  real threads (``eventlet.tpool``, 20 threads unless
  ``EVENTLET_THREADPOOL_SIZE`` says otherwise); bcrypt releases the GIL, so
  the worker's other green threads keep being served meanwhile. This module
  never imports Eventlet itself; outside it the check is a plain call.
* A successful check is remembered, keyed by the user and an HMAC-SHA256 of
  the password under a per-process random key (never the password itself),
  so a repeat request with the same good credentials skips bcrypt. At most
  ``CACHE_SIZE`` = 1024 checks are remembered (the oldest is dropped first),
  each for at most ``CACHE_TTL`` = 300 seconds, and all are forgotten when
  the auth file changes or fails.

Comparisons are constant time: the remembered hash is compared with the
user's current one by :func:`hmac.compare_digest`, and the cache is looked up
by a keyed digest an attacker can't compute, so lookup timing tells nothing
about the password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterable
from typing import Any, Callable, Optional, TypeVar

import bcrypt

from brim.conf import Conf
from brim.errors import ConfError
from brim.options import app_option, parse_section, to_path, to_str
from brim.http import HTTPUnauthorized, StartResponse, WSGIApp
from brim.log import NOTICE

#: Seconds between checks of the auth file for changes, well within the
#: promised 10 s; and a stat() a second per worker costs nothing.
DEFAULT_CHECK_INTERVAL = 1.0
#: Successful checks remembered per worker (about 200 bytes each); past
#: this the oldest is forgotten first, so memory stays bounded whatever
#: users send.
CACHE_SIZE = 1024
#: Seconds a successful check is remembered; long enough that a busy client
#: pays bcrypt once every five minutes, short enough that a password's
#: digest doesn't linger in memory long after it was last used.
CACHE_TTL = 300.0
# bcrypt uses only the first 72 bytes of a password; bcrypt >= 5 raises
# for longer ones rather than truncate, so truncate as hashes were made.
_BCRYPT_MAX_PASSWORD = 72

# A bcrypt hash in modular crypt format: $2a$, $2b$, $2x$ or $2y$, a
# two-digit cost, then 22 characters of salt and 31 of hash in bcrypt's
# base64 alphabet.
_BCRYPT_HASH = re.compile(r'\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}\Z')

_T = TypeVar('_T')


def run_off_loop(func: Callable[..., _T], *args: Any) -> _T:
    """Return ``func(*args)``, run in a real thread when Eventlet is in use.

    In a brimd worker (Eventlet loaded) the call goes to ``eventlet.tpool``,
    so the calling green thread waits while the others keep running; the
    import happens here, lazily, so this module never loads Eventlet. With
    no Eventlet it is a plain call.
    """
    if 'eventlet' in sys.modules:
        from eventlet import tpool
        return tpool.execute(func, *args)
    return func(*args)


def parse_auth_file(text: str) -> tuple[dict[str, bytes], list[int]]:
    """Parse an auth file's text into users.

    Args:
        text: The file's content: ``user hash`` lines, ``#`` comments, blanks.
            A line is malformed unless it has exactly two fields and the
            second is a well-formed bcrypt hash (``$2b$12$`` and 53 more).

    Returns:
        ({user: bcrypt hash as bytes}, [line numbers that were malformed]).
    """
    users: dict[str, bytes] = {}
    bad_lines: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        fields = line.split()
        if len(fields) != 2 or not _BCRYPT_HASH.match(fields[1]):
            bad_lines.append(number)
            continue
        users[fields[0]] = fields[1].encode('ascii')
    return users, bad_lines


def parse_authorization(header: Optional[str]) -> Optional[tuple[str, bytes]]:
    """Return (user, password) from a Basic Authorization header, or None.

    RFC 7617 section 2: ``Basic`` (any case), a space, then base64 of
    ``user-id ":" password``; the user-id cannot contain a colon, the
    password can. Decoded as UTF-8 (the charset we announce).

    Args:
        header: The Authorization header value (a PEP 3333 latin-1 ``str``).

    Returns:
        (user as ``str``, password as UTF-8 ``bytes``), or None when the
        header is absent or malformed in any way.
    """
    if not header:
        return None
    scheme, _space, token = header.strip().partition(' ')
    if scheme.lower() != 'basic':
        return None
    try:
        decoded = base64.b64decode(token.strip().encode('ascii'), validate=True)
        text = decoded.decode('utf-8')
    except (UnicodeError, binascii.Error, ValueError):
        return None
    user, colon, password = text.partition(':')
    if not colon or not user:
        return None
    return user, password.encode('utf-8')


class WSGIBasicAuth:
    """Requires HTTP Basic auth, against the users in ``auth_path``, before ``next_app``.

    See :mod:`brim.wsgi_basic_auth` for the options and behaviour.

    Args:
        name: The app's conf section name.
        parsed_conf: As returned by :meth:`parse_conf`: ``auth_path`` (str),
            ``realm`` (str) and ``check_interval`` (float seconds between
            checks of the auth file for changes); optionally ``cache_size``
            (int) and ``cache_ttl`` (float seconds), defaulting to
            :data:`CACHE_SIZE` and :data:`CACHE_TTL`.
        next_app: The next WSGI app in the chain.
    """

    def __init__(self, name: str, parsed_conf: dict[str, Any], next_app: WSGIApp) -> None:
        #: The name of the app.
        self.name = name
        #: The next WSGI app in the chain.
        self.next_app = next_app
        #: The auth file path.
        self.auth_path: str = parsed_conf['auth_path']
        #: The realm named in WWW-Authenticate.
        self.realm: str = parsed_conf.get('realm', 'brim')
        self.check_interval: float = parsed_conf.get('check_interval', DEFAULT_CHECK_INTERVAL)
        self.cache_size: int = parsed_conf.get('cache_size', CACHE_SIZE)
        self.cache_ttl: float = parsed_conf.get('cache_ttl', CACHE_TTL)
        escaped = self.realm.replace('\\', '\\\\').replace('"', '\\"')
        self._challenge = 'Basic realm="%s", charset="UTF-8"' % escaped
        #: The password check, ``(password, hash) -> bool``; replaceable on
        #: an instance (tests count calls through it).
        self.checkpw: Callable[[bytes, bytes], bool] = bcrypt.checkpw
        self._users: dict[str, bytes] = {}
        # The auth file as last read: (inode, size, mtime, ctime) and its bytes.
        self._file_id: Optional[tuple[int, ...]] = None
        self._file_data: Optional[bytes] = None
        # Why the auth file is unusable, while it is (None when it is fine).
        self._failure: Optional[str] = None
        # Bumped whenever the users change, so a check that was running
        # across a reload is not remembered.
        self._generation = 0
        self._next_check = 0.0
        self._hmac_key = secrets.token_bytes(32)
        # (user, HMAC of password) -> (the user's hash then, monotonic expiry);
        # insertion order is expiry order (every entry lives cache_ttl).
        self._verified: dict[tuple[str, bytes], tuple[bytes, float]] = {}

    #: This app's options, declared once; parse_conf, brimd check and
    #: brimd.conf-sample all use them.
    #:
    #: :meta hide-value:
    OPTIONS = (
        app_option('auth_path', to_path, '', 'The auth file (required): one "user bcrypt-hash" line per user. '
                   'A changed file is picked up within 10 seconds; a missing or unreadable one fails closed '
                   '(401 for everyone, one error logged).'),
        app_option('realm', to_str, 'brim', 'The realm named in the WWW-Authenticate challenge.'),
    )

    @classmethod
    def parse_conf(cls, name: str, conf: Conf) -> dict[str, Any]:
        """Return this app's settings from ``conf`` (see :mod:`brim.wsgi_basic_auth`).

        Returns:
            ``{'auth_path': str, 'realm': str, 'check_interval': float}``.

        Raises:
            ConfError: if ``auth_path`` is not set or not a file, or ``realm``
                has a control character.
        """
        parsed = parse_section(name, conf, cls.OPTIONS)
        auth_path, realm = parsed['auth_path'], parsed['realm']
        if not auth_path:
            raise ConfError(name, 'auth_path', None, 'is required')
        if not os.path.isfile(auth_path):
            raise ConfError(name, 'auth_path', auth_path, 'is not a file')
        if any(ord(char) < 32 or ord(char) == 127 for char in realm):
            raise ConfError(name, 'realm', realm, 'has a control character')
        return {'auth_path': auth_path, 'realm': realm, 'check_interval': DEFAULT_CHECK_INTERVAL}

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict[str, Any]) -> list[tuple[str, str]]:
        """Return the stats this app keeps: ``<name>.requests`` and ``<name>.denied``, both sum."""
        return [('%s.requests' % name, 'sum'), ('%s.denied' % name, 'sum')]

    def __call__(self, env: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Call the next app if the request's Basic credentials are valid, else answer 401."""
        stats = env.get('brim.stats')
        if stats is not None:
            stats.incr('%s.requests' % self.name)
        logger = env.get('brim.logger') or logging.getLogger('brim')
        self._maybe_reload(logger)
        credentials = parse_authorization(env.get('HTTP_AUTHORIZATION'))
        if credentials is not None and self._check(credentials[0], credentials[1], logger):
            env['REMOTE_USER'] = credentials[0]
            env['AUTH_TYPE'] = 'Basic'
            env['brim.authenticated_user'] = credentials[0]
            return self.next_app(env, start_response)
        if stats is not None:
            stats.incr('%s.denied' % self.name)
        return HTTPUnauthorized(headers={'WWW-Authenticate': self._challenge})(env, start_response)

    def _maybe_reload(self, logger: logging.Logger) -> None:
        """Re-read the auth file if it changed (looked at every ``check_interval`` s).

        A file that can't be read or used fails closed (see :meth:`_fail`).
        """
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self.check_interval
        try:
            info = os.stat(self.auth_path)
            file_id = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
            if file_id == self._file_id:
                return
            with open(self.auth_path, 'rb') as fp:
                data = fp.read()
        except OSError as err:
            self._fail(logger, 'cannot read auth file %r: %s' % (self.auth_path, err.strerror or err), None)
            return
        if data == self._file_data and self._failure is None:
            # Touched, or rewritten with the same content: nothing to forget.
            self._file_id = file_id
            return
        try:
            text = data.decode('utf-8')
        except UnicodeDecodeError:
            text = None
        if text is None or '\0' in text:
            self._fail(logger, 'auth file %r is not text' % self.auth_path, file_id)
            return
        users, bad_lines = parse_auth_file(text)
        if bad_lines and not users:
            self._fail(logger, 'auth file %r has no valid "user bcrypt-hash" line (malformed lines %s)' % (
                self.auth_path, ', '.join(map(str, bad_lines))), file_id)
            return
        if bad_lines:
            logger.warning('%s: ignored malformed lines %s of %r', self.name,
                           ', '.join(map(str, bad_lines)), self.auth_path)
        if self._failure is not None:
            logger.log(NOTICE, '%s: auth file %r is usable again (%d users); authenticating again',
                       self.name, self.auth_path, len(users))
        elif self._file_data is not None:
            logger.info('%s: auth file %r changed (%d users)', self.name, self.auth_path, len(users))
        self._set_users(users, file_id, data)
        self._failure = None

    def _fail(self, logger: logging.Logger, reason: str, file_id: Optional[tuple[int, ...]]) -> None:
        """Fail closed: no users, nothing remembered; log ``reason`` once, when it starts."""
        self._set_users({}, file_id, None)
        if reason != self._failure:
            logger.error('%s: %s; refusing every request (401) until it is fixed', self.name, reason)
            self._failure = reason

    def _set_users(self, users: dict[str, bytes], file_id: Optional[tuple[int, ...]],
                   data: Optional[bytes]) -> None:
        self._users = users
        self._file_id = file_id
        self._file_data = data
        self._verified.clear()
        self._generation += 1

    def _check(self, user: str, password: bytes, logger: logging.Logger) -> bool:
        """True if ``password`` matches ``user``'s bcrypt hash (remembered or checked now)."""
        password = password[:_BCRYPT_MAX_PASSWORD]
        stored = self._users.get(user)
        # For an unknown user, spend the same time on someone else's hash.
        against = stored if stored is not None else next(iter(self._users.values()), None)
        if against is None:
            return False  # no users at all (an empty or failed auth file)
        key = (user, hmac.new(self._hmac_key, password, hashlib.sha256).digest())
        now = time.monotonic()
        if stored is not None:
            remembered = self._verified.get(key)
            if remembered is not None:
                if now < remembered[1] and hmac.compare_digest(remembered[0], stored):
                    return True
                del self._verified[key]
        generation = self._generation
        try:
            ok = run_off_loop(self.checkpw, password, against)
        except ValueError as err:
            # A malformed stored hash: deny, never 500.
            logger.error('%s: bad hash in %r: %s', self.name, self.auth_path, err)
            return False
        if not ok or stored is None:
            return False
        if generation != self._generation:
            # The file was re-read while bcrypt ran: still good only if the
            # user's hash is unchanged; not remembered.
            current = self._users.get(user)
            return current is not None and hmac.compare_digest(current, stored)
        self._remember(key, stored, now)
        return True

    def _remember(self, key: tuple[str, bytes], stored: bytes, now: float) -> None:
        """Remember a successful check for ``cache_ttl`` s, keeping at most ``cache_size``."""
        cache = self._verified
        if self.cache_size <= 0 or self.cache_ttl <= 0:
            return
        # Oldest first is soonest-expiring first: drop the expired, then
        # the oldest while full.
        while cache:
            oldest = next(iter(cache))
            if len(cache) < self.cache_size and cache[oldest][1] > now:
                break
            del cache[oldest]
        cache[key] = (stored, now + self.cache_ttl)
