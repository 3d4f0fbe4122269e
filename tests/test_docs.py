"""The API reference builds without a warning and documents every public name (issue 8).

One Sphinx build (``-W``: a warning fails it) serves every test that reads the
HTML; it takes several seconds. A second test checks, without Sphinx, that
every public module, class, function and method of brim has a docstring.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import brim

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / 'docs'

# SPEC §7: each module and the public names it must document.
SPEC_NAMES = {
    'brim.conf': ['Conf', 'read_conf'],
    'brim.service': ['droppriv', 'capture_exceptions_stdout_stderr', 'get_listening_tcp_socket',
                     'get_listening_udp_socket', 'signum2str', 'sustain_workers'],
    'brim.log': ['get_logger', 'NOTICE', 'sysloggable_excinfo'],
    'brim.http': ['QueryParser', 'get_header_int', 'get_header_bool', 'quote', 'HTTPException', 'HTTPOk',
                  'HTTPNotFound', 'HTTPBadRequest', 'HTTPRequestEntityTooLarge', 'HTTPServerError'],
    'brim.httpform': ['iter_form', 'parse_attrs', 'CappedFileLikeObject'],
    'brim.util': ['lock_path', 'LockPathTimeout', 'make_dirs', 'unlink'],
    'brim.wsgi_echo': ['WSGIEcho'],
    'brim.wsgi_stats': ['WSGIStats'],
    'brim.wsgi_fs': ['WSGIFS'],
    'brim.wsgi_basic_auth': ['WSGIBasicAuth'],
    'brim.tcp_echo': ['TCPEcho'],
    'brim.udp_echo': ['UDPEcho'],
    'brim.daemon_sample': ['DaemonSample'],
}


def public_modules() -> list[str]:
    """Every importable brim module whose dotted name has no ``_`` part."""
    names = ['brim']
    for info in pkgutil.walk_packages(brim.__path__, 'brim.'):
        if not any(part.startswith('_') for part in info.name.split('.')):
            names.append(info.name)
    return sorted(names)


@pytest.fixture(scope='module')
def html(tmp_path_factory) -> Path:
    pytest.importorskip('sphinx', reason='sphinx is not installed (pip install -e .[test] installs it)')
    pytest.importorskip('myst_parser', reason='myst-parser is not installed (pip install -e .[test] installs it)')
    out = tmp_path_factory.mktemp('html')
    result = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-E', '-b', 'html', '-q', str(DOCS), str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, 'sphinx failed:\n' + result.stdout + result.stderr
    return out


def test_build_has_a_page_per_public_module(html):
    for name in public_modules():
        if name == 'brim':
            continue
        page = html / 'api' / (name + '.html')
        assert page.exists(), '%s has no page in the API reference (add docs/api/%s.rst)' % (name, name)


def test_every_spec_name_is_documented(html):
    for module, names in SPEC_NAMES.items():
        text = (html / 'api' / (module + '.html')).read_text(encoding='utf-8')
        for name in names:
            # Each documented object gets an anchor with its full dotted name.
            assert 'id="%s.%s"' % (module, name) in text, '%s.%s is not in the API reference' % (module, name)


def test_spec_names_have_their_shapes_documented(html):
    # A sample of the promised detail: argument shapes, units and errors,
    # rendered from the Google-style sections (napoleon).
    util = (html / 'api' / 'brim.util.html').read_text(encoding='utf-8')
    assert 'Seconds to keep trying' in util and 'LockPathTimeout' in util
    service = (html / 'api' / 'brim.service.html').read_text(encoding='utf-8')
    for text in ('Parameters', 'Returns', 'Raises', 'StartupError', 'Seconds to keep retrying'):
        assert text in service, text
    httpform = (html / 'api' / 'brim.httpform.html').read_text(encoding='utf-8')
    for text in ('Yields', 'FormTooLarge', 'Cap in bytes'):
        assert text in httpform, text


def test_no_examples_in_the_reference(html):
    assert not list(html.rglob('examples*.html'))


def _missing_docstrings(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    missing = []
    if not (module.__doc__ or '').strip():
        missing.append(module_name)
    for name, obj in vars(module).items():
        if name.startswith('_') or getattr(obj, '__module__', None) != module_name:
            continue  # private, or imported from elsewhere
        if not (inspect.isclass(obj) or inspect.isfunction(obj)) or obj.__name__ != name:
            continue  # not a class or function, or an alias (checked under its own name)
        if not (obj.__doc__ or '').strip():
            missing.append('%s.%s' % (module_name, name))
        if not inspect.isclass(obj):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith('_'):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            elif isinstance(value, property):
                value = value.fget
            elif not inspect.isfunction(value):
                continue
            # An override without its own docstring inherits the base method's
            # (inspect.getdoc and autodoc both show it).
            if not (value.__doc__ or '').strip() and not _inherited_doc(obj, attr):
                missing.append('%s.%s.%s' % (module_name, name, attr))
    return missing


def _inherited_doc(cls: type, attr: str) -> bool:
    for base in cls.__mro__[1:]:
        if attr in vars(base):
            value = vars(base)[attr]
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            elif isinstance(value, property):
                value = value.fget
            if (getattr(value, '__doc__', None) or '').strip():
                return True
    return False


def test_every_public_name_has_a_docstring():
    missing = []
    for name in public_modules():
        missing.extend(_missing_docstrings(name))
    assert not missing, 'no docstring:\n' + '\n'.join(missing)


def test_every_public_module_is_in_the_reference():
    # Without Sphinx: each module has an automodule directive in docs/.
    directives = set()
    for path in DOCS.rglob('*.rst'):
        directives.update(re.findall(r'^\.\. automodule:: (\S+)', path.read_text(encoding='utf-8'), re.M))
    missing = [name for name in public_modules() if name != 'brim' and name not in directives]
    assert not missing, 'not in the API reference: %s' % ', '.join(missing)
