"""One loader for ``call =`` classes of all four kinds.

:func:`load_app` imports the class a section names, checks its constructor
and ``__call__`` against :data:`SHAPES` with ``inspect.signature(...).bind``,
runs its ``parse_conf`` and ``stats_conf``, and reports any failure as one
:class:`~brim.errors.AppLoadError` line naming the section. "Module not
found" is told apart from "the module failed while importing" (with the
real cause).

Invariant: this is the only place that imports user code by name.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from brim.conf import Conf
from brim.errors import AppLoadError, BrimError, ConfError
from brim.options import options_for, parse_section, unknown_options  # noqa: F401  (re-exported for apps)
from brim.stats import STAT_TYPES

WSGI, TCP, UDP, DAEMON = 'wsgi', 'tcp', 'udp', 'daemon'


@dataclass(frozen=True)
class Shape:
    """The expected constructor and per-unit call of one kind of app."""

    init: tuple[str, ...]
    call: tuple[str, ...]
    what: str


#: Constructor and ``__call__`` arguments by kind (SPEC §4).
SHAPES = {
    WSGI: Shape(('name', 'parsed_conf', 'next_app'), ('env', 'start_response'), 'WSGI app'),
    TCP: Shape(('name', 'parsed_conf'), ('subserver', 'stats', 'sock', 'ip', 'port'), 'TCP handler'),
    UDP: Shape(('name', 'parsed_conf'), ('subserver', 'stats', 'sock', 'datagram', 'ip', 'port'), 'UDP handler'),
    DAEMON: Shape(('name', 'parsed_conf'), ('subserver', 'stats'), 'daemon'),
}


@dataclass
class LoadedApp:
    """A checked app class with its parsed conf and declared stats."""

    section: str
    kind: str
    cls: type
    parsed_conf: Any
    stats: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def import_dotted(dotted: str, section: str, option: str = 'call') -> Any:
    """Import ``package.module.Name`` and return ``Name``.

    Raises:
        AppLoadError: ``[section] call = 'x.y.Z': module x.y not found``, or
            ``... importing x.y failed: ImportError: ...`` when the module
            exists but something it runs fails, or ``... x.y has no Z``.
    """
    module_name, _, attr = dotted.rpartition('.')
    where = '[%s] %s = %r' % (section, option, dotted)
    if not module_name:
        raise AppLoadError('%s: not a dotted name such as package.module.Class' % where)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or ''
        if module_name == missing or module_name.startswith(missing + '.'):
            raise AppLoadError('%s: module %s not found (is it on PYTHONPATH?)' % (where, missing)) from None
        raise AppLoadError('%s: importing %s failed: %s' % (where, module_name, _one_line(err))) from err
    except BaseException as err:
        raise AppLoadError('%s: importing %s failed: %s' % (where, module_name, _one_line(err))) from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise AppLoadError('%s: module %s has no %s' % (where, module_name, attr)) from None


def _one_line(err: BaseException) -> str:
    text = ' '.join(str(err).split())
    return '%s: %s' % (type(err).__name__, text) if text else type(err).__name__


def _signature_text(names: tuple[str, ...]) -> str:
    return '(%s)' % ', '.join(names)


def check_shape(cls: Any, kind: str, section: str) -> None:
    """Check ``cls`` can be constructed and called as ``kind`` requires.

    Raises:
        AppLoadError: naming the section, what was expected and what was found.
    """
    shape = SHAPES[kind]
    where = '[%s] call' % section
    if not inspect.isclass(cls):
        raise AppLoadError('%s: %r is not a class' % (where, cls))
    try:
        init_sig = inspect.signature(cls)
        init_sig.bind(*shape.init)
    except (TypeError, ValueError) as err:
        raise AppLoadError('%s: %s.%s cannot be constructed as a %s %s: its signature is %s (%s)' % (
            where, cls.__module__, cls.__qualname__, shape.what, _signature_text(shape.init),
            _safe_signature(cls), err)) from None
    if not any('__call__' in vars(klass) for klass in cls.__mro__[:-1]):
        raise AppLoadError('%s: %s.%s has no __call__%s method' % (
            where, cls.__module__, cls.__qualname__, _signature_text(('self',) + shape.call)))
    try:
        call_sig = inspect.signature(cls.__call__)
        call_sig.bind(None, *shape.call)
    except (TypeError, ValueError) as err:
        raise AppLoadError('%s: %s.%s.__call__ cannot be called as a %s %s: its signature is %s (%s)' % (
            where, cls.__module__, cls.__qualname__, shape.what, _signature_text(('self',) + shape.call),
            _safe_signature(cls.__call__), err)) from None


def _safe_signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return '(unknown)'


def load_app(kind: str, section: str, conf: Conf, dotted: str) -> LoadedApp:
    """Import, check and configure the app of ``[section]``.

    Args:
        kind: ``'wsgi'``, ``'tcp'``, ``'udp'`` or ``'daemon'``.
        section: The conf section holding ``call =`` and the app's options;
            it is also the app's ``name``.
        conf: The whole conf; ``conf.error`` is set to raise
            :class:`~brim.errors.ConfError`.
        dotted: The ``call =`` value.

    Returns:
        The :class:`LoadedApp`; ``warnings`` lists options of ``[section]``
        the class does not declare (when it declares ``OPTIONS``).

    Raises:
        AppLoadError, ConfError: one line naming the section.
    """
    cls = import_dotted(dotted, section)
    check_shape(cls, kind, section)
    _raise_conf_errors(conf)
    parse_conf = getattr(cls, 'parse_conf', None)
    try:
        parsed = parse_conf(section, conf) if parse_conf else dict(conf.store.get(section, {}))
    except BrimError:
        raise
    except Exception as err:
        raise AppLoadError('[%s] %s.parse_conf failed: %s' % (section, cls.__qualname__, _one_line(err))) from err
    stats: list[tuple[str, str]] = []
    stats_conf = getattr(cls, 'stats_conf', None)
    if stats_conf:
        try:
            stats = [(str(name), str(stat_type)) for name, stat_type in stats_conf(section, parsed)]
        except Exception as err:
            raise AppLoadError('[%s] %s.stats_conf failed: %s' % (section, cls.__qualname__, _one_line(err))) from err
        for name, stat_type in stats:
            if stat_type not in STAT_TYPES:
                raise AppLoadError('[%s] %s.stats_conf: stat %r has type %r, not one of %s' % (
                    section, cls.__qualname__, name, stat_type, ' '.join(STAT_TYPES)))
    warnings: list[str] = []
    declared = getattr(cls, 'OPTIONS', None)
    if declared is not None:
        known = ['call'] + [o.name for o in declared]
        if kind in (TCP, UDP):
            # A TCP/UDP handler's section is its subserver's: brimd's own
            # options are valid there too (resolve() leaves these to us).
            known += [o.name for o in options_for(kind)]
        warnings = unknown_options(conf, section, known)
    return LoadedApp(section, kind, cls, parsed, stats, warnings)


def _raise_conf_errors(conf: Conf) -> None:
    def error(section: Any, option: str, value: Any, conversion_type: str, err: Any) -> Any:
        from brim.conf import section_label
        raise ConfError(section_label(section), option, value, 'cannot be converted to %s' % conversion_type)
    conf.error = error  # type: ignore[method-assign]
