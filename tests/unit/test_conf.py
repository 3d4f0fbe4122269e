"""Tests for brim.conf: read_conf and Conf's typed getters."""

import configparser
import os

import pytest

from brim.conf import FALSE_VALUES, TRUE_VALUES, Conf, expand_env, read_conf, section_label
from brim.errors import ConfError


def write(path, text):
    path.write_text(text, encoding='utf-8')
    return str(path)


# ---- read_conf: which files, in what order ----------------------------------

def test_read_conf_accepts_one_name_as_str(tmp_path):
    name = write(tmp_path / 'a.conf', '[s]\no = 1\n')
    conf = read_conf(name)
    assert conf.files == [name]
    assert conf.store == {'s': {'o': '1'}}


@pytest.mark.parametrize('make_unreadable', [
    pytest.param(lambda p: None, id='missing'),
    pytest.param(lambda p: p.mkdir(), id='directory'),
    pytest.param(lambda p: p.write_bytes(b'[s]\no = \xff\xfe\n'), id='not-utf8'),
])
def test_read_conf_skips_missing_and_unreadable_files(tmp_path, make_unreadable):
    bad = tmp_path / 'bad.conf'
    make_unreadable(bad)
    good = write(tmp_path / 'good.conf', '[s]\no = good\n')
    conf = read_conf([str(bad), good])
    assert conf.files == [good]
    assert conf.get('s', 'o') == 'good'


@pytest.mark.skipif(os.geteuid() == 0, reason='root reads files whatever their mode')
def test_read_conf_skips_file_without_read_permission(tmp_path):
    bad = tmp_path / 'bad.conf'
    write(bad, '[s]\no = bad\n')
    bad.chmod(0)
    conf = read_conf([str(bad)])
    assert conf.files == []
    assert conf.store == {}


def test_read_conf_nothing_read_gives_empty_conf(tmp_path):
    conf = read_conf([str(tmp_path / 'nope.conf')])
    assert conf.files == []
    assert conf.store == {}
    assert conf.get('s', 'o', 'dflt') == 'dflt'


@pytest.mark.parametrize('order, expected', [
    (('a', 'b'), 'from b'),
    (('b', 'a'), 'from a'),
])
def test_read_conf_later_files_override_earlier(tmp_path, order, expected):
    names = {
        'a': write(tmp_path / 'a.conf', '[s]\no = from a\nonly_a = 1\n'),
        'b': write(tmp_path / 'b.conf', '[s]\no = from b\n[t]\nonly_b = 2\n'),
    }
    conf = read_conf([names[k] for k in order])
    assert conf.files == [names[k] for k in order]
    assert conf.get('s', 'o') == expected
    # Options and sections not overridden survive from either file.
    assert conf.get('s', 'only_a') == '1'
    assert conf.get('t', 'only_b') == '2'


def test_read_conf_expands_tilde_in_given_names(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    write(tmp_path / 'home.conf', '[s]\no = home\n')
    conf = read_conf(['~/home.conf'])
    assert conf.files == [str(tmp_path / 'home.conf')]
    assert conf.get('s', 'o') == 'home'


@pytest.mark.parametrize('value', ['100%', '%(x)s', '%%', 'a % b'])
def test_read_conf_percent_is_literal(tmp_path, value):
    name = write(tmp_path / 'a.conf', '[s]\no = %s\n' % value)
    assert read_conf([name]).get('s', 'o') == value


def test_read_conf_keeps_values_as_str(tmp_path):
    name = write(tmp_path / 'a.conf', '[s]\nint = 1\nbool = yes\nmulti = a\n  b\n')
    conf = read_conf([name])
    assert conf.store['s'] == {'int': '1', 'bool': 'yes', 'multi': 'a\nb'}


# ---- additional_confs ----------------------------------------------------------

@pytest.mark.parametrize('spelling, included', [
    ('plain.conf', 'plain.conf'),
    ('"with space.conf"', 'with space.conf'),
    ("'single quoted.conf'", 'single quoted.conf'),
    ('with\\ escape.conf', 'with escape.conf'),
])
def test_additional_confs_shell_quoting(tmp_path, spelling, included):
    main = write(tmp_path / 'main.conf', '[brim]\nadditional_confs = %s\n[s]\no = main\n' % spelling)
    extra = write(tmp_path / included, '[s]\no = extra\n')
    conf = read_conf([main])
    assert conf.files == [main, extra]
    # Included files are read after the file naming them: their values win.
    assert conf.get('s', 'o') == 'extra'


def test_additional_confs_several_names(tmp_path):
    main = write(tmp_path / 'main.conf', '[brim]\nadditional_confs = a.conf "b c.conf"\n')
    a = write(tmp_path / 'a.conf', '[s]\no = a\n')
    bc = write(tmp_path / 'b c.conf', '[s]\no = bc\n')
    conf = read_conf([main])
    assert conf.files == [main, a, bc]
    assert conf.get('s', 'o') == 'bc'


def test_additional_confs_tilde_expanded(tmp_path, monkeypatch):
    home = tmp_path / 'home'
    home.mkdir()
    monkeypatch.setenv('HOME', str(home))
    main = write(tmp_path / 'main.conf', '[brim]\nadditional_confs = ~/d.conf\n')
    write(home / 'd.conf', '[s]\no = home\n')
    conf = read_conf([main])
    assert conf.files == [main, str(home / 'd.conf')]
    assert conf.get('s', 'o') == 'home'


def test_additional_confs_absolute_path(tmp_path):
    other = tmp_path / 'elsewhere'
    other.mkdir()
    extra = write(other / 'x.conf', '[s]\no = x\n')
    main = write(tmp_path / 'main.conf', '[brim]\nadditional_confs = %s\n' % extra)
    assert read_conf([main]).files == [main, extra]


def test_additional_confs_relative_to_the_naming_file_not_cwd(tmp_path, monkeypatch):
    confdir = tmp_path / 'etc'
    confdir.mkdir()
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    write(cwd / 'inc.conf', '[s]\no = wrong (cwd)\n')
    write(confdir / 'inc.conf', '[s]\no = right\n')
    main = write(confdir / 'main.conf', '[brim]\nadditional_confs = inc.conf\n')
    conf = read_conf([main])
    assert conf.get('s', 'o') == 'right'
    assert conf.files == [main, str(confdir / 'inc.conf')]


def test_additional_confs_chain_relative_to_each_file(tmp_path):
    (tmp_path / 'sub').mkdir()
    main = write(tmp_path / 'main.conf', '[brim]\nadditional_confs = sub/one.conf\n')
    one = write(tmp_path / 'sub' / 'one.conf', '[brim]\nadditional_confs = two.conf\n')
    two = write(tmp_path / 'sub' / 'two.conf', '[s]\no = two\n')
    conf = read_conf([main])
    assert conf.files == [main, one, two]
    assert conf.get('s', 'o') == 'two'


def test_additional_confs_of_one_file_not_reapplied_to_later_files(tmp_path):
    # Regression: the merged [brim] additional_confs of an earlier file used
    # to be re-resolved relative to every later file read.
    d1 = tmp_path / 'd1'
    d2 = tmp_path / 'd2'
    d1.mkdir()
    d2.mkdir()
    a = write(d1 / 'a.conf', '[brim]\nadditional_confs = inc.conf\n')
    inc1 = write(d1 / 'inc.conf', '[s]\no = d1 inc\n')
    c = write(d2 / 'c.conf', '[s]\nc = c\n')
    write(d2 / 'inc.conf', '[s]\no = d2 inc, never named\n')
    conf = read_conf([a, c])
    assert conf.files == [a, inc1, c]
    assert conf.get('s', 'o') == 'd1 inc'


def test_additional_confs_read_before_the_next_file_given(tmp_path):
    # An included file is read right after the file naming it, so a conf
    # file given later on the command line still wins.
    a = write(tmp_path / 'a.conf', '[brim]\nadditional_confs = inc.conf\n[s]\no = a\n')
    inc = write(tmp_path / 'inc.conf', '[s]\no = inc\np = inc\n')
    b = write(tmp_path / 'b.conf', '[s]\no = b\n')
    conf = read_conf([a, b])
    assert conf.files == [a, inc, b]
    assert (conf.get('s', 'o'), conf.get('s', 'p')) == ('b', 'inc')


@pytest.mark.parametrize('spell_back', ['a.conf', 'ABS', './a.conf', '../%s/a.conf'])
def test_additional_confs_cycle_reads_each_file_once(tmp_path, spell_back):
    a_path = tmp_path / 'a.conf'
    back = {
        'ABS': str(a_path),
        '../%s/a.conf': '../%s/a.conf' % tmp_path.name,
    }.get(spell_back, spell_back)
    a = write(a_path, '[brim]\nadditional_confs = b.conf\n[s]\no = a\n')
    b = write(tmp_path / 'b.conf', '[brim]\nadditional_confs = %s\n[s]\no = b\n' % back)
    conf = read_conf([a])
    assert conf.files == [a, b]
    assert conf.get('s', 'o') == 'b'


def test_additional_confs_cycle_via_relative_command_line_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / 'a.conf', '[brim]\nadditional_confs = b.conf\n[s]\no = a\n')
    b = write(tmp_path / 'b.conf', '[brim]\nadditional_confs = a.conf\n[s]\no = b\n')
    conf = read_conf(['a.conf'])
    # a.conf is not read a second time (as an absolute name) after b.conf.
    assert conf.files == ['a.conf', b]
    assert conf.get('s', 'o') == 'b'


def test_additional_confs_self_reference(tmp_path):
    a = write(tmp_path / 'a.conf', '[brim]\nadditional_confs = a.conf\n')
    assert read_conf([a]).files == [a]


def test_additional_confs_missing_file_skipped(tmp_path):
    main = write(tmp_path / 'main.conf', '[brim]\nadditional_confs = nope.conf\n[s]\no = main\n')
    conf = read_conf([main])
    assert conf.files == [main]
    assert conf.get('s', 'o') == 'main'


def test_additional_confs_file_given_twice_read_once(tmp_path):
    a = write(tmp_path / 'a.conf', '[brim]\nadditional_confs = b.conf\n')
    b = write(tmp_path / 'b.conf', '[s]\no = b\n')
    assert read_conf([a, b]).files == [a, b]


# ---- read errors ------------------------------------------------------------------

BAD_CONFS = [
    pytest.param('o = no section\n', id='no-section-header'),
    pytest.param('[s]\nno equals sign\n', id='parsing-error'),
    pytest.param('[s]\no = 1\no = 2\n', id='duplicate-option'),
    pytest.param('[s]\n[s]\n', id='duplicate-section'),
    pytest.param('[brim]\nadditional_confs = "unclosed.conf\n', id='unbalanced-quote'),
]


@pytest.mark.parametrize('text', BAD_CONFS)
def test_read_conf_syntax_error_exits_with_one_line(tmp_path, text):
    name = write(tmp_path / 'bad.conf', text)
    with pytest.raises(SystemExit) as caught:
        read_conf([name])
    message = caught.value.code
    assert isinstance(message, str)
    assert '\n' not in message
    assert message.startswith('Could not read conf: ')
    assert name in message


@pytest.mark.parametrize('text', BAD_CONFS)
def test_read_conf_syntax_error_raises_when_asked(tmp_path, text):
    name = write(tmp_path / 'bad.conf', text)
    with pytest.raises(configparser.Error) as caught:
        read_conf([name], exit_on_read_exception=False)
    assert name in str(caught.value)


def test_read_conf_syntax_error_in_additional_conf(tmp_path):
    main = write(tmp_path / 'main.conf', '[brim]\nadditional_confs = bad.conf\n')
    bad = write(tmp_path / 'bad.conf', 'garbage\n')
    with pytest.raises(SystemExit) as caught:
        read_conf([main])
    assert bad in caught.value.code


# ---- Conf.get ---------------------------------------------------------------------

STORE = {
    'a': {'x': 'ax', 'empty': ''},
    'b': {'x': 'bx', 'y': 'by'},
    'c': {'z': 'cz'},
}


@pytest.mark.parametrize('section, option, default, expected', [
    ('a', 'x', None, 'ax'),
    ('a', 'empty', 'dflt', ''),
    ('a', 'y', None, None),
    ('a', 'y', 'dflt', 'dflt'),
    ('nosuch', 'x', 'dflt', 'dflt'),
    (('a', 'b'), 'x', None, 'ax'),
    (('b', 'a'), 'x', None, 'bx'),
    (('a', 'b'), 'y', None, 'by'),
    (('nosuch', 'c'), 'z', None, 'cz'),
    (['a', 'b', 'c'], 'z', None, 'cz'),
    (('a', 'b'), 'nope', 'dflt', 'dflt'),
    ((), 'x', 'dflt', 'dflt'),
])
def test_get(section, option, default, expected):
    assert Conf(STORE).get(section, option, default) == expected


def test_get_section_generator_consumed_once():
    sections = (name for name in ['nosuch', 'b'])
    assert Conf(STORE).get(sections, 'x') == 'bx'


def test_conf_files_default_and_given():
    assert Conf({}).files == []
    assert Conf({}, ['x.conf']).files == ['x.conf']
    store = {'s': {}}
    assert Conf(store).store is store


@pytest.mark.parametrize('section, label', [
    ('a', 'a'),
    (('a', 'brim'), 'a|brim'),
    (['x'], 'x'),
])
def test_section_label(section, label):
    assert section_label(section) == label


# ---- typed getters ----------------------------------------------------------------

def test_true_false_values():
    assert TRUE_VALUES == ['1', 'on', 't', 'true', 'y', 'yes']
    assert FALSE_VALUES == ['0', 'f', 'false', 'n', 'no', 'off']
    assert not set(TRUE_VALUES) & set(FALSE_VALUES)


@pytest.mark.parametrize('raw', TRUE_VALUES + ['TRUE', 'Yes', ' on ', 'T'])
def test_get_bool_true(raw):
    assert Conf({'s': {'o': raw}}).get_bool('s', 'o', False) is True


@pytest.mark.parametrize('raw', FALSE_VALUES + ['FALSE', 'No', ' off ', 'F'])
def test_get_bool_false(raw):
    assert Conf({'s': {'o': raw}}).get_bool('s', 'o', True) is False


@pytest.mark.parametrize('method, raw, expected', [
    ('get_int', '42', 42),
    ('get_int', ' -7 ', -7),
    ('get_int', '0', 0),
    ('get_float', '1.5', 1.5),
    ('get_float', '2', 2.0),
    ('get_float', '-1e3', -1000.0),
])
def test_get_number(method, raw, expected):
    value = getattr(Conf({'s': {'o': raw}}), method)('s', 'o', None)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize('method', ['get_bool', 'get_int', 'get_float', 'get'])
def test_typed_getters_return_default_when_missing(method):
    sentinel = object()
    conf = Conf({'s': {'other': 'x'}})
    assert getattr(conf, method)('s', 'o', sentinel) is sentinel
    assert getattr(conf, method)('nosuch', 'o', sentinel) is sentinel
    assert getattr(conf, method)('s', 'o') is None


@pytest.mark.parametrize('method', ['get_bool', 'get_int', 'get_float'])
def test_typed_getters_with_section_iterable(method):
    conf = Conf({'wsgi': {'o': '1'}, 'brim': {'o': '0', 'p': '0'}})
    value = getattr(conf, method)(('wsgi', 'brim'), 'o')
    assert value == 1 and value is not False
    assert not getattr(conf, method)(('wsgi', 'brim'), 'p', 'dflt')


@pytest.mark.parametrize('raw, expected', [
    ('/abs/path', '/abs/path'),
    ('relative/path', 'relative/path'),
    ('~', 'HOME'),
    ('~/x', 'HOME/x'),
])
def test_get_path_expands_tilde(tmp_path, monkeypatch, raw, expected):
    monkeypatch.setenv('HOME', str(tmp_path))
    value = Conf({'s': {'o': raw}}).get_path('s', 'o')
    assert value == expected.replace('HOME', str(tmp_path))


def test_get_path_expands_tilde_in_default(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    assert Conf({}).get_path('s', 'o', '~/d') == str(tmp_path / 'd')
    assert Conf({}).get_path('s', 'o') is None


# ---- conversion errors ------------------------------------------------------------

BAD_VALUES = [
    ('get_bool', 'maybe', 'boolean'),
    ('get_bool', '', 'boolean'),
    ('get_bool', '2', 'boolean'),
    ('get_int', 'abc', 'int'),
    ('get_int', '1.5', 'int'),
    ('get_int', '', 'int'),
    ('get_float', 'abc', 'float'),
    ('get_float', '1,5', 'float'),
]


@pytest.mark.parametrize('method, raw, conversion_type', BAD_VALUES)
def test_default_error_exits_naming_section_option_value(method, raw, conversion_type):
    conf = Conf({'sect': {'opt': raw}})
    with pytest.raises(SystemExit) as caught:
        getattr(conf, method)('sect', 'opt', 'dflt')
    message = caught.value.code
    assert isinstance(message, str)
    assert '\n' not in message
    assert message == 'Configuration value [sect] opt of %r cannot be converted to %s.' % (raw, conversion_type)


def test_default_error_names_section_iterable():
    conf = Conf({'wsgi': {}, 'brim': {'port': 'eighty'}})
    with pytest.raises(SystemExit) as caught:
        conf.get_int(('wsgi', 'brim'), 'port', 80)
    assert caught.value.code == "Configuration value [wsgi|brim] port of 'eighty' cannot be converted to int."


@pytest.mark.parametrize('method, raw, conversion_type', BAD_VALUES)
def test_replaced_error_gets_arguments_and_its_result_is_returned(method, raw, conversion_type):
    conf = Conf({'sect': {'opt': raw}})
    calls = []

    def error(section, option, value, ctype, err):
        calls.append((section, option, value, ctype, type(err)))
        return 'replacement'

    conf.error = error
    assert getattr(conf, method)('sect', 'opt', 'dflt') == 'replacement'
    assert calls == [('sect', 'opt', raw, conversion_type, ValueError)]


def test_replaced_error_may_raise():
    conf = Conf({'s': {'o': 'x'}})

    class Boom(Exception):
        pass

    def error(section, option, value, ctype, err):
        raise Boom('%s %s %r %s' % (section, option, value, ctype))

    conf.error = error
    with pytest.raises(Boom, match=r"^s o 'x' int$"):
        conf.get_int('s', 'o')
    # Replacing it on one instance leaves others with the default.
    with pytest.raises(SystemExit):
        Conf({'s': {'o': 'x'}}).get_int('s', 'o')


def test_repr_shows_store_and_files():
    text = repr(Conf({'s': {'o': 'v'}}, ['f.conf']))
    assert text == "Conf({'s': {'o': 'v'}}, files=['f.conf'])"


# ---- environment variables in values ----------------------------------------------

ENV_CASES = [
    # (value in the file, {variable: value, or None for unset}, expected)
    pytest.param('${BRIM_T_A}', {'BRIM_T_A': '8081'}, '8081', id='set'),
    pytest.param('${BRIM_T_A:-8080}', {'BRIM_T_A': '8081'}, '8081', id='set-with-default'),
    pytest.param('${BRIM_T_A:-8080}', {'BRIM_T_A': None}, '8080', id='unset-with-default'),
    pytest.param('${BRIM_T_A:-8080}', {'BRIM_T_A': ''}, '8080', id='empty-with-default'),
    pytest.param('[${BRIM_T_A}]', {'BRIM_T_A': ''}, '[]', id='empty-without-default'),
    pytest.param('${BRIM_T_A:-}', {'BRIM_T_A': None}, '', id='empty-default'),
    pytest.param('${BRIM_T_A:-a b:c:-d}', {'BRIM_T_A': None}, 'a b:c:-d', id='default-with-spaces-colons'),
    pytest.param('${BRIM_T_A:-$HOME $$}', {'BRIM_T_A': None}, '$HOME $$', id='default-is-literal'),
    pytest.param('${BRIM_T_A}', {'BRIM_T_A': '${BRIM_T_B}$$'}, '${BRIM_T_B}$$', id='variable-value-not-expanded'),
    pytest.param('${_x9}', {'_x9': 'v'}, 'v', id='underscore-and-digits-in-name'),
    pytest.param('a$$b', {}, 'a$b', id='double-dollar'),
    pytest.param('$${BRIM_T_A}', {'BRIM_T_A': 'no'}, '${BRIM_T_A}', id='double-dollar-escapes-brace'),
    pytest.param('$$$${X}', {}, '$${X}', id='four-dollars'),
    pytest.param('cost $5', {}, 'cost $5', id='lone-dollar'),
    pytest.param('end$', {}, 'end$', id='dollar-at-end'),
    pytest.param('$HOME', {'HOME': '/home/x'}, '$HOME', id='bare-name-untouched'),
    pytest.param('$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW', {},
                 '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW', id='bcrypt-hash-untouched'),
    pytest.param('http://${BRIM_T_A}:${BRIM_T_B:-80}/', {'BRIM_T_A': 'example.com', 'BRIM_T_B': None},
                 'http://example.com:80/', id='nested-in-text'),
    pytest.param('http://${BRIM_T_A}:${BRIM_T_B:-80}/', {'BRIM_T_A': 'h', 'BRIM_T_B': '8000'},
                 'http://h:8000/', id='nested-in-text-both-set'),
    pytest.param('100% ${BRIM_T_A}', {'BRIM_T_A': '%(x)s'}, '100% %(x)s', id='percent-still-literal'),
    pytest.param('no dollar', {}, 'no dollar', id='no-dollar'),
]


def _set_env(monkeypatch, env):
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


@pytest.mark.parametrize('raw, env, expected', ENV_CASES)
def test_read_conf_expands_environment_variables(tmp_path, monkeypatch, raw, env, expected):
    _set_env(monkeypatch, env)
    name = write(tmp_path / 'a.conf', '[brim]\nv = %s\n[wsgi]\nv = %s\n[myapp]\nv = %s\n' % (raw, raw, raw))
    conf = read_conf([name])
    for section in ('brim', 'wsgi', 'myapp'):
        assert conf.store[section]['v'] == expected
        assert conf.get(section, 'v') == expected


@pytest.mark.parametrize('raw, env, expected', ENV_CASES)
def test_expand_env_with_given_environ(raw, env, expected):
    environ = {name: value for name, value in env.items() if value is not None}
    assert expand_env(raw, environ) == expected


def test_expanded_values_are_what_typed_getters_see(tmp_path, monkeypatch):
    monkeypatch.setenv('BRIM_T_PORT', '9123')
    monkeypatch.setenv('BRIM_T_ON', 'yes')
    monkeypatch.delenv('BRIM_T_HOME', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))
    name = write(tmp_path / 'a.conf', '[s]\nport = ${BRIM_T_PORT}\non = ${BRIM_T_ON}\n'
                                      'ratio = ${BRIM_T_RATIO:-0.5}\npath = ${BRIM_T_HOME:-~}/x\n')
    conf = read_conf([name])
    assert conf.get_int('s', 'port') == 9123
    assert conf.get_bool('s', 'on') is True
    assert conf.get_float('s', 'ratio') == 0.5
    assert conf.get_path('s', 'path') == str(tmp_path / 'x')


def test_expanded_value_that_cannot_be_converted_names_expanded_value(tmp_path, monkeypatch):
    monkeypatch.setenv('BRIM_T_PORT', 'eighty')
    conf = read_conf([write(tmp_path / 'a.conf', '[s]\nport = ${BRIM_T_PORT}\n')])
    with pytest.raises(SystemExit) as caught:
        conf.get_int('s', 'port')
    assert caught.value.code == "Configuration value [s] port of 'eighty' cannot be converted to int."


def test_defaults_section_expanded_in_each_section(tmp_path, monkeypatch):
    monkeypatch.setenv('BRIM_T_A', 'a')
    conf = read_conf([write(tmp_path / 'a.conf', '[DEFAULT]\nd = ${BRIM_T_A}\n[s]\n[t]\n')])
    assert conf.get('s', 'd') == conf.get('t', 'd') == 'a'


ENV_ERRORS = [
    # (value, reason after "[s] o = <value>: ")
    pytest.param('${BRIM_T_MISSING}',
                 'environment variable BRIM_T_MISSING is not set (give a default: ${BRIM_T_MISSING:-value})',
                 id='unset-without-default'),
    pytest.param('http://${BRIM_T_MISSING}:80/',
                 'environment variable BRIM_T_MISSING is not set (give a default: ${BRIM_T_MISSING:-value})',
                 id='unset-in-text'),
    pytest.param('${BRIM_T_MISSING',
                 "'${' without a closing '}' (write $$ for a literal $)", id='unclosed'),
    pytest.param('a ${', "'${' without a closing '}' (write $$ for a literal $)", id='unclosed-at-end'),
    pytest.param('${}', "'${}' is not ${NAME} or ${NAME:-default} (NAME: a letter or _, then letters, "
                 'digits or _; write $$ for a literal $)', id='empty-name'),
    pytest.param('${1X}', "'${1X}' is not ${NAME} or ${NAME:-default} (NAME: a letter or _, then letters, "
                 'digits or _; write $$ for a literal $)', id='name-starts-with-digit'),
    pytest.param('${A-B}', "'${A-B}' is not ${NAME} or ${NAME:-default} (NAME: a letter or _, then letters, "
                 'digits or _; write $$ for a literal $)', id='dash-without-colon'),
    pytest.param('${A:b}', "'${A:b}' is not ${NAME} or ${NAME:-default} (NAME: a letter or _, then letters, "
                 'digits or _; write $$ for a literal $)', id='colon-without-dash'),
    pytest.param('${ A }', "'${ A }' is not ${NAME} or ${NAME:-default} (NAME: a letter or _, then letters, "
                 'digits or _; write $$ for a literal $)', id='spaces-in-name'),
]


@pytest.mark.parametrize('raw, reason', ENV_ERRORS)
def test_read_conf_bad_expansion_raises_conf_error_when_asked(tmp_path, monkeypatch, raw, reason):
    monkeypatch.delenv('BRIM_T_MISSING', raising=False)
    name = write(tmp_path / 'a.conf', '[s]\nfine = 1\no = %s\n' % raw)
    with pytest.raises(ConfError) as caught:
        read_conf([name], exit_on_read_exception=False)
    assert (caught.value.section, caught.value.option, caught.value.value) == ('s', 'o', raw)
    assert str(caught.value) == '[s] o = %r: %s' % (raw, reason)
    assert '\n' not in str(caught.value)


@pytest.mark.parametrize('raw, reason', ENV_ERRORS)
def test_read_conf_bad_expansion_exits_with_one_line(tmp_path, monkeypatch, raw, reason):
    monkeypatch.delenv('BRIM_T_MISSING', raising=False)
    name = write(tmp_path / 'a.conf', '[s]\no = %s\n' % raw)
    with pytest.raises(SystemExit) as caught:
        read_conf([name])
    assert caught.value.code == 'Could not read conf: [s] o = %r: %s' % (raw, reason)


@pytest.mark.parametrize('raw, reason', ENV_ERRORS)
def test_expand_env_bad_value_raises_value_error(raw, reason):
    with pytest.raises(ValueError) as caught:
        expand_env(raw, {})
    assert str(caught.value) == reason


def test_expand_env_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv('BRIM_T_A', 'from-os')
    assert expand_env('${BRIM_T_A}') == 'from-os'


def test_expand_env_error_in_multiline_value_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv('BRIM_T_MISSING', raising=False)
    name = write(tmp_path / 'a.conf', '[s]\no = first\n  ${BRIM_T_MISSING}\n')
    with pytest.raises(ConfError) as caught:
        read_conf([name], exit_on_read_exception=False)
    assert '\n' not in str(caught.value)
    assert "[s] o = 'first\\n${BRIM_T_MISSING}': environment variable BRIM_T_MISSING" in str(caught.value)


@pytest.mark.parametrize('spelling, env', [
    pytest.param('${BRIM_T_DIR}/b.conf', {'BRIM_T_DIR': 'DIR'}, id='variable'),
    pytest.param('${BRIM_T_DIR:-sub}/b.conf', {'BRIM_T_DIR': None}, id='relative-default'),
    pytest.param('"${BRIM_T_DIR}/b.conf"', {'BRIM_T_DIR': 'DIR'}, id='quoted'),
    pytest.param('${BRIM_T_REL}', {'BRIM_T_REL': 'sub/b.conf'}, id='relative-from-variable'),
])
def test_additional_confs_expanded_before_split(tmp_path, monkeypatch, spelling, env):
    env = {name: (str(tmp_path / 'sub') if value == 'DIR' else value) for name, value in env.items()}
    _set_env(monkeypatch, env)
    (tmp_path / 'sub').mkdir()
    included = write(tmp_path / 'sub' / 'b.conf', '[s]\no = from b\n')
    main = write(tmp_path / 'a.conf', '[brim]\nadditional_confs = %s\n[s]\no = from a\n' % spelling)
    conf = read_conf([main])
    assert conf.files == [main, included]
    assert conf.get('s', 'o') == 'from b'
    assert conf.get('brim', 'additional_confs') == expand_env(spelling)


def test_additional_confs_variable_with_spaces_needs_quotes(tmp_path, monkeypatch):
    spaced = tmp_path / 'a dir'
    spaced.mkdir()
    included = write(spaced / 'b.conf', '[s]\no = from b\n')
    monkeypatch.setenv('BRIM_T_DIR', str(spaced))
    main = write(tmp_path / 'a.conf', '[brim]\nadditional_confs = "${BRIM_T_DIR}/b.conf"\n')
    assert read_conf([main]).files == [main, included]


def test_additional_confs_unset_variable_is_conf_error(tmp_path, monkeypatch):
    monkeypatch.delenv('BRIM_T_DIR', raising=False)
    main = write(tmp_path / 'a.conf', '[brim]\nadditional_confs = ${BRIM_T_DIR}/b.conf\n')
    with pytest.raises(ConfError) as caught:
        read_conf([main], exit_on_read_exception=False)
    assert str(caught.value) == ("[brim] additional_confs = '${BRIM_T_DIR}/b.conf': environment variable "
                                 'BRIM_T_DIR is not set (give a default: ${BRIM_T_DIR:-value})')
    with pytest.raises(SystemExit) as exited:
        read_conf([main])
    assert exited.value.code == 'Could not read conf: %s' % caught.value


def test_included_conf_values_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv('BRIM_T_A', 'included')
    write(tmp_path / 'b.conf', '[s]\no = ${BRIM_T_A}\n')
    main = write(tmp_path / 'a.conf', '[brim]\nadditional_confs = b.conf\n')
    assert read_conf([main]).get('s', 'o') == 'included'
