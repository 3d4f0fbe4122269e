"""Tests for brim.options: converters, the registry, resolve and the sample."""

import grp
import os
import pathlib
import pwd
import re

import pytest

from brim import options
from brim.conf import Conf
from brim.errors import ConfError
from brim.options import (
    BY_NAME, GLOBAL, OPTIONS, SAMPLE_SECTIONS, app_option, kind_of, lookup, options_for,
    parse_section, render_sample, resolve, unknown_options)

REPO = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = REPO / 'brimd.conf-sample'

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


# ---- converters ---------------------------------------------------------------

GOOD = [
    ('to_str', '  padded  ', 'padded'),
    ('to_str', '', ''),
    ('to_int', '42', 42),
    ('to_int', ' -3 ', -3),
    ('to_positive_int', '1', 1),
    ('to_positive_int', '4096', 4096),
    ('to_nonnegative_int', '0', 0),
    ('to_port', '0', 0),
    ('to_port', '8080', 8080),
    ('to_port', '65535', 65535),
    ('to_seconds', '0', 0.0),
    ('to_seconds', '1.5', 1.5),
    ('to_seconds', ' 60 ', 60.0),
    ('to_bool', 'yes', True),
    ('to_bool', ' On ', True),
    ('to_bool', '1', True),
    ('to_bool', 'off', False),
    ('to_bool', 'FALSE', False),
    ('to_bool', '0', False),
    ('to_umask', '0022', 0o022),
    ('to_umask', '022', 0o022),
    ('to_umask', '0', 0),
    ('to_umask', '777', 0o777),
    ('to_umask', '0o027', 0o027),
    ('to_optional_path', '-', '-'),
    ('to_optional_path', '', ''),
    ('to_optional_path', '/var/log/x', '/var/log/x'),
    ('to_path', '', ''),
    ('to_path', '/a/b/../c', '/a/c'),
    ('to_words', 'a  b\tc\n d', ['a', 'b', 'c', 'd']),
    ('to_words', '', []),
    ('to_status_codes', '404 408 499 501', [404, 408, 499, 501]),
    ('to_status_codes', '100 599', [100, 599]),
    ('to_status_codes', '', []),
    ('to_log_level', 'notice', 'NOTICE'),
    ('to_log_level', ' debug ', 'DEBUG'),
    ('to_log_level', 'CRITICAL', 'CRITICAL'),
    ('to_log_facility', 'local0', 'LOCAL0'),
    ('to_log_facility', 'LOG_DAEMON', 'DAEMON'),
    ('to_log_facility', 'user', 'USER'),
    ('to_dotted', 'json.dumps', 'json.dumps'),
    ('to_dotted', ' brim.wsgi_echo.WSGIEcho ', 'brim.wsgi_echo.WSGIEcho'),
    ('to_dotted', '_p.m_2.Name', '_p.m_2.Name'),
    ('to_ip', '*', '*'),
    ('to_ip', '', '*'),
    ('to_ip', '127.0.0.1', '127.0.0.1'),
    ('to_ip', '::1', '::1'),
    ('to_ip', '[::1]', '::1'),
    ('to_ip', '0.0.0.0', '0.0.0.0'),
    ('to_ip', 'localhost', 'localhost'),
    ('to_user', ME, ME),
    ('to_group', MY_GROUP, MY_GROUP),
    ('to_hub', '', ''),
    ('to_hub', 'default', ''),
    ('to_hub', 'epolls', 'epolls'),
    ('to_hub', 'eventlet.hubs.poll', 'eventlet.hubs.poll'),
]


@pytest.mark.parametrize('converter, raw, expected', GOOD)
def test_converter_good_values(converter, raw, expected):
    value = getattr(options, converter)(raw)
    assert value == expected
    assert type(value) is type(expected)


BAD = [
    ('to_int', 'abc', 'not an integer'),
    ('to_int', '1.5', 'not an integer'),
    ('to_int', '', 'not an integer'),
    ('to_positive_int', '0', 'must be 1 or more'),
    ('to_positive_int', '-5', 'must be 1 or more'),
    ('to_positive_int', 'x', 'not an integer'),
    ('to_nonnegative_int', '-1', 'must be 0 or more'),
    ('to_port', '65536', 'not a port number (0-65535)'),
    ('to_port', '-1', 'not a port number (0-65535)'),
    ('to_port', 'http', 'not an integer'),
    ('to_seconds', 'soon', 'not a number of seconds'),
    ('to_seconds', '', 'not a number of seconds'),
    ('to_seconds', '-0.5', 'must be 0 seconds or more'),
    ('to_seconds', 'nan', 'must be 0 seconds or more'),
    ('to_seconds', '-inf', 'must be 0 seconds or more'),
    ('to_seconds', 'inf', 'must be a finite number of seconds'),
    ('to_bool', 'maybe', 'not a boolean (yes/no, true/false, on/off, 1/0)'),
    ('to_bool', '', 'not a boolean (yes/no, true/false, on/off, 1/0)'),
    ('to_umask', '8', 'not an octal umask such as 0022'),
    ('to_umask', '0999', 'not an octal umask such as 0022'),
    ('to_umask', '1000', 'not an octal umask such as 0022'),
    ('to_umask', '-1', 'not an octal umask such as 0022'),
    ('to_umask', 'rw', 'not an octal umask such as 0022'),
    ('to_status_codes', '404 99', "'99' is not an HTTP status code (100-599)"),
    ('to_status_codes', '600', "'600' is not an HTTP status code (100-599)"),
    ('to_status_codes', '404,408', "'404,408' is not an HTTP status code (100-599)"),
    ('to_status_codes', 'abc', "'abc' is not an HTTP status code (100-599)"),
    ('to_log_level', 'TRACE', 'not one of CRITICAL ERROR WARNING NOTICE INFO DEBUG'),
    ('to_log_level', 'WARN', 'not one of CRITICAL ERROR WARNING NOTICE INFO DEBUG'),
    ('to_log_facility', 'LOCAL9', 'not a syslog facility (LOCAL0..LOCAL7, USER, DAEMON, ...)'),
    ('to_log_facility', '', 'not a syslog facility (LOCAL0..LOCAL7, USER, DAEMON, ...)'),
    ('to_dotted', 'json', 'not a dotted name such as package.module.Name'),
    ('to_dotted', 'a..b', 'not a dotted name such as package.module.Name'),
    ('to_dotted', '1a.b', 'not a dotted name such as package.module.Name'),
    ('to_dotted', 'a.b.', 'not a dotted name such as package.module.Name'),
    ('to_dotted', 'a.b c', 'not a dotted name such as package.module.Name'),
    ('to_dotted', '', 'not a dotted name such as package.module.Name'),
    ('to_ip', '1.2.3.999', 'not an address or resolvable host name'),
    ('to_ip', 'no-such-host.invalid', 'not an address or resolvable host name'),
    ('to_user', 'no-such-user-brim-test', 'no such user'),
    ('to_group', 'no-such-group-brim-test', 'no such group'),
    ('to_hub', 'no/such', 'not an Eventlet hub name (epolls, poll, selects, kqueue)'),
    ('to_hub', '1hub', 'not an Eventlet hub name (epolls, poll, selects, kqueue)'),
]


@pytest.mark.timeout(30)  # to_ip may ask a resolver about the bad names
@pytest.mark.parametrize('converter, raw, message', BAD)
def test_converter_bad_values(converter, raw, message):
    with pytest.raises(ValueError) as caught:
        getattr(options, converter)(raw)
    assert str(caught.value) == message


@pytest.mark.parametrize('converter', ['to_path', 'to_optional_path'])
def test_path_converters_expand_and_make_absolute(tmp_path, monkeypatch, converter):
    home = tmp_path / 'home'
    monkeypatch.setenv('HOME', str(home))
    # Relative to where brimd started (read at import), not to the current
    # directory, which is / in workers.
    monkeypatch.setattr(options, 'LAUNCH_DIR', str(tmp_path))
    monkeypatch.chdir('/')
    convert = getattr(options, converter)
    assert convert('~/x.pid') == str(home / 'x.pid')
    assert convert(' rel/y ') == str(tmp_path / 'rel' / 'y')
    assert convert('/abs/../z') == '/z'


def test_int_at_least_converters_are_named():
    assert options.to_positive_int.__name__ == 'int_at_least_1'
    assert options.to_nonnegative_int.__name__ == 'int_at_least_0'


def test_default_pid_file():
    expected = '/var/run/brimd.pid' if os.access('/var/run', os.W_OK) else os.path.expanduser('~/.brimd.pid')
    assert options.default_pid_file() == expected


# ---- Option --------------------------------------------------------------------

def test_option_parse_error_names_section_option_value():
    with pytest.raises(ConfError) as caught:
        BY_NAME['port'].parse('wsgi#admin', 'eighty')
    err = caught.value
    assert str(err) == "[wsgi#admin] port = 'eighty': not an integer"
    assert (err.section, err.option, err.value, err.reason) == ('wsgi#admin', 'port', 'eighty', 'not an integer')
    assert err.__cause__ is None and err.__suppress_context__


def test_option_default_value_calls_callables():
    assert BY_NAME['pid_file'].default_value() == options.default_pid_file()
    assert BY_NAME['port'].default_value() == 80


@pytest.mark.parametrize('default, shown, expected_shown', [
    (7, None, '7'),
    (None, None, ''),
    ([1, 2], None, '1 2'),
    ((), None, ''),
    (1.5, 'one and a half', 'one and a half'),
])
def test_app_option(default, shown, expected_shown):
    option = app_option('x', options.to_str, default, 'Help.', units='bytes', shown=shown)
    assert option.name == 'x'
    assert option.kinds == frozenset()
    assert option.default == default
    assert option.shown_default == expected_shown
    assert option.units == 'bytes'
    assert not option.section_only


def test_registry_declares_each_option_once():
    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names))
    assert set(BY_NAME) == set(names)
    for option in OPTIONS:
        assert option.help.strip(), option.name
        assert option.kinds, option.name
        assert option.kinds <= {GLOBAL} | options.ALL_SUBSERVERS, option.name


#: Options whose default is computed or unset: the sample shows an empty
#: value, which means the default when uncommented.
EMPTY_MEANS_DEFAULT = {'user', 'group', 'pid_file', 'log_file', 'certfile', 'keyfile', 'eventlet_hub'}


@pytest.mark.parametrize('option', OPTIONS, ids=lambda o: o.name)
def test_registry_shown_default_converts_to_default(option):
    # The sample's "# name = shown", uncommented, means the default.
    if option.name == 'call':
        assert option.shown_default == ''  # required: no default
        return
    if option.name in EMPTY_MEANS_DEFAULT:
        assert option.shown_default == ''
    assert option.convert(option.shown_default) == option.default_value()


# SPEC §3 defaults.
@pytest.mark.parametrize('name, default', [
    ('umask', 0o022), ('log_name', 'brim'), ('log_level', 'INFO'), ('log_facility', 'LOCAL0'),
    ('json_dumps', 'json.dumps'), ('json_loads', 'json.loads'), ('ip', '*'), ('port', 80),
    ('workers', 1), ('client_timeout', 60.0), ('concurrent_per_worker', 1024), ('backlog', 4096),
    ('listen_retry', 30.0), ('log_headers', False), ('count_status_codes', [404, 408, 499, 501]),
    ('wsgi_input_iter_chunk_size', 4096), ('wsgi_output_iter_chunk_size', 4096),
    ('max_datagram_size', 65536), ('certfile', ''), ('keyfile', ''), ('user', None), ('group', None),
])
def test_spec_defaults(name, default):
    assert BY_NAME[name].default_value() == default


# ---- kind_of, options_for ------------------------------------------------------

@pytest.mark.parametrize('section, kind', [
    ('wsgi', 'wsgi'), ('wsgi2', 'wsgi'), ('wsgi10', 'wsgi'), ('wsgi#admin', 'wsgi'), ('wsgi#a#b', 'wsgi'),
    ('tcp', 'tcp'), ('tcp12', 'tcp'), ('tcp#raw', 'tcp'),
    ('udp', 'udp'), ('udp3', 'udp'), ('udp#x', 'udp'),
    ('daemons', 'daemons'),
    ('wsgi#', None), ('wsgix', None), ('wsgi_2', None), ('wsgi2a', None), ('WSGI', None), (' wsgi', None),
    ('tcpx', None), ('udp#', None), ('daemons2', None), ('daemons#x', None), ('daemon', None),
    ('brim', None), ('echo', None), ('', None),
])
def test_kind_of(section, kind):
    assert kind_of(section) == kind


@pytest.mark.parametrize('kind, present, absent', [
    ('brim', ['additional_confs', 'user', 'pid_file', 'log_file', 'port', 'workers', 'log_headers',
              'max_datagram_size', 'client_timeout'],
     ['apps', 'call', 'daemons']),
    ('wsgi', ['apps', 'port', 'workers', 'log_headers', 'count_status_codes', 'certfile', 'backlog', 'log_level'],
     ['call', 'daemons', 'max_datagram_size', 'user', 'pid_file', 'additional_confs']),
    ('tcp', ['call', 'port', 'certfile', 'client_timeout', 'backlog'],
     ['apps', 'daemons', 'max_datagram_size', 'log_headers', 'user']),
    ('udp', ['call', 'port', 'max_datagram_size', 'workers'],
     ['apps', 'daemons', 'certfile', 'backlog', 'client_timeout', 'log_headers']),
    ('daemons', ['daemons', 'log_level', 'eventlet_hub'],
     ['apps', 'call', 'port', 'workers', 'ip']),
])
def test_options_for(kind, present, absent):
    names = [o.name for o in options_for(kind)]
    assert len(names) == len(set(names))
    for name in present:
        assert name in names
    for name in absent:
        assert name not in names


def test_options_for_keeps_registry_order():
    for kind in ('brim', 'wsgi', 'tcp', 'udp', 'daemons'):
        names = [o.name for o in options_for(kind)]
        assert names == [o.name for o in OPTIONS if o.name in names]


# ---- lookup --------------------------------------------------------------------

@pytest.mark.parametrize('store, section, name, expected', [
    ({'wsgi': {'port': '1'}, 'brim': {'port': '2'}}, 'wsgi', 'port', 1),
    ({'wsgi': {}, 'brim': {'port': '2'}}, 'wsgi', 'port', 2),
    ({'wsgi': {}}, 'wsgi', 'port', 80),
    ({}, 'wsgi', 'port', 80),
    ({'brim': {'port': '2'}}, 'brim', 'port', 2),
    ({'wsgi': {'port': '1'}}, 'brim', 'port', 80),
    ({'tcp#x': {}, 'brim': {'workers': '3'}}, 'tcp#x', 'workers', 3),
    ({'wsgi': {'log_headers': 'yes'}}, 'wsgi', 'log_headers', True),
    # section_only options never fall back to [brim].
    ({'wsgi': {}, 'brim': {'apps': 'echo'}}, 'wsgi', 'apps', []),
    ({'tcp': {}, 'brim': {'call': 'a.B'}}, 'tcp', 'call', None),
    ({'daemons': {}, 'brim': {'daemons': 'd'}}, 'daemons', 'daemons', []),
    ({'wsgi': {'apps': 'a b'}, 'brim': {'apps': 'c'}}, 'wsgi', 'apps', ['a', 'b']),
])
def test_lookup_fallback(store, section, name, expected):
    assert lookup(Conf(store), section, BY_NAME[name]) == expected


@pytest.mark.parametrize('store, section, where', [
    ({'wsgi': {'port': 'x'}, 'brim': {'port': '2'}}, 'wsgi', 'wsgi'),
    ({'wsgi': {}, 'brim': {'port': 'x'}}, 'wsgi', 'brim'),
    ({'brim': {'port': 'x'}}, 'brim', 'brim'),
])
def test_lookup_error_names_section_where_found(store, section, where):
    with pytest.raises(ConfError) as caught:
        lookup(Conf(store), section, BY_NAME['port'])
    assert str(caught.value) == "[%s] port = 'x': not an integer" % where


def test_lookup_callable_default():
    assert lookup(Conf({}), 'brim', BY_NAME['pid_file']) == options.default_pid_file()


# ---- parse_section, unknown_options --------------------------------------------

APP_OPTIONS = (
    app_option('size', options.to_positive_int, 10, 'Size.'),
    app_option('path', options.to_str, '/x', 'Path.'),
)


@pytest.mark.parametrize('store, expected', [
    ({'app': {}}, {'size': 10, 'path': '/x'}),
    ({}, {'size': 10, 'path': '/x'}),
    ({'app': {'size': '3', 'path': ' /y '}}, {'size': 3, 'path': '/y'}),
    # No [brim] fallback for app options.
    ({'app': {}, 'brim': {'size': '3'}}, {'size': 10, 'path': '/x'}),
    ({'app': {'other': 'ignored'}}, {'size': 10, 'path': '/x'}),
])
def test_parse_section(store, expected):
    assert parse_section('app', Conf(store), APP_OPTIONS) == expected


def test_parse_section_bad_value():
    with pytest.raises(ConfError) as caught:
        parse_section('app', Conf({'app': {'size': '0'}}), APP_OPTIONS)
    assert str(caught.value) == "[app] size = '0': must be 1 or more"


@pytest.mark.parametrize('present, expected', [
    ({}, []),
    ({'size': '1'}, []),
    ({'szie': '1'}, ["[app] szie = '1': unknown option (a typo? did you mean size)"]),
    ({'zzzzzz': 'v'}, ["[app] zzzzzz = 'v': unknown option (a typo?)"]),
    ({'pth': '/', 'size': '2', 'qqq': ''},
     ["[app] pth = '/': unknown option (a typo? did you mean path)", "[app] qqq = '': unknown option (a typo?)"]),
])
def test_unknown_options(present, expected):
    conf = Conf({'app': present})
    assert unknown_options(conf, 'app', ['size', 'path']) == expected


def test_unknown_options_missing_section():
    assert unknown_options(Conf({}), 'nope', ['x']) == []


# ---- resolve -------------------------------------------------------------------

ECHO = 'brim.wsgi_echo.WSGIEcho'


def test_resolve_finds_subservers_in_conf_order():
    conf = Conf({
        'brim': {'port': '8000', 'log_level': 'debug'},
        'wsgi': {'apps': 'echo'},
        'echo': {'call': ECHO},
        'wsgi#admin': {'port': '9000', 'apps': ''},
        'tcp2': {'call': 'brim.tcp_echo.TCPEcho', 'workers': '3'},
        'udp': {'call': 'brim.udp_echo.UDPEcho'},
        'daemons': {'daemons': 'd'},
        'd': {'call': 'brim.daemon_sample.DaemonSample'},
        'unrelated': {'x': 'y'},
    })
    resolved = resolve(conf)
    assert [(s.name, s.kind) for s in resolved.subservers] == [
        ('wsgi', 'wsgi'), ('wsgi#admin', 'wsgi'), ('tcp2', 'tcp'), ('udp', 'udp'), ('daemons', 'daemons')]
    subs = {s.name: s for s in resolved.subservers}
    assert subs['wsgi']['port'] == 8000
    assert subs['wsgi']['apps'] == ['echo']
    assert subs['wsgi']['log_level'] == 'DEBUG'
    assert subs['wsgi#admin']['port'] == 9000
    assert subs['wsgi#admin']['apps'] == []
    assert subs['tcp2']['workers'] == 3
    assert subs['tcp2']['call'] == 'brim.tcp_echo.TCPEcho'
    assert subs['udp']['max_datagram_size'] == 65536
    assert subs['daemons']['daemons'] == ['d']
    assert set(subs['udp'].values) == {o.name for o in options_for('udp')}
    assert resolved['log_level'] == 'DEBUG'
    assert resolved['umask'] == 0o022
    assert resolved.conf is conf
    assert resolved.warnings == []


@pytest.mark.parametrize('store, expected', [
    ({'brim': {'wrokers': '2'}, 'wsgi': {}},
     ["[brim] wrokers = '2': unknown option (a typo? did you mean workers)"]),
    ({'brim': {'zzzzzzzz': '1'}, 'wsgi': {}},
     ["[brim] zzzzzzzz = '1': unknown option (a typo?)"]),
    ({'wsgi': {'prot': '80'}},
     ["[wsgi] prot = '80': unknown option (a typo? did you mean port)"]),
    ({'wsgi#a': {'app': 'x'}, 'x': {'call': ECHO}},
     ["[wsgi#a] app = 'x': unknown option (a typo? did you mean apps)"]),
    ({'daemons': {'deamons': ''}},
     ["[daemons] deamons = '': unknown option (a typo? did you mean daemons)"]),
    # Not valid in [daemons]: a daemons section has no port.
    ({'daemons': {'port': '1'}},
     ["[daemons] port = '1': unknown option (a typo?)"]),
    # [brim] may not hold section-only options.
    ({'brim': {'apps': 'x'}, 'wsgi': {}},
     ["[brim] apps = 'x': unknown option (a typo?)"]),
    # App sections are the loader's to check.
    ({'wsgi': {'apps': 'e'}, 'e': {'call': ECHO, 'mxa_echo': '1'}}, []),
    # TCP/UDP sections also hold the handler's options: the loader checks them.
    ({'tcp': {'call': 'brim.tcp_echo.TCPEcho', 'chunk_read': '1', 'wrokers': '2'}}, []),
    ({'udp': {'call': 'brim.udp_echo.UDPEcho', 'anything': '1'}}, []),
])
def test_resolve_warnings(store, expected):
    assert resolve(Conf(store)).warnings == expected


@pytest.mark.parametrize('store, message', [
    ({'tcp': {}}, '[tcp] call: missing: name the handler class, call = package.module.Class'),
    ({'udp#x': {'port': '1'}}, '[udp#x] call: missing: name the handler class, call = package.module.Class'),
    ({'brim': {'call': 'a.B'}, 'tcp': {}},
     '[tcp] call: missing: name the handler class, call = package.module.Class'),
    ({'wsgi': {'apps': 'echo nope'}, 'echo': {'call': ECHO}},
     "[wsgi] apps = 'echo nope': names [nope], which is not in the conf"),
    ({'daemons': {'daemons': 'd'}}, "[daemons] daemons = 'd': names [d], which is not in the conf"),
    ({'wsgi': {'apps': 'echo'}, 'echo': {}}, '[echo] call: missing: name the app class, call = package.module.Class'),
    ({'wsgi': {'apps': 'echo'}, 'echo': {'call': 'Echo'}},
     "[echo] call = 'Echo': not a dotted name such as package.module.Name"),
    ({'tcp': {'call': 'nodots'}}, "[tcp] call = 'nodots': not a dotted name such as package.module.Name"),
    ({}, 'conf: no [wsgi], [tcp], [udp] or [daemons] section: nothing to run'),
    ({'brim': {}, 'echo': {'call': ECHO}}, 'conf: no [wsgi], [tcp], [udp] or [daemons] section: nothing to run'),
    ({'wsgi': {'port': 'eighty'}}, "[wsgi] port = 'eighty': not an integer"),
    ({'brim': {'port': '99999'}, 'wsgi': {}}, "[brim] port = '99999': not a port number (0-65535)"),
    ({'brim': {'umask': '9'}, 'wsgi': {}}, "[brim] umask = '9': not an octal umask such as 0022"),
    ({'wsgi#x': {'workers': '0'}}, "[wsgi#x] workers = '0': must be 1 or more"),
    ({'wsgi': {'log_level': 'loud'}},
     "[wsgi] log_level = 'loud': not one of CRITICAL ERROR WARNING NOTICE INFO DEBUG"),
    ({'udp': {'call': 'a.B', 'max_datagram_size': 'big'}}, "[udp] max_datagram_size = 'big': not an integer"),
    ({'wsgi': {'count_status_codes': '404 4040'}},
     "[wsgi] count_status_codes = '404 4040': '4040' is not an HTTP status code (100-599)"),
])
def test_resolve_errors(store, message):
    with pytest.raises(ConfError) as caught:
        resolve(Conf(store))
    assert str(caught.value) == message
    assert '\n' not in str(caught.value)


# ---- brimd.conf-sample ----------------------------------------------------------

def test_render_sample_equals_shipped_file():
    # Regenerate with: python -m brim.options > brimd.conf-sample
    assert render_sample().encode('utf-8') == SAMPLE.read_bytes()


def _sample_option_lines(text):
    found = {}
    section = None
    for line in text.splitlines():
        match = re.match(r'^(?:# )?\[(.+)\]$', line)  # commented-out sections too
        if match:
            section = match.group(1)
            continue
        match = re.match(r'^(?:# )?([a-z_]+) =(?: |$)', line)
        if match:
            found.setdefault(match.group(1), []).append(section)
    return found


@pytest.mark.parametrize('option', OPTIONS, ids=lambda o: o.name)
def test_sample_documents_every_option(option):
    found = _sample_option_lines(SAMPLE.read_text(encoding='utf-8'))
    assert option.name in found
    expected = 'brim' if not option.section_only else None
    if expected:
        assert expected in found[option.name]
    else:
        assert any(kind_of(section) in option.kinds for section in found[option.name])


@pytest.mark.parametrize('section, dotted', [(s, app) for s, _, app in SAMPLE_SECTIONS if app])
def test_sample_documents_sample_app_options(section, dotted):
    found = _sample_option_lines(SAMPLE.read_text(encoding='utf-8'))
    for option in options._app_options(dotted):
        assert section in found[option.name], option.name


def test_sample_resolves_without_errors_or_warnings():
    from brim.conf import read_conf
    conf = read_conf([str(SAMPLE)])
    resolved = resolve(conf)
    assert resolved.warnings == []
    assert {s.name for s in resolved.subservers} == {'wsgi', 'tcp', 'udp', 'daemons'}
    for sub in resolved.subservers:
        if sub.kind != 'daemons':
            assert sub['port'] >= 1024, 'sample must run on unprivileged ports'
            assert sub['ip'] == '127.0.0.1'
