"""A WSGI app that requires HTTP Basic authentication (RFC 7617) for everything after it.

This is Basic auth: the password crosses the wire merely base64-encoded.
Serve it over TLS (``certfile`` and ``keyfile``) or behind a TLS proxy.

Configuration Options::

    [basic_auth]
    call = brim.wsgi_basic_auth.WSGIBasicAuth
    # auth_path = <path>
    #   The local file with the users (required; ~ is expanded). Plain
    #   text, one user per line: the user name, whitespace, then the bcrypt
    #   hash of the password; blank lines and lines starting with # are
    #   ignored. Make a hash with:
    #     $ python3 -c 'import bcrypt, getpass; print(bcrypt.hashpw(
    #     >   getpass.getpass().encode(), bcrypt.gensalt()).decode())'
    #   A changed file is picked up within a few seconds (at most 10).
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
500. A valid one sets ``REMOTE_USER`` (and ``AUTH_TYPE = 'Basic'``) and
calls the next app.

Passwords are checked with ``bcrypt.checkpw`` (on their first 72 bytes, as
bcrypt always did); an unknown user is checked against another user's hash
and refused anyway, so both cases cost about the same time. bcrypt is slow by
design and blocks the worker's green threads while it runs, so a successful
check is remembered (keyed by an HMAC of the password under a per-process
random key, never the password) until the user's hash changes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Iterable
from typing import Any, Optional

import bcrypt

from brim.conf import Conf
from brim.errors import ConfError
from brim.http import HTTPUnauthorized, StartResponse, WSGIApp

#: Seconds between checks of the auth file for changes; well within the
#: promised 10 s, and a stat() per second costs nothing.
DEFAULT_CHECK_INTERVAL = 1.0
#: Successful checks remembered; the cache is emptied when it is full.
_CACHE_SIZE = 1024
# bcrypt uses only the first 72 bytes of a password; bcrypt >= 5 raises
# for longer ones rather than truncate, so truncate as hashes were made.
_BCRYPT_MAX_PASSWORD = 72


def parse_auth_file(text: str) -> tuple[dict[str, bytes], list[int]]:
    """Parse an auth file's text into users.

    Args:
        text: The file's content: ``user hash`` lines, ``#`` comments, blanks.

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
        if len(fields) != 2 or not fields[1].startswith('$2'):
            bad_lines.append(number)
            continue
        users[fields[0]] = fields[1].encode('ascii', 'replace')
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
            checks of the auth file for changes).
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
        escaped = self.realm.replace('\\', '\\\\').replace('"', '\\"')
        self._challenge = 'Basic realm="%s", charset="UTF-8"' % escaped
        self._users: dict[str, bytes] = {}
        self._file_id: Optional[tuple[int, ...]] = None
        self._next_check = 0.0
        self._hmac_key = secrets.token_bytes(32)
        self._verified: dict[tuple[str, bytes], bytes] = {}

    @classmethod
    def parse_conf(cls, name: str, conf: Conf) -> dict[str, Any]:
        """Return this app's settings from ``conf`` (see :mod:`brim.wsgi_basic_auth`).

        Returns:
            ``{'auth_path': str, 'realm': str, 'check_interval': float}``.

        Raises:
            ConfError: if ``auth_path`` is not set or not a file, or ``realm``
                has a control character.
        """
        auth_path = conf.get_path(name, 'auth_path')
        if not auth_path:
            raise ConfError(name, 'auth_path', None, 'is required')
        if not os.path.isfile(auth_path):
            raise ConfError(name, 'auth_path', auth_path, 'is not a file')
        realm = conf.get(name, 'realm', 'brim')
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
            return self.next_app(env, start_response)
        if stats is not None:
            stats.incr('%s.denied' % self.name)
        return HTTPUnauthorized(headers={'WWW-Authenticate': self._challenge})(env, start_response)

    def _maybe_reload(self, logger: logging.Logger) -> None:
        """Re-read the auth file if it changed (checked every ``check_interval`` s).

        A file that can't be read keeps the users last read (logged as an error).
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
            with open(self.auth_path, encoding='utf-8', errors='replace') as fp:
                text = fp.read()
        except OSError as err:
            logger.error('%s: cannot read auth file %r: %s', self.name, self.auth_path, err)
            return
        self._users, bad_lines = parse_auth_file(text)
        self._file_id = file_id
        self._verified.clear()
        if bad_lines:
            logger.warning('%s: ignored malformed lines %s of %r', self.name,
                           ', '.join(map(str, bad_lines)), self.auth_path)

    def _check(self, user: str, password: bytes, logger: logging.Logger) -> bool:
        """True if ``password`` matches ``user``'s bcrypt hash."""
        password = password[:_BCRYPT_MAX_PASSWORD]
        stored = self._users.get(user)
        # For an unknown user, spend the same time on someone else's hash.
        against = stored if stored is not None else next(iter(self._users.values()), None)
        if against is None:
            return False
        digest = hmac.new(self._hmac_key, password, hashlib.sha256).digest()
        key = (user, digest)
        if stored is not None and hmac.compare_digest(self._verified.get(key, b''), stored):
            return True
        try:
            ok = bcrypt.checkpw(password, against)
        except ValueError as err:
            # A malformed stored hash: deny, never 500.
            logger.error('%s: bad hash in %r: %s', self.name, self.auth_path, err)
            return False
        if not ok or stored is None:
            return False
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.clear()
        self._verified[key] = stored
        return True
