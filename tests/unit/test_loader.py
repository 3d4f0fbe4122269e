"""Tests for brim.loader: importing call = classes, shapes, parse/stats conf."""

import sys
import textwrap

import pytest

from brim.conf import Conf
from brim.errors import AppLoadError, ConfError
from brim.loader import DAEMON, SHAPES, TCP, UDP, WSGI, check_shape, import_dotted, load_app


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Write modules under tmp_path (on sys.path); forget them afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)

    def write(name, source):
        path = tmp_path.joinpath(*name.split('.'))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix('.py').write_text(textwrap.dedent(source), encoding='utf-8')

    yield write
    for name in set(sys.modules) - before:
        if name.startswith('ld_'):  # every test module here is named ld_*
            del sys.modules[name]


def assert_one_line(err, section):
    text = str(err)
    assert '\n' not in text
    assert text.startswith('[%s] ' % section)
    return text


# ---- import_dotted ------------------------------------------------------------

def test_import_dotted_finds_class(modules):
    modules('ld_good', 'class App:\n    pass\n')
    cls = import_dotted('ld_good.App', 'sec')
    assert cls.__name__ == 'App' and cls.__module__ == 'ld_good'


def test_import_dotted_in_package(modules):
    modules('ld_pkg.__init__', '')
    modules('ld_pkg.sub', 'class App:\n    pass\n')
    assert import_dotted('ld_pkg.sub.App', 'sec').__module__ == 'ld_pkg.sub'


@pytest.mark.parametrize('dotted, message', [
    ('ld_nosuch.App', "[sec] call = 'ld_nosuch.App': module ld_nosuch not found (is it on PYTHONPATH?)"),
    ('ld_nosuch.sub.App', "[sec] call = 'ld_nosuch.sub.App': module ld_nosuch not found (is it on PYTHONPATH?)"),
    ('ld_pkg2.nosuch.App', "[sec] call = 'ld_pkg2.nosuch.App': module ld_pkg2.nosuch not found (is it on PYTHONPATH?)"),
    ('App', "[sec] call = 'App': not a dotted name such as package.module.Class"),
])
def test_import_dotted_module_not_found(modules, dotted, message):
    modules('ld_pkg2.__init__', '')
    with pytest.raises(AppLoadError) as caught:
        import_dotted(dotted, 'sec')
    assert assert_one_line(caught.value, 'sec') == message


@pytest.mark.parametrize('source, cause', [
    ('import ld_not_installed_xyz\n', "ModuleNotFoundError: No module named 'ld_not_installed_xyz'"),
    ('from ld_broken_pkg import missing_sub\n', "ModuleNotFoundError: No module named 'ld_broken_pkg'"),
    ('raise RuntimeError("boom\\n  on two lines")\n', 'RuntimeError: boom on two lines'),
    ('1 / 0\n', 'ZeroDivisionError: division by zero'),
    ('import sys\nsys.exit(3)\n', 'SystemExit: 3'),
    ('from os import no_such_name\n', "ImportError: cannot import name 'no_such_name' from 'os'"),
    ('def broken(:\n', 'SyntaxError: '),
])
def test_import_dotted_module_fails_while_importing(modules, source, cause):
    modules('ld_fails', source)
    with pytest.raises(AppLoadError) as caught:
        import_dotted('ld_fails.App', 'sec#x')
    text = assert_one_line(caught.value, 'sec#x')
    assert text.startswith("[sec#x] call = 'ld_fails.App': importing ld_fails failed: " + cause)
    assert 'not found' not in text.split(': importing')[0]
    assert caught.value.__cause__ is not None  # the real cause kept for -x


def test_import_dotted_package_init_imports_missing_submodule(modules):
    # The package exists; what it imports does not: "failed", not "not found".
    modules('ld_pkg3.__init__', 'from ld_pkg3 import missing_sub\n')
    with pytest.raises(AppLoadError) as caught:
        import_dotted('ld_pkg3.App', 'sec')
    assert 'importing ld_pkg3 failed: ImportError' in str(caught.value)


def test_import_dotted_submodule_imports_missing_sibling(modules):
    modules('ld_pkg4.__init__', '')
    modules('ld_pkg4.app', 'import ld_pkg4.missing\n')
    with pytest.raises(AppLoadError) as caught:
        import_dotted('ld_pkg4.app.App', 'sec')
    assert str(caught.value) == (
        "[sec] call = 'ld_pkg4.app.App': importing ld_pkg4.app failed: "
        "ModuleNotFoundError: No module named 'ld_pkg4.missing'")


def test_import_dotted_missing_attribute(modules):
    modules('ld_noattr', 'class Other:\n    pass\n')
    with pytest.raises(AppLoadError) as caught:
        import_dotted('ld_noattr.App', 'wsgi', option='apps')
    assert assert_one_line(caught.value, 'wsgi') == "[wsgi] apps = 'ld_noattr.App': module ld_noattr has no App"


# ---- check_shape ----------------------------------------------------------------

GOOD = {
    WSGI: '''
        class C:
            def __init__(self, name, parsed_conf, next_app):
                pass
            def __call__(self, env, start_response):
                pass
        ''',
    TCP: '''
        class C:
            def __init__(self, name, parsed_conf):
                pass
            def __call__(self, subserver, stats, sock, ip, port):
                pass
        ''',
    UDP: '''
        class C:
            def __init__(self, name, parsed_conf):
                pass
            def __call__(self, subserver, stats, sock, datagram, ip, port):
                pass
        ''',
    DAEMON: '''
        class C:
            def __init__(self, name, parsed_conf):
                pass
            def __call__(self, subserver, stats):
                pass
        ''',
}

FLEXIBLE = '''
    class Base:
        def __call__(self, *args, **kwargs):
            pass
    class C(Base):
        def __init__(self, *args, extra=None):
            pass
    '''

DEFAULTS = '''
    class C:
        def __init__(self, name, parsed_conf, next_app=None, more=1):
            pass
        def __call__(self, a=None, b=None, c=None, d=None, e=None, f=None):
            pass
    '''


def _load_class(source):
    namespace = {}
    exec(textwrap.dedent(source), namespace)
    return namespace['C']


@pytest.mark.parametrize('kind', sorted(SHAPES))
@pytest.mark.parametrize('source', [pytest.param(None, id='exact'), pytest.param(FLEXIBLE, id='varargs'),
                                    pytest.param(DEFAULTS, id='defaults')])
def test_check_shape_good(kind, source):
    check_shape(_load_class(source or GOOD[kind]), kind, 'sec')


@pytest.mark.parametrize('kind', sorted(SHAPES))
def test_check_shape_real_sample_apps(kind):
    dotted = {
        WSGI: 'brim.wsgi_echo.WSGIEcho', TCP: 'brim.tcp_echo.TCPEcho',
        UDP: 'brim.udp_echo.UDPEcho', DAEMON: 'brim.daemon_sample.DaemonSample',
    }[kind]
    check_shape(import_dotted(dotted, 'sec'), kind, 'sec')
    for other in set(SHAPES) - {kind}:
        if SHAPES[other].call != SHAPES[kind].call:
            with pytest.raises(AppLoadError):
                check_shape(import_dotted(dotted, 'sec'), other, 'sec')


@pytest.mark.parametrize('kind', sorted(SHAPES))
def test_check_shape_wrong_constructor(kind):
    cls = _load_class('''
        class C:
            def __init__(self, name):
                pass
            def __call__(self, *args):
                pass
        ''')
    with pytest.raises(AppLoadError) as caught:
        check_shape(cls, kind, 'app#1')
    text = assert_one_line(caught.value, 'app#1')
    shape = SHAPES[kind]
    assert text.startswith('[app#1] call: ')
    assert 'cannot be constructed as a %s (%s)' % (shape.what, ', '.join(shape.init)) in text
    assert 'its signature is (name)' in text
    assert 'too many positional arguments' in text


@pytest.mark.parametrize('kind', sorted(SHAPES))
def test_check_shape_constructor_needs_more(kind):
    cls = _load_class('''
        class C:
            def __init__(self, name, parsed_conf, next_app, required):
                pass
            def __call__(self, *args):
                pass
        ''')
    with pytest.raises(AppLoadError) as caught:
        check_shape(cls, kind, 'sec')
    text = assert_one_line(caught.value, 'sec')
    assert 'cannot be constructed' in text
    assert "missing a required argument: 'required'" in text or 'missing a required argument' in text


@pytest.mark.parametrize('kind', sorted(SHAPES))
def test_check_shape_wrong_call(kind):
    shape = SHAPES[kind]
    cls = _load_class('''
        class C:
            def __init__(self, *args):
                pass
            def __call__(self, only_one):
                pass
        ''')
    with pytest.raises(AppLoadError) as caught:
        check_shape(cls, kind, 'sec')
    text = assert_one_line(caught.value, 'sec')
    assert '.C.__call__ cannot be called as a %s (self, %s)' % (shape.what, ', '.join(shape.call)) in text
    assert 'its signature is (self, only_one)' in text


@pytest.mark.parametrize('kind', sorted(SHAPES))
def test_check_shape_call_needs_more(kind):
    cls = _load_class('''
        class C:
            def __init__(self, *args):
                pass
            def __call__(self, a, b, c, d, e, f, g):
                pass
        ''')
    with pytest.raises(AppLoadError) as caught:
        check_shape(cls, kind, 'sec')
    assert 'cannot be called as a' in assert_one_line(caught.value, 'sec')


@pytest.mark.parametrize('kind', sorted(SHAPES))
def test_check_shape_no_call(kind):
    cls = _load_class('''
        class C:
            def __init__(self, *args):
                pass
        ''')
    with pytest.raises(AppLoadError) as caught:
        check_shape(cls, kind, 'sec')
    text = assert_one_line(caught.value, 'sec')
    assert text.endswith('.C has no __call__(self, %s) method' % ', '.join(SHAPES[kind].call))


@pytest.mark.parametrize('kind', sorted(SHAPES))
@pytest.mark.parametrize('thing', [
    pytest.param(lambda: (lambda env, start_response: None), id='function'),
    pytest.param(lambda: _load_class(GOOD[WSGI])('n', {}, None), id='instance'),
    pytest.param(lambda: 'a string', id='str'),
    pytest.param(lambda: None, id='None'),
    pytest.param(lambda: sys, id='module'),
])
def test_check_shape_not_a_class(kind, thing):
    obj = thing()
    with pytest.raises(AppLoadError) as caught:
        check_shape(obj, kind, 'sec')
    text = assert_one_line(caught.value, 'sec')
    assert text == '[sec] call: %r is not a class' % (obj,)


def test_check_shape_unintrospectable_class():
    # Builtins whose signature cannot be read are refused with a message, not a crash.
    with pytest.raises(AppLoadError) as caught:
        check_shape(dict, WSGI, 'sec')
    assert_one_line(caught.value, 'sec')


# ---- load_app -------------------------------------------------------------------

APP_MODULE = '''
from brim.errors import ConfError
from brim.options import app_option, parse_section, to_positive_int

class Plain:
    def __init__(self, name, parsed_conf, next_app):
        pass
    def __call__(self, env, start_response):
        pass

class WithConf(Plain):
    OPTIONS = (app_option('size', to_positive_int, 5, 'Size.'),)

    @classmethod
    def parse_conf(cls, name, conf):
        return parse_section(name, conf, cls.OPTIONS)

    @classmethod
    def stats_conf(cls, name, parsed_conf):
        return [('hits', 'sum'), ('size_seen', 'max')]

class RaisingParse(Plain):
    @classmethod
    def parse_conf(cls, name, conf):
        raise ValueError('cannot\\nparse')

class ConfErrorParse(Plain):
    @classmethod
    def parse_conf(cls, name, conf):
        raise ConfError(name, 'x', 'y', 'bad x')

class IntParse(Plain):
    @classmethod
    def parse_conf(cls, name, conf):
        return {'n': conf.get_int(name, 'n', 1), 'on': conf.get_bool(name, 'on', False),
                'f': conf.get_float((name, 'brim'), 'f', 0.0)}

class BadStatType(Plain):
    @classmethod
    def stats_conf(cls, name, parsed_conf):
        return [('ok', 'sum'), ('avg_time', 'average')]

class RaisingStats(Plain):
    @classmethod
    def stats_conf(cls, name, parsed_conf):
        raise KeyError('size')

class MalformedStats(Plain):
    @classmethod
    def stats_conf(cls, name, parsed_conf):
        return ['not-a-pair']

class EmptyOptions(Plain):
    OPTIONS = ()

class Handler:
    OPTIONS = (app_option('chunk', to_positive_int, 5, 'Chunk.'),)
    def __init__(self, name, parsed_conf):
        pass
    def __call__(self, subserver, stats, sock, ip, port):
        pass

class HandlerNoOptions:
    def __init__(self, name, parsed_conf):
        pass
    def __call__(self, subserver, stats, sock, ip, port):
        pass
'''


@pytest.fixture
def apps(modules):
    modules('ld_apps', APP_MODULE)
    return 'ld_apps.'


def test_load_app_plain(apps):
    conf = Conf({'echo': {'call': apps + 'Plain', 'path': '/x'}})
    loaded = load_app(WSGI, 'echo', conf, apps + 'Plain')
    assert loaded.section == 'echo'
    assert loaded.kind == WSGI
    assert loaded.cls.__name__ == 'Plain'
    # Without parse_conf the app gets its section's raw values.
    assert loaded.parsed_conf == {'call': apps + 'Plain', 'path': '/x'}
    assert loaded.stats == []
    assert loaded.warnings == []


def test_load_app_parse_and_stats_conf(apps):
    conf = Conf({'a': {'call': apps + 'WithConf', 'size': '9'}})
    loaded = load_app(WSGI, 'a', conf, apps + 'WithConf')
    assert loaded.parsed_conf == {'size': 9}
    assert loaded.stats == [('hits', 'sum'), ('size_seen', 'max')]
    assert loaded.warnings == []


@pytest.mark.parametrize('cls_name, section, message', [
    ('RaisingParse', 'app', '[app] RaisingParse.parse_conf failed: ValueError: cannot parse'),
    ('ConfErrorParse', 'app', "[app] x = 'y': bad x"),
    ('BadStatType', 'app',
     "[app] BadStatType.stats_conf: stat 'avg_time' has type 'average', not one of worker daemon sum min max"),
    ('RaisingStats', 'app', "[app] RaisingStats.stats_conf failed: KeyError: 'size'"),
    ('MalformedStats', 'app', '[app] MalformedStats.stats_conf failed: ValueError: '),
])
def test_load_app_errors_name_the_section(apps, cls_name, section, message):
    conf = Conf({section: {'call': apps + cls_name}})
    with pytest.raises((AppLoadError, ConfError)) as caught:
        load_app(WSGI, section, conf, apps + cls_name)
    text = assert_one_line(caught.value, section)
    assert text.startswith(message)


@pytest.mark.parametrize('values, message', [
    ({'n': 'many'}, "[app] n = 'many': cannot be converted to int"),
    ({'on': 'perhaps'}, "[app] on = 'perhaps': cannot be converted to boolean"),
    ({'f': 'x'}, "[app|brim] f = 'x': cannot be converted to float"),
])
def test_load_app_conf_conversion_error_is_conf_error(apps, values, message):
    conf = Conf({'app': dict(values, call=apps + 'IntParse')})
    with pytest.raises(ConfError) as caught:
        load_app(WSGI, 'app', conf, apps + 'IntParse')
    assert str(caught.value) == message


def test_load_app_conf_conversion_success(apps):
    conf = Conf({'app': {'n': '3', 'on': 'yes'}, 'brim': {'f': '2.5'}})
    assert load_app(WSGI, 'app', conf, apps + 'IntParse').parsed_conf == {'n': 3, 'on': True, 'f': 2.5}


def test_load_app_parse_section_error(apps):
    conf = Conf({'a': {'size': '0'}})
    with pytest.raises(ConfError) as caught:
        load_app(WSGI, 'a', conf, apps + 'WithConf')
    assert str(caught.value) == "[a] size = '0': must be 1 or more"


def test_load_app_import_and_shape_errors_name_section(apps):
    conf = Conf({'a': {}})
    with pytest.raises(AppLoadError) as caught:
        load_app(WSGI, 'a', conf, 'ld_apps.Missing')
    assert assert_one_line(caught.value, 'a').endswith('module ld_apps has no Missing')
    with pytest.raises(AppLoadError) as caught:
        load_app(TCP, 'a', conf, apps + 'Plain')
    assert 'cannot be constructed as a TCP handler' in assert_one_line(caught.value, 'a')


@pytest.mark.parametrize('kind, cls_name, section, values, warnings', [
    # WSGI apps and daemons: only call and their own OPTIONS are known.
    (WSGI, 'WithConf', 'a', {'call': 'x', 'size': '1'}, []),
    (WSGI, 'WithConf', 'a', {'szie': '1'}, ["[a] szie = '1': unknown option (a typo? did you mean size)"]),
    (WSGI, 'WithConf', 'a', {'port': '1'}, ["[a] port = '1': unknown option (a typo?)"]),
    (WSGI, 'EmptyOptions', 'a', {'anything': '1'}, ["[a] anything = '1': unknown option (a typo?)"]),
    # No OPTIONS: the loader cannot tell, so says nothing.
    (WSGI, 'Plain', 'a', {'anything': '1'}, []),
    # TCP/UDP handlers share their subserver's section: brimd's options are known too.
    (TCP, 'Handler', 'tcp', {'call': 'x', 'chunk': '1', 'port': '1', 'workers': '2', 'certfile': ''}, []),
    (TCP, 'Handler', 'tcp', {'wrokers': '2'}, ["[tcp] wrokers = '2': unknown option (a typo? did you mean workers)"]),
    (TCP, 'Handler', 'tcp#x', {'chunck': '2'}, ["[tcp#x] chunck = '2': unknown option (a typo? did you mean chunk)"]),
    (TCP, 'Handler', 'tcp', {'apps': 'e'}, ["[tcp] apps = 'e': unknown option (a typo?)"]),
    (TCP, 'HandlerNoOptions', 'tcp', {'wrokers': '2'}, []),
])
def test_load_app_unknown_option_warnings(apps, kind, cls_name, section, values, warnings):
    conf = Conf({section: values})
    assert load_app(kind, section, conf, apps + cls_name).warnings == warnings


def test_load_app_sample_apps_with_sample_conf():
    import pathlib

    from brim.conf import read_conf
    sample = pathlib.Path(__file__).resolve().parents[2] / 'brimd.conf-sample'
    conf = read_conf([str(sample)])
    for kind, section in ((WSGI, 'echo'), (WSGI, 'stats'), (TCP, 'tcp'), (UDP, 'udp'), (DAEMON, 'daemon_sample')):
        loaded = load_app(kind, section, conf, conf.get(section, 'call'))
        assert loaded.warnings == [], section
        assert all(stat_type in ('worker', 'daemon', 'sum', 'min', 'max') for _, stat_type in loaded.stats)
