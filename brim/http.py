"""Utilities for working with HTTP: status responses, query strings, headers.

This isn't WebOb or Werkzeug, but often it's enough, and you should be able
to upgrade easily to one of those once you need it.

There is a class for every status code of RFC 9110 (and the other codes
:class:`http.HTTPStatus` knows), such as :class:`HTTPNotFound` for 404.
Every one is a subclass of :class:`HTTPException`, so it can be raised and
caught, and every instance is also a WSGI app (PEP 3333)::

    def __call__(self, env, start_response):
        try:
            size = QueryParser(env['QUERY_STRING']).get_int('size', 10)
            if size > 100:
                raise HTTPBadRequest('size must be at most 100\\n')
        except HTTPException as err:
            return err(env, start_response)
        return HTTPOk('size is %d\\n' % size)(env, start_response)

The hierarchy (the same as the original brim's and webob.exc's)::

    HTTPException (alias HTTPResponse)
        HTTPInformational          1xx
        HTTPSuccess                2xx  (aliases HTTPOk, HTTPOK: 200)
        HTTPRedirection            3xx  (alias HTTPMultipleChoices: 300)
        HTTPError
            HTTPClientError        4xx  (alias HTTPBadRequest: 400)
            HTTPServerError        5xx  (alias HTTPInternalServerError: 500)

A base class used directly stands for its lowest code (``HTTPSuccess()`` is
a 200). Reason phrases come from :class:`http.HTTPStatus`.

Instead of a request object there are small helpers: :class:`QueryParser`,
:func:`get_header` and its typed friends, and :func:`quote` (UTF-8 safe).

Invariants: a response never carries a body for HEAD, 1xx, 204 or 304
(RFC 9110 sections 9.3.2, 15.2, 15.3.5, 15.4.5); header values never contain
CR or LF (a ValueError is raised when constructing one that would).
"""

from __future__ import annotations

import http
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, Union, cast

from brim.conf import FALSE_VALUES, TRUE_VALUES

#: PEP 3333 ``start_response(status, headers, exc_info=None)``.
StartResponse = Callable[..., Any]
#: A PEP 3333 application.
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Headers = Union[Mapping[str, Any], Iterable[tuple[str, Any]], None]
Body = Union[bytes, str, Iterable[bytes], None]

#: int status code -> English reason phrase, e.g. ``CODE2NAME[201] == 'Created'``.
CODE2NAME: dict[int, str] = {status.value: status.phrase for status in http.HTTPStatus}

# RFC 9110 section 6.4.1: 1xx, 204 and 304 responses have no content.
_NO_CONTENT_CODES = frozenset([204, 304])


def reason_phrase(code: int) -> str:
    """Return the reason phrase for ``code`` (``'Status'`` when unknown)."""
    return CODE2NAME.get(code, 'Status')


def _no_content(code: int) -> bool:
    return code < 200 or code in _NO_CONTENT_CODES


def _check_header(name: str, value: str) -> None:
    # RFC 9110 section 5.5: a field value never contains CR, LF or NUL;
    # refusing them here stops header injection from user-supplied values.
    for text in (name, value):
        if '\r' in text or '\n' in text or '\0' in text:
            raise ValueError('invalid character in header %r: %r' % (name, value))


class HTTPException(Exception):
    """Root class of all brim.http response classes; raisable and a WSGI app.

    Args:
        body: The response body: ``bytes``, ``str`` (sent as UTF-8), an
            iterable of ``bytes`` (sent as is, no Content-Length computed),
            or None for a default body such as ``b'404 Not Found\\n'`` (unless
            the headers give a Content-Length or Transfer-Encoding, in which
            case the body is empty).
        headers: A dict or an iterable of (name, value) pairs; values are
            turned into ``str``. Names are matched case-insensitively.
        code: The status code; defaults to the class's own (500 here).
        location: For redirects, the ``Location`` header value (a URI
            reference, RFC 9110 section 10.2.2); it is also named in the
            default body.

    Content-Length is set to the body's length when the body is bytes or str
    and the headers have neither Content-Length nor Transfer-Encoding.
    Content-Type defaults to ``text/plain; charset=utf-8``.

    Raises:
        ValueError: if a header name or value contains CR, LF or NUL.
    """

    #: The status code a class stands for.
    code: int = 500

    def __init__(self, body: Body = None, headers: Headers = None, code: Optional[int] = None,
                 location: Optional[str] = None) -> None:
        if code is not None:
            self.code = code
        #: list[tuple[str, str]]: the response headers, in order.
        self.headers: list[tuple[str, str]] = []
        if headers is not None:
            pairs = headers.items() if isinstance(headers, Mapping) else headers
            for name, value in pairs:
                self.set_header(name, value)
        if location is not None:
            self.set_header('Location', location)
        framed = self.get_header('content-length') is not None or \
            self.get_header('transfer-encoding') is not None
        if _no_content(self.code):
            body = b''
        elif body is None:
            body = b'' if framed else self._default_body()
        if isinstance(body, str):
            body = body.encode('utf-8')
        #: bytes or an iterable of bytes: what a non-HEAD request gets.
        self.body: Union[bytes, Iterable[bytes]] = body
        # RFC 9110 section 8.6: no Content-Length in 1xx or 204 responses.
        if isinstance(body, bytes) and not framed and self.code >= 200 and self.code != 204:
            self.set_header('Content-Length', len(body))
        if self.get_header('content-type') is None and not _no_content(self.code):
            self.set_header('Content-Type', 'text/plain; charset=utf-8')
        super().__init__('%d %s %s' % (self.code, reason_phrase(self.code), self._summary()))

    def _summary(self) -> str:
        if isinstance(self.body, bytes):
            return self.body.decode('utf-8', 'replace').strip() or '-'
        return '-'

    def _default_body(self) -> bytes:
        text = '%d %s\n' % (self.code, reason_phrase(self.code))
        location = self.get_header('location')
        if location is not None:
            text += 'Location: %s\n' % location
        return text.encode('utf-8')

    @property
    def status(self) -> str:
        """The WSGI status line, e.g. ``'404 Not Found'``."""
        return '%d %s' % (self.code, reason_phrase(self.code))

    def get_header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """Return the value of header ``name`` (case-insensitive) or ``default``."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return default

    def set_header(self, name: str, value: Any) -> None:
        """Set header ``name`` to ``str(value)``, replacing any of that name.

        Raises:
            ValueError: if the name or value contains CR, LF or NUL.
        """
        value = str(value)
        _check_header(name, value)
        lowered = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lowered]
        self.headers.append((name, value))

    def __call__(self, env: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """WSGI callable: start the response and return the body.

        A HEAD request gets the same headers and no body (RFC 9110 section 9.3.2).
        """
        start_response(self.status, list(self.headers))
        if env.get('REQUEST_METHOD') == 'HEAD':
            close = getattr(self.body, 'close', None)
            if close is not None:
                close()
            return []
        if isinstance(self.body, bytes):
            return [self.body]
        return self.body


HTTPResponse = HTTPException


class HTTPInformational(HTTPException):
    """1xx informational; used directly, ``100 Continue`` (alias HTTPContinue)."""

    code = 100


HTTPContinue = HTTPInformational


class HTTPSwitchingProtocols(HTTPInformational):
    """``101 Switching Protocols``. Never has a body."""

    code = 101


class HTTPProcessing(HTTPInformational):
    """``102 Processing``. Never has a body."""

    code = 102


class HTTPEarlyHints(HTTPInformational):
    """``103 Early Hints``. Never has a body."""

    code = 103


class HTTPSuccess(HTTPException):
    """2xx success; used directly, ``200 OK`` (aliases HTTPOk, HTTPOK)."""

    code = 200


HTTPOk = HTTPOK = HTTPSuccess


class HTTPCreated(HTTPSuccess):
    """``201 Created``."""

    code = 201


class HTTPAccepted(HTTPSuccess):
    """``202 Accepted``."""

    code = 202


class HTTPNonAuthoritativeInformation(HTTPSuccess):
    """``203 Non-Authoritative Information``."""

    code = 203


class HTTPNoContent(HTTPSuccess):
    """``204 No Content``. Never has a body."""

    code = 204


class HTTPResetContent(HTTPSuccess):
    """``205 Reset Content``."""

    code = 205


class HTTPPartialContent(HTTPSuccess):
    """``206 Partial Content``."""

    code = 206


class HTTPMultiStatus(HTTPSuccess):
    """``207 Multi-Status``."""

    code = 207


class HTTPAlreadyReported(HTTPSuccess):
    """``208 Already Reported``."""

    code = 208


class HTTPIMUsed(HTTPSuccess):
    """``226 IM Used``."""

    code = 226


class HTTPRedirection(HTTPException):
    """3xx redirection; used directly, ``300 Multiple Choices`` (alias HTTPMultipleChoices).

    Pass ``location=`` for the ``Location`` header."""

    code = 300


HTTPMultipleChoices = HTTPRedirection


class HTTPMovedPermanently(HTTPRedirection):
    """``301 Moved Permanently``. Pass ``location=`` for the ``Location`` header."""

    code = 301


class HTTPFound(HTTPRedirection):
    """``302 Found``. Pass ``location=`` for the ``Location`` header."""

    code = 302


class HTTPSeeOther(HTTPRedirection):
    """``303 See Other``. Pass ``location=`` for the ``Location`` header."""

    code = 303


class HTTPNotModified(HTTPRedirection):
    """``304 Not Modified``. Never has a body."""

    code = 304


class HTTPUseProxy(HTTPRedirection):
    """``305 Use Proxy``."""

    code = 305


class HTTPTemporaryRedirect(HTTPRedirection):
    """``307 Temporary Redirect``. Pass ``location=`` for the ``Location`` header."""

    code = 307


class HTTPPermanentRedirect(HTTPRedirection):
    """``308 Permanent Redirect``. Pass ``location=`` for the ``Location`` header."""

    code = 308


class HTTPError(HTTPException):
    """Base of the 4xx and 5xx classes; used directly, ``500 Internal Server Error``."""

    code = 500


class HTTPClientError(HTTPError):
    """4xx client error; used directly, ``400 Bad Request`` (alias HTTPBadRequest)."""

    code = 400


HTTPBadRequest = HTTPClientError


class HTTPUnauthorized(HTTPClientError):
    """``401 Unauthorized``."""

    code = 401


class HTTPPaymentRequired(HTTPClientError):
    """``402 Payment Required``."""

    code = 402


class HTTPForbidden(HTTPClientError):
    """``403 Forbidden``."""

    code = 403


class HTTPNotFound(HTTPClientError):
    """``404 Not Found``."""

    code = 404


class HTTPMethodNotAllowed(HTTPClientError):
    """``405 Method Not Allowed``."""

    code = 405


class HTTPNotAcceptable(HTTPClientError):
    """``406 Not Acceptable``."""

    code = 406


class HTTPProxyAuthenticationRequired(HTTPClientError):
    """``407 Proxy Authentication Required``."""

    code = 407


class HTTPRequestTimeout(HTTPClientError):
    """``408 Request Timeout``."""

    code = 408


class HTTPConflict(HTTPClientError):
    """``409 Conflict``."""

    code = 409


class HTTPGone(HTTPClientError):
    """``410 Gone``."""

    code = 410


class HTTPLengthRequired(HTTPClientError):
    """``411 Length Required``."""

    code = 411


class HTTPPreconditionFailed(HTTPClientError):
    """``412 Precondition Failed``."""

    code = 412


class HTTPContentTooLarge(HTTPClientError):
    """``413 Request Entity Too Large``."""

    code = 413


HTTPRequestEntityTooLarge = HTTPContentTooLarge  # RFC 2616's name


class HTTPURITooLong(HTTPClientError):
    """``414 Request-URI Too Long``."""

    code = 414


HTTPRequestURITooLong = HTTPURITooLong  # RFC 2616's name


class HTTPUnsupportedMediaType(HTTPClientError):
    """``415 Unsupported Media Type``."""

    code = 415


class HTTPRangeNotSatisfiable(HTTPClientError):
    """``416 Requested Range Not Satisfiable``."""

    code = 416


HTTPRequestedRangeNotSatisfiable = HTTPRangeNotSatisfiable  # RFC 2616's name


class HTTPExpectationFailed(HTTPClientError):
    """``417 Expectation Failed``."""

    code = 417


class HTTPImATeapot(HTTPClientError):
    """``418 I'm a Teapot``."""

    code = 418


class HTTPMisdirectedRequest(HTTPClientError):
    """``421 Misdirected Request``."""

    code = 421


class HTTPUnprocessableContent(HTTPClientError):
    """``422 Unprocessable Entity``."""

    code = 422


HTTPUnprocessableEntity = HTTPUnprocessableContent  # RFC 4918's name


class HTTPLocked(HTTPClientError):
    """``423 Locked``."""

    code = 423


class HTTPFailedDependency(HTTPClientError):
    """``424 Failed Dependency``."""

    code = 424


class HTTPTooEarly(HTTPClientError):
    """``425 Too Early``."""

    code = 425


class HTTPUpgradeRequired(HTTPClientError):
    """``426 Upgrade Required``."""

    code = 426


class HTTPPreconditionRequired(HTTPClientError):
    """``428 Precondition Required``."""

    code = 428


class HTTPTooManyRequests(HTTPClientError):
    """``429 Too Many Requests``."""

    code = 429


class HTTPRequestHeaderFieldsTooLarge(HTTPClientError):
    """``431 Request Header Fields Too Large``."""

    code = 431


class HTTPUnavailableForLegalReasons(HTTPClientError):
    """``451 Unavailable For Legal Reasons``."""

    code = 451


class HTTPServerError(HTTPError):
    """5xx server error; used directly, ``500 Internal Server Error`` (alias
    HTTPInternalServerError)."""

    code = 500


HTTPInternalServerError = HTTPServerError


class HTTPNotImplemented(HTTPServerError):
    """``501 Not Implemented``."""

    code = 501


class HTTPBadGateway(HTTPServerError):
    """``502 Bad Gateway``."""

    code = 502


class HTTPServiceUnavailable(HTTPServerError):
    """``503 Service Unavailable``."""

    code = 503


class HTTPGatewayTimeout(HTTPServerError):
    """``504 Gateway Timeout``."""

    code = 504


class HTTPHTTPVersionNotSupported(HTTPServerError):
    """``505 HTTP Version Not Supported``."""

    code = 505


HTTPVersionNotSupported = HTTPHTTPVersionNotSupported


class HTTPVariantAlsoNegotiates(HTTPServerError):
    """``506 Variant Also Negotiates``."""

    code = 506


class HTTPInsufficientStorage(HTTPServerError):
    """``507 Insufficient Storage``."""

    code = 507


class HTTPLoopDetected(HTTPServerError):
    """``508 Loop Detected``."""

    code = 508


class HTTPNotExtended(HTTPServerError):
    """``510 Not Extended``."""

    code = 510


class HTTPNetworkAuthenticationRequired(HTTPServerError):
    """``511 Network Authentication Required``."""

    code = 511


def _to_bool(text: str) -> Optional[bool]:
    lowered = text.strip().lower()
    if lowered in TRUE_VALUES:
        return True
    if lowered in FALSE_VALUES:
        return False
    return None


def _convert(kind: str, text: str, what: str) -> Any:
    """Convert ``text`` to ``kind`` ('boolean', 'int', 'float').

    Raises:
        HTTPBadRequest: naming ``what`` (e.g. ``"Query parameter 'n'"``).
    """
    if kind == 'boolean':
        value = _to_bool(text)
        if value is not None:
            return value
    else:
        try:
            return int(text) if kind == 'int' else float(text)
        except ValueError:
            pass
    raise HTTPBadRequest('%s value %r not %s.\n' % (what, text, kind))


class QueryParser:
    """Parses a query string and offers typed access to its parameters.

    Args:
        query_string: The query, as in WSGI's ``env['QUERY_STRING']``
            (without the ``?``). Percent-escapes are decoded as UTF-8
            (invalid sequences become U+FFFD); ``+`` is a space.
    """

    def __init__(self, query_string: Optional[str] = None) -> None:
        text = query_string or ''
        try:
            # PEP 3333 hands us the raw bytes as latin-1; undo that.
            text = text.encode('latin-1').decode('utf-8')
        except UnicodeError:
            pass
        #: dict[str, list[str]]: every parameter's values, in order.
        self.query: dict[str, list[str]] = urllib.parse.parse_qs(
            text, keep_blank_values=True, encoding='utf-8', errors='replace')

    def get(self, name: str, default: Any = None, last_only: bool = True) -> Any:
        """Return the value of parameter ``name``, or ``default`` if absent.

        Args:
            name: The parameter name.
            default: Returned when the parameter is absent.
            last_only: If True, the last value given; if False, the list of
                every value given.
        """
        values = self.query.get(name)
        if values is None:
            return default
        return values[-1] if last_only else values

    def get_bool(self, name: str, default: Any = None) -> Any:
        """Return parameter ``name`` as a bool, or ``default`` if absent.

        A parameter given with no value (``?verbose``) means ``not default``.
        Otherwise the value is checked against ``brim.conf.TRUE_VALUES`` and
        ``FALSE_VALUES``.

        Raises:
            HTTPBadRequest: if the value is not a boolean; the body names the parameter.
        """
        value = self.get(name)
        if value is None:
            return default
        if not value:
            return not default
        return _convert('boolean', value, 'Query parameter %r' % name)

    get_boolean = get_bool  # the original brim's name

    def get_int(self, name: str, default: Any = None) -> Any:
        """Return parameter ``name`` as an int, or ``default`` if absent.

        Raises:
            HTTPBadRequest: if the value is not an int; the body names the parameter.
        """
        value = self.get(name)
        if value is None:
            return default
        return _convert('int', value, 'Query parameter %r' % name)

    def get_float(self, name: str, default: Any = None) -> Any:
        """Return parameter ``name`` as a float, or ``default`` if absent.

        Raises:
            HTTPBadRequest: if the value is not a float; the body names the parameter.
        """
        value = self.get(name)
        if value is None:
            return default
        return _convert('float', value, 'Query parameter %r' % name)


def header_env_key(name: str) -> str:
    """Return the WSGI environ key for header ``name`` (PEP 3333, CGI rules).

    ``'X-Auth-Token'`` -> ``'HTTP_X_AUTH_TOKEN'``; Content-Type and
    Content-Length have no ``HTTP_`` prefix.
    """
    key = name.upper().replace('-', '_')
    if key in ('CONTENT_TYPE', 'CONTENT_LENGTH'):
        return key
    return 'HTTP_' + key


def get_header(env: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Return the ``str`` value of request header ``name``, or ``default``.

    Args:
        env: The WSGI environ.
        name: The header name, any case (``'If-Modified-Since'``).
        default: Returned when the header is absent.
    """
    return env.get(header_env_key(name), default)


def _typed_header(env: Mapping[str, Any], name: str, default: Any, kind: str) -> Any:
    value = env.get(header_env_key(name))
    if value is None:
        if default is None:
            raise HTTPBadRequest('Requires %s header.\n' % name.title())
        return default
    return _convert(kind, value, 'Header %s' % name.title())


def get_header_bool(env: Mapping[str, Any], name: str, default: Optional[bool] = None) -> bool:
    """Return request header ``name`` as a bool.

    The value, any case, must be one of :data:`brim.conf.TRUE_VALUES` or
    :data:`brim.conf.FALSE_VALUES`.

    Args:
        env: The WSGI environ.
        name: The header name, any case.
        default: Returned when the header is absent; if None, the header is
            required.

    Raises:
        HTTPBadRequest: if the header is missing and required, or not a
            boolean; the body names the header.
    """
    return cast(bool, _typed_header(env, name, default, 'boolean'))


get_header_boolean = get_header_bool  # the original brim's name


def get_header_int(env: Mapping[str, Any], name: str, default: Optional[int] = None) -> int:
    """Return request header ``name`` as an int (Python's ``int()`` syntax).

    Args:
        env: The WSGI environ.
        name: The header name, any case.
        default: Returned when the header is absent; if None, the header is
            required.

    Raises:
        HTTPBadRequest: if the header is missing and required, or not an int;
            the body names the header.
    """
    return cast(int, _typed_header(env, name, default, 'int'))


def get_header_float(env: Mapping[str, Any], name: str, default: Optional[float] = None) -> float:
    """Return request header ``name`` as a float (Python's ``float()`` syntax).

    Args:
        env: The WSGI environ.
        name: The header name, any case.
        default: Returned when the header is absent; if None, the header is
            required.

    Raises:
        HTTPBadRequest: if the header is missing and required, or not a float;
            the body names the header.
    """
    return cast(float, _typed_header(env, name, default, 'float'))


def quote(value: Union[str, bytes], safe: Union[str, bytes] = '/') -> str:
    """Percent-encode ``value`` for a URL path; ``str`` is encoded as UTF-8 first.

    Args:
        value: The text (``str``, encoded as UTF-8) or raw ``bytes``.
        safe: Characters not to encode (besides the unreserved ones).

    Returns:
        An ASCII ``str``.
    """
    return urllib.parse.quote(value, safe=safe)
