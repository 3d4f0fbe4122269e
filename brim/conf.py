"""Read INI conf files into a :class:`Conf` with typed ``get`` methods.

Simple use::

    from brim.conf import read_conf
    conf = read_conf(['/etc/myco/myapp.conf', '~/.myapp.conf'])
    if not conf.files:
        raise SystemExit('No configuration found.')
    port = conf.get_int('server', 'port', 1234)

A value that cannot be converted calls :meth:`Conf.error`, which by default
exits with one line naming the section, option and value; replace it (per
instance) to raise instead::

    def error(section, option, value, conversion_type, err):
        raise ValueError('[%s] %s: %r is not %s' % (section, option, value, conversion_type))
    conf.error = error

If a file read has ``[brim] additional_confs = a "b c.conf" ~/d.conf`` (shell
quoting, ``~`` expanded), those files are read too, after it, so their values
win.

Environment variables: every value, in every section, may name them, and
they are expanded when the conf is read (:func:`expand_env`), so every
``get_*`` method sees the expanded value (12-factor style)::

    [wsgi]
    port = ${PORT:-8080}
    log_level = ${LOG_LEVEL:-INFO}

``${NAME}`` is the variable's value (``NAME``: a letter or ``_``, then
letters, digits or ``_``); ``${NAME:-default}`` is ``default`` (literal text,
up to the first ``}``) when ``NAME`` is unset or empty, as in POSIX sh;
``$$`` is a literal ``$``. Any other ``$`` is kept as it is, so a value such
as a bcrypt hash (``$2b$12$...``) needs no escaping. A variable that is not
set and has no default, or a ``${`` that is not one of those forms, is a conf
error naming the section, option, value and variable. ``additional_confs`` is
expanded too, before its shell-style split (quote it if a variable may hold
spaces).

Invariants: values are stored as the ``str`` found in the file with the
environment variables expanded and nothing else (no interpolation: ``%`` is
literal); a ``get_*`` method never raises for a missing section or option, it
returns the default.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, TypeVar, Union

from brim.errors import ConfError

#: Lower-case strings that :meth:`Conf.get_bool` reads as True.
TRUE_VALUES = ['1', 'on', 't', 'true', 'y', 'yes']
#: Lower-case strings that :meth:`Conf.get_bool` reads as False.
FALSE_VALUES = ['0', 'f', 'false', 'n', 'no', 'off']

Sections = Union[str, Iterable[str]]
T = TypeVar('T')


def _one_line(text: str) -> str:
    return ' '.join(str(text).split())


_ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')


def expand_env(value: str, environ: Optional[Mapping[str, str]] = None) -> str:
    """Return ``value`` with its environment variables expanded.

    ``${NAME}`` becomes the value of ``NAME``; ``${NAME:-default}`` becomes
    ``default`` (literal, no further expansion) when ``NAME`` is unset or
    empty; ``$$`` becomes ``$``; any other ``$`` is kept as it is.

    Args:
        value: The text to expand.
        environ: The variables to use; :data:`os.environ` when not given.

    Returns:
        The expanded text (``value`` itself when it has no ``$``).

    Raises:
        ValueError: with a one-line reason naming the variable, for a
            variable that is not set and has no default, or a ``${`` with no
            closing ``}`` or no valid name.
    """
    if '$' not in value:
        return value
    env = os.environ if environ is None else environ
    out = []
    pos = 0
    while True:
        dollar = value.find('$', pos)
        if dollar < 0:
            out.append(value[pos:])
            return ''.join(out)
        out.append(value[pos:dollar])
        following = value[dollar + 1:dollar + 2]
        if following == '$':
            out.append('$')
            pos = dollar + 2
        elif following == '{':
            end = value.find('}', dollar + 2)
            if end < 0:
                raise ValueError("'${' without a closing '}' (write $$ for a literal $)")
            body = value[dollar + 2:end]
            name, has_default, default = body.partition(':-')
            if not _ENV_NAME.match(name):
                raise ValueError('%r is not ${NAME} or ${NAME:-default} (NAME: a letter or _, then letters, '
                                 'digits or _; write $$ for a literal $)' % ('${%s}' % body))
            found = env.get(name)
            if found:
                out.append(found)
            elif has_default:
                out.append(default)
            elif found is None:
                raise ValueError('environment variable %s is not set (give a default: ${%s:-value})' % (name, name))
            pos = end + 1
        else:
            out.append('$')
            pos = dollar + 1


def section_label(section: Sections) -> str:
    """Return ``section`` as shown in messages: ``'a'`` or ``'a|b'`` for several."""
    if isinstance(section, str):
        return section
    return '|'.join(section)


class Conf:
    """Wraps ``{section: {option: value}}`` with typed ``get`` methods.

    Args:
        store: The conf as a dict of section name to a dict of option name to
            ``str`` value. Kept, not copied, as :attr:`store`.
        files: The names of the files the conf was read from, kept as
            :attr:`files` (``[]`` when not given).
    """

    def __init__(self, store: dict[str, dict[str, str]], files: Optional[list[str]] = None) -> None:
        #: dict: section name -> {option name: str value}.
        self.store = store
        #: list[str]: the conf files read, in the order read.
        self.files = files if files is not None else []

    def __repr__(self) -> str:
        return 'Conf(%r, files=%r)' % (self.store, self.files)

    def error(self, section: Sections, option: str, value: Any, conversion_type: str, err: Optional[BaseException]) -> Any:
        """Handle a value that cannot be converted; by default exit.

        Called by the ``get_*`` methods. The default calls :func:`sys.exit`
        with ``Configuration value [section] option of 'value' cannot be
        converted to TYPE.`` (one line, exit status 1). Assign another
        callable with the same arguments to ``conf.error`` to raise instead;
        whatever it returns is returned by the ``get_*`` call.

        Args:
            section: The section name, or the iterable of them that was given.
            option: The option name.
            value: The value found (its environment variables expanded).
            conversion_type: ``'boolean'``, ``'int'``, ``'float'`` or ``'path'``.
            err: The exception the conversion raised, if any.

        Raises:
            SystemExit: by default.
        """
        sys.exit('Configuration value [%s] %s of %r cannot be converted to %s.' % (
            section_label(section), option, value, conversion_type))

    def get(self, section: Sections, option: str, default: Any = None) -> Any:
        """Return the ``str`` value of ``[section] option``, or ``default``.

        ``section`` may be an iterable of section names: the first that has
        the option wins (e.g. ``('wsgi', 'brim')`` for a subserver value
        with a ``[brim]`` fallback).
        """
        sections = (section,) if isinstance(section, str) else section
        for name in sections:
            values = self.store.get(name)
            if values is not None and option in values:
                return values[option]
        return default

    def _convert(self, section: Sections, option: str, default: Any, conversion_type: str, convert: Callable[[str], T]) -> Any:
        value = self.get(section, option)
        if value is None:
            return default
        try:
            return convert(value)
        except ValueError as err:
            return self.error(section, option, value, conversion_type, err)

    def get_bool(self, section: Sections, option: str, default: Any = None) -> Any:
        """Return ``[section] option`` as a bool (see TRUE_VALUES, FALSE_VALUES)."""
        def convert(value: str) -> bool:
            lowered = value.strip().lower()
            if lowered in TRUE_VALUES:
                return True
            if lowered in FALSE_VALUES:
                return False
            raise ValueError('%r is not a boolean' % value)
        return self._convert(section, option, default, 'boolean', convert)

    def get_int(self, section: Sections, option: str, default: Any = None) -> Any:
        """Return ``[section] option`` as an int."""
        return self._convert(section, option, default, 'int', int)

    def get_float(self, section: Sections, option: str, default: Any = None) -> Any:
        """Return ``[section] option`` as a float."""
        return self._convert(section, option, default, 'float', float)

    def get_path(self, section: Sections, option: str, default: Any = None) -> Any:
        """Return ``[section] option`` with ``~`` and ``~user`` expanded."""
        value = self.get(section, option, default)
        if value is None:
            return None
        if '\0' in value:
            # os.path.expanduser would raise ValueError on a NUL.
            return self.error(section, option, value, 'path', None)
        return os.path.expanduser(value)


def _parse_files(conf_files: Iterable[str]) -> tuple[configparser.ConfigParser, list[str]]:
    parser = configparser.ConfigParser(interpolation=None)
    files: list[str] = []
    pending = [os.path.expanduser(name) for name in conf_files]
    seen: set[str] = set()
    while pending:
        name = pending.pop(0)
        # Keyed by absolute path, so a cycle through a relative and an
        # absolute name of one file still reads it once.
        if os.path.abspath(name) in seen:
            continue
        seen.add(os.path.abspath(name))
        try:
            with open(name, encoding='utf-8') as fp:
                text = fp.read()
        except (OSError, UnicodeDecodeError, ValueError):  # ValueError: a NUL in the name
            # Unreadable files are skipped, as if absent (Conf.files says
            # which were read).
            continue
        parser.read_string(text, source=name)
        files.append(name)
        # This file's own additional_confs, not the merged value: a value set
        # by an earlier file must not be re-resolved relative to this one.
        own = configparser.ConfigParser(interpolation=None)
        own.read_string(text, source=name)
        raw_extra = own.get('brim', 'additional_confs', fallback='')
        try:
            extra = expand_env(raw_extra)
        except ValueError as err:
            raise ConfError('brim', 'additional_confs', raw_extra, str(err)) from None
        if extra:
            try:
                names = shlex.split(extra)
            except ValueError as err:  # unbalanced quotes
                raise configparser.Error('%s: [brim] additional_confs = %r: %s' % (name, extra, err)) from None
            included = []
            if any('\0' in more for more in names):
                raise configparser.Error('%s: [brim] additional_confs = %r: a NUL byte in a file name' % (name, extra))
            for more in names:
                more = os.path.expanduser(more)
                if not os.path.isabs(more):
                    more = os.path.join(os.path.dirname(os.path.abspath(name)), more)
                included.append(more)
            # Read right after the file naming them, before the next file
            # given, so a later conf file still wins over an included one.
            pending[0:0] = included
    return parser, files


def _expand_store(parser: configparser.ConfigParser) -> dict[str, dict[str, str]]:
    store: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        values = store[section] = {}
        for option, raw in parser.items(section):
            try:
                values[option] = expand_env(raw)
            except ValueError as err:
                raise ConfError(section, option, raw, str(err)) from None
    return store


def read_conf(conf_files: Union[str, Iterable[str]], exit_on_read_exception: bool = True) -> Conf:
    """Read INI files into a new :class:`Conf`.

    Files that don't exist or can't be read are skipped; ``Conf.files``
    lists those read. ``[brim] additional_confs`` names further files, read
    right after the file naming them (relative names are relative to it);
    each file is read once. Once every file is read, the environment
    variables in every value are expanded (:func:`expand_env`); a file's
    ``additional_confs`` is expanded as it is read, before it is split.

    Args:
        conf_files: A file name or an iterable of them, read in order; later
            values win.
        exit_on_read_exception: On a syntax error or a value that cannot be
            expanded, exit with one line naming the file, or the section,
            option and value (default); raise it when False.

    Returns:
        A new :class:`Conf`.

    Raises:
        configparser.Error: on a syntax error, when exit_on_read_exception is False.
        brim.errors.ConfError: on an environment variable that is not set and
            has no default, or a malformed ``${``, naming the section, option
            and value as found in the file, when exit_on_read_exception is
            False.
        SystemExit: on either, by default.
    """
    if isinstance(conf_files, str):
        conf_files = [conf_files]
    try:
        parser, files = _parse_files(conf_files)
        store = _expand_store(parser)
    except (configparser.Error, ConfError) as err:
        if not exit_on_read_exception:
            raise
        sys.exit('Could not read conf: %s' % _one_line(str(err)))
    return Conf(store, files)
