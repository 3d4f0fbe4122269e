"""Mounts an existing WSGI application (Flask, Django, any framework) at a URL prefix.

Configuration::

    [wsgi]
    apps = blog echo

    [blog]
    call = brim.wsgi_app.WSGIApp
    app = myblog:app
    #   The WSGI application, package.module:attribute (required).
    # path = /
    #   The URL prefix it is mounted at; other paths go to the next app.

``app`` names the application object the way gunicorn and uWSGI do:

- ``package.module:attribute`` imports ``package.module`` and takes its
  ``attribute`` (``mysite.wsgi:application`` for Django, ``myblog:app``
  for Flask); the attribute may be dotted, ``myblog:app.wsgi_app``.
- ``package.module:factory()``, a trailing ``()``, calls ``factory`` with
  no arguments and mounts what it returns (Flask's ``create_app()``).
  Nothing else is evaluated: no arguments, no expressions.

The module is imported, and a factory called, in the app's
:meth:`WSGIApp.parse_conf`. That runs in every process that loads the
conf's apps, never in the main process: ``brimd check`` and the start-up
probe (so a module that is missing or fails to import, a missing
attribute, a factory that raises, and an object that cannot be called as
``(environ, start_response)`` are each one line naming the section,
option and value, exit status 1), then each worker, which therefore gets
an application object of its own, made after the fork.

``path`` matches on segment boundaries: ``path = /blog`` mounts
``/blog`` and everything under ``/blog/``, but not ``/blogger``, which
goes on down the pipeline, as does every request not under ``path``.
``path = /`` (the default) sends every request to the application, and
the apps after it are never reached.

For a matched request the application gets a copy of the environ, split
as PEP 3333 says (the URL is ``SCRIPT_NAME + PATH_INFO``):

==================== =============== ================
request path         ``SCRIPT_NAME`` ``PATH_INFO``
==================== =============== ================
``/blog``            ``/blog``       ``''``
``/blog/``           ``/blog``       ``/``
``/blog/posts/1``    ``/blog``       ``/posts/1``
==================== =============== ================

so the framework routes on ``PATH_INFO`` and builds links with the
prefix (Flask's ``url_for``, Django's ``reverse`` and
``request.get_full_path``). ``SCRIPT_NAME`` set by an app earlier in the
pipeline is kept in front. brim's ``RAW_PATH_INFO`` (the path as
received) is left whole, and brim's own log lines name the full path, since
the application's changes to its copy are not seen by brimd.

The application's response iterable is passed on as it is, and its
``close()`` is called. A generator (Flask streaming, Django's
``StreamingHttpResponse``) is sent as it yields: parts are joined up to
``wsgi_output_iter_chunk_size`` (4096 bytes) before each write, and a
response without ``Content-Length`` goes out with
``Transfer-Encoding: chunked`` on HTTP/1.1 keep-alive connections (with
``Content-Length`` if it all fits in the first write).

An exception the application raises is logged by brimd with its
traceback and answered with 500, as for every brim app. Frameworks catch
their views' exceptions themselves, though: Flask answers 500 and logs
the traceback to ``wsgi.errors`` (brimd's log when daemonized, each line
as ``STDERR: ...``; the terminal in the foreground), unless
``PROPAGATE_EXCEPTIONS`` is true; Django answers 500 and logs through its
``django.request`` logger, which its default logging sends nowhere when
``DEBUG`` is off, unless ``DEBUG_PROPAGATE_EXCEPTIONS`` is true (or
``LOGGING`` routes it to a handler). Let the exceptions propagate to have
brimd log them.

The worker runs the application in green threads with nothing
monkey-patched: views must not block the process (``time.sleep``,
blocking database drivers), or the watchdog replaces the worker after
``worker_timeout``.

Stats (``n`` is the app's section name):

============== ====== ==============================================
Name           Type   Description
============== ====== ==============================================
n.requests     sum    Requests passed to the application.
start_time     worker When the worker started (set by brimd).
============== ====== ==============================================
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from typing import Any, NamedTuple

from brim.conf import Conf
from brim.errors import AppLoadError, ConfError
from brim.http import StartResponse, WSGIApp as WSGIAppType
from brim.options import app_option, parse_section


class AppRef(NamedTuple):
    """A parsed ``app`` value: ``module:attrs`` with ``call`` for a trailing ``()``."""

    module: str
    attrs: tuple[str, ...]
    call: bool


def _dotted_ok(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split('.'))


def parse_app_ref(value: str) -> AppRef:
    """Parse ``package.module:attribute`` or ``package.module:factory()``.

    Raises:
        ValueError: saying what was expected.
    """
    text = value.strip()
    module, colon, attrs = text.partition(':')
    call = attrs.endswith('()')
    if call:
        attrs = attrs[:-2]
    if not colon or not _dotted_ok(module) or not _dotted_ok(attrs):
        raise ValueError('not package.module:attribute (a WSGI application) or '
                         'package.module:factory() (called to make one)')
    return AppRef(module, tuple(attrs.split('.')), call)


def to_app_ref(value: str) -> str:
    """A ``package.module:attribute`` or ``package.module:factory()``, checked
    by :func:`parse_app_ref` (imported later, by :meth:`WSGIApp.parse_conf`)."""
    value = value.strip()
    parse_app_ref(value)
    return value


def to_mount_path(value: str) -> str:
    """A URL prefix: ``/`` or ``/a/b`` (a trailing ``/`` is dropped).

    Raises:
        ValueError: if it does not start with ``/`` or holds ``?`` or ``#``.
    """
    value = value.strip()
    if not value.startswith('/') or '?' in value or '#' in value:
        raise ValueError('not a URL path starting with / (such as /blog)')
    return value.rstrip('/') or '/'


def _one_line(err: BaseException) -> str:
    text = ' '.join(str(err).split())
    return '%s: %s' % (type(err).__name__, text) if text else type(err).__name__


def load_wsgi_app(value: str, section: str, option: str = 'app') -> WSGIAppType:
    """Import (and, for ``factory()``, make) the WSGI application ``value`` names.

    Args:
        value: ``package.module:attribute`` or ``package.module:factory()``.
        section: The conf section, for error messages.
        option: The option, for error messages.

    Returns:
        The application: a callable that accepts ``(environ, start_response)``.

    Raises:
        ConfError: ``value`` is not of either form.
        AppLoadError: one line, ``[section] app = 'value': ...``, when the
            module is not found or fails to import, an attribute is missing,
            the factory raises, or the result cannot be called as a WSGI
            application.
    """
    try:
        ref = parse_app_ref(value)
    except ValueError as err:
        raise ConfError(section, option, value, str(err)) from None
    where = '[%s] %s = %r' % (section, option, value)
    try:
        obj: Any = importlib.import_module(ref.module)
    except ModuleNotFoundError as err:
        missing = err.name or ''
        if ref.module == missing or ref.module.startswith(missing + '.'):
            raise AppLoadError('%s: module %s not found (is it on PYTHONPATH?)' % (where, missing)) from None
        raise AppLoadError('%s: importing %s failed: %s' % (where, ref.module, _one_line(err))) from err
    except BaseException as err:
        raise AppLoadError('%s: importing %s failed: %s' % (where, ref.module, _one_line(err))) from err
    owner = 'module %s' % ref.module
    for index, attr in enumerate(ref.attrs):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise AppLoadError('%s: %s has no attribute %s' % (where, owner, attr)) from None
        except Exception as err:
            raise AppLoadError('%s: getting %s.%s failed: %s' % (where, owner, attr, _one_line(err))) from err
        owner = '%s:%s' % (ref.module, '.'.join(ref.attrs[:index + 1]))
    if ref.call:
        if not callable(obj):
            raise AppLoadError('%s: %s cannot be called as a factory (type %s)' % (
                where, owner, type(obj).__name__))
        try:
            obj = obj()
        except (Exception, SystemExit) as err:
            raise AppLoadError('%s: calling %s() failed: %s' % (where, owner, _one_line(err))) from err
        owner = 'what %s() returned' % owner
    _check_wsgi_callable(obj, owner, where, ref.call)
    return obj


def _check_wsgi_callable(obj: Any, owner: str, where: str, called: bool) -> None:
    if not callable(obj):
        raise AppLoadError('%s: %s is not a WSGI application: it cannot be called (type %s)' % (
            where, owner, type(obj).__name__))
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return  # a builtin or an extension type: nothing to check
    try:
        signature.bind(None, None)
    except TypeError:
        hint = ''
        if not called and _callable_without_args(signature):
            hint = ' (a factory? end the value with () to call it)'
        raise AppLoadError('%s: %s cannot be called as a WSGI application (environ, start_response): '
                           'its signature is %s%s' % (where, owner, signature, hint)) from None


def _callable_without_args(signature: inspect.Signature) -> bool:
    try:
        signature.bind()
    except TypeError:
        return False
    return True


class WSGIApp:
    """Passes requests under ``path`` to the WSGI application ``app``.

    See :mod:`brim.wsgi_app` for the options, the ``SCRIPT_NAME`` and
    ``PATH_INFO`` split and how errors are handled.

    Args:
        name: The app's section name (also its stats prefix).
        parsed_conf: What :meth:`parse_conf` returned.
        next_app: The next WSGI app in the pipeline: it gets every request
            not under ``path``.
    """

    #: This app's options, declared once; parse_conf, brimd check and
    #: brimd.conf-sample all use them.
    #:
    #: :meta hide-value:
    OPTIONS = (
        app_option('app', to_app_ref, '', 'The WSGI application (required): package.module:attribute '
                   '(the attribute may be dotted, app.wsgi_app), or package.module:factory() to call '
                   'factory with no arguments and mount what it returns. Imported (and the factory '
                   'called) by brimd check and in each worker.'),
        app_option('path', to_mount_path, '/', 'The URL prefix the application is mounted at (its '
                   'SCRIPT_NAME); requests for other paths go to the next app. / sends it every request.'),
    )

    def __init__(self, name: str, parsed_conf: dict[str, Any], next_app: WSGIAppType) -> None:
        #: The app's section name.
        self.name = name
        #: The next WSGI app in the pipeline.
        self.next_app = next_app
        #: The mounted WSGI application.
        self.app: WSGIAppType = parsed_conf['app']
        #: The URL prefix, as configured (``/`` for the root).
        self.path: str = parsed_conf['path']
        # Matched against PATH_INFO, which is the request's decoded bytes as
        # latin-1 (PEP 3333); '' for the root.
        self._prefix = '' if self.path == '/' else self.path.encode('utf-8').decode('latin-1')
        self._under = self._prefix + '/'
        self._stat = '%s.requests' % name

    @classmethod
    def parse_conf(cls, name: str, conf: Conf) -> dict[str, Any]:
        """Import the application (see :func:`load_wsgi_app`) and return the settings.

        Returns:
            ``{'app': the application, 'app_ref': str, 'path': str}``.

        Raises:
            ConfError: ``app`` is missing or malformed, or ``path`` is not a
                URL path.
            AppLoadError: the application cannot be imported, made or called.
        """
        parsed = parse_section(name, conf, cls.OPTIONS)
        if not parsed['app']:
            raise ConfError(name, 'app', None,
                            'is required: name the WSGI application, app = package.module:attribute')
        return {'app': load_wsgi_app(parsed['app'], name), 'app_ref': parsed['app'], 'path': parsed['path']}

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict[str, Any]) -> list[tuple[str, str]]:
        """Return the stats this app keeps: ``[('<name>.requests', 'sum')]``."""
        return [('%s.requests' % name, 'sum')]

    def __call__(self, env: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Call the application for a path under ``path`` (with ``SCRIPT_NAME``
        and ``PATH_INFO`` split, on a copy of ``env``); else call ``next_app``."""
        path_info = env.get('PATH_INFO') or ''
        prefix = self._prefix
        if prefix and path_info != prefix and not path_info.startswith(self._under):
            return self.next_app(env, start_response)
        stats = env.get('brim.stats')
        if stats is not None:
            stats.incr(self._stat)
        env = dict(env)
        if prefix:
            env['SCRIPT_NAME'] = (env.get('SCRIPT_NAME') or '') + prefix
            env['PATH_INFO'] = path_info[len(prefix):]
        return self.app(env, start_response)
