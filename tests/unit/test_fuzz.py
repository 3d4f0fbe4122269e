"""Property tests (Hypothesis) for brim's parsers of untrusted or operator text.

Each target must raise only the errors its docstring names, return the shape
it documents, and never hang (pytest-timeout stops the file if one does;
how long they take is bench/fuzz_http.py's business):

* ``brim.conf.read_conf`` and ``Conf``'s typed getters;
* ``brim.http.QueryParser``;
* ``brim.httpform.parse_attrs``, ``iter_form`` and ``CappedFileLikeObject``;
* ``brim.log.access_line`` (SPEC §6 quoting);
* the ``/stats`` JSON (``brim.stats.SharedStats.snapshot``, SPEC §5);
* ``brim.server.http1.parse_head`` once it exists (skipped before); the
  long run of the same properties is ``bench/fuzz_http.py``.

Example counts are modest so the file runs in well under 30 s. No example
database is kept (``database=None``): a failure is reported with its shrunk
input. (Hypothesis still caches Unicode tables in ``.hypothesis/``, which
git-ignores itself.)

The bugs these properties found are fixed; each has a plain test below
with the input that found it.
"""

import configparser
import importlib.util
import io
import json
import math
import os
import re
import urllib.parse

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from brim.conf import FALSE_VALUES, TRUE_VALUES, Conf, read_conf
from brim.http import HTTPBadRequest, QueryParser
from brim.httpform import CappedFileLikeObject, FormInvalid, FormTooLarge, iter_form, parse_attrs
from brim.log import access_line, quote_log_field
from brim.stats import STAT_TYPES, SharedStats, StatsLayout

# derandomize: the same examples on every run, so CI never fails by luck;
# bench/fuzz_http.py explores new ones.
# No deadline: timings belong in bench/ (pytest-timeout stops a hang).
FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True)
SLOW = settings(FUZZ, max_examples=60)   # examples that write files or map memory

# Text that can be written as UTF-8 (no lone surrogates), and any str at all.
texts = st.text(alphabet=st.characters(blacklist_categories=('Cs',)), max_size=80)
any_texts = st.text(alphabet=st.characters(blacklist_categories=()), max_size=40)


def test_parse_attrs_nul_in_ext_value_charset():
    # Documented: "nothing here raises". A form part's Content-Disposition
    # comes from the request body, so a client can trigger this.
    assert parse_attrs("form-data; name*=\x00''x") == ('form-data', {'name*': "\x00''x"})


def test_iter_form_nul_in_boundary_charset():
    env = {'CONTENT_TYPE': "multipart/form-data; boundary*=\x00''x", 'wsgi.input': io.BytesIO(b'')}
    with pytest.raises(FormInvalid):
        list(iter_form(env))


def test_read_conf_nul_in_additional_confs(tmp_path):
    path = tmp_path / 'a.conf'
    path.write_text('[brim]\nadditional_confs = a\x00b\n', encoding='utf-8')
    # Documented: configparser.Error or SystemExit only (an unreadable file is skipped).
    try:
        conf = read_conf(str(path), exit_on_read_exception=False)
    except configparser.Error:
        return
    assert conf.files == [str(path)]


def test_get_path_nul_is_a_conf_error():
    with pytest.raises(SystemExit, match=r'\[s\] p of .* cannot be converted to path'):
        Conf({'s': {'p': '~\x00'}}).get_path('s', 'p')


def test_access_line_lone_surrogate():
    # e.g. an app putting os.fsdecode() of a non-UTF-8 file name in brim.log_info:
    # the original byte is logged.
    assert access_line(['\udcff']) == '%FF'


# ---- brim.conf ------------------------------------------------------------------------

@pytest.fixture(scope='module')
def conf_dir(tmp_path_factory):
    """One directory for every example (Hypothesis re-runs the test body, not the fixture)."""
    return tmp_path_factory.mktemp('conf')


_SECTION = st.text(alphabet='abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_#-', min_size=1, max_size=8).filter(
    lambda s: s != 'DEFAULT')
_OPTION = st.text(alphabet='abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_-.', min_size=1, max_size=8).filter(
    lambda s: s.lower() != 'additional_confs')
# One line of a value: anything but line breaks ('\r' is one to open()).
_VALUE_LINE = st.text(alphabet=st.characters(blacklist_categories=('Cs',), blacklist_characters='\r\n'),
                      max_size=20)
_CONTINUATION = _VALUE_LINE.filter(lambda s: s.strip() and s.strip()[0] not in '#;')
_COMMENT = st.sampled_from(['#', ';']).flatmap(lambda p: _VALUE_LINE.map(lambda t: p + t))


@st.composite
def conf_texts(draw):
    """(text, store): a conf file and the ``Conf.store`` it must give."""
    lines, store = [], {}
    for section in draw(st.lists(_SECTION, unique=True, max_size=4)):
        # (An indented [section] after an option would continue its value.)
        lines.append(draw(st.sampled_from(['[%s]', '[%s]  ', '[%s]\t'])) % section)
        options = store[section] = {}
        for option in draw(st.lists(_OPTION, unique_by=str.lower, max_size=5)):
            first = draw(_VALUE_LINE)
            more = draw(st.lists(_CONTINUATION, max_size=2))
            if draw(st.booleans()):
                lines.append(draw(_COMMENT))
            if draw(st.booleans()):
                lines.append('')
            lines.append(option + draw(st.sampled_from(['=', ' = ', ':', ' : ', '\t=\t'])) + first)
            lines.extend(draw(st.sampled_from(['  ', '\t', '    '])) + line for line in more)
            # No interpolation ("%" is literal); values stripped, lines joined with \n.
            options[option.lower()] = '\n'.join([first.strip()] + [line.strip() for line in more]).rstrip()
    eol = draw(st.sampled_from(['\n', '\r\n']))
    return eol.join(lines) + eol, store


def _write(path, text):
    with open(path, 'w', encoding='utf-8', newline='') as fp:
        fp.write(text)
    return str(path)


@SLOW
@given(case=conf_texts())
def test_read_conf_reads_back_what_was_written(conf_dir, case):
    text, store = case
    name = _write(conf_dir / 'model.conf', text)
    conf = read_conf(name, exit_on_read_exception=False)
    assert conf.files == [name]
    assert conf.store == store


# Lines a conf file is made of, to combine at random.
_CONF_LINES = st.one_of(
    texts, _COMMENT, st.just(''), st.just('[brim]'), _SECTION.map('[%s]'.__mod__), st.just('[DEFAULT]'),
    st.tuples(_OPTION, st.sampled_from(['=', ':', ' ']), _VALUE_LINE).map(''.join),
    _CONTINUATION.map('  '.__add__), st.just('['), st.just(']'), st.just('[a'), st.just('= x'),
    st.lists(st.sampled_from(['a.conf', 'b.conf', '"c.conf"', "'b.conf", 'missing.conf', '~nobody-x/c',
                              'sub/../a.conf', '"', '\\', 'x y']), max_size=3)
    .map(lambda names: 'additional_confs = ' + ' '.join(names)),
)


@SLOW
@given(bodies=st.lists(st.lists(_CONF_LINES, max_size=8).map('\n'.join), min_size=3, max_size=3),
       exit_on_error=st.booleans())
def test_read_conf_raises_only_documented_errors(conf_dir, bodies, exit_on_error):
    # Three files that may include each other (cycles too) through additional_confs.
    names = [_write(conf_dir / name, body) for name, body in zip(['a.conf', 'b.conf', 'c.conf'], bodies, strict=True)]
    try:
        conf = read_conf(names[0], exit_on_read_exception=exit_on_error)
    except configparser.Error:
        assert not exit_on_error
        return
    except SystemExit as err:
        assert exit_on_error
        # A start-up error is one line (README).
        assert isinstance(err.code, str) and err.code.startswith('Could not read conf: ')
        assert '\n' not in err.code and '\r' not in err.code
        return
    assert conf.files[0] == names[0]
    real = [os.path.realpath(name) for name in conf.files]
    assert len(set(real)) == len(real), 'a file was read twice: %r' % conf.files
    assert set(real) <= {os.path.realpath(name) for name in names}
    for section, options in conf.store.items():
        assert isinstance(section, str) and all(type(k) is str and type(v) is str for k, v in options.items())


class Refused(Exception):
    pass


def _refuse(section, option, value, conversion_type, err):
    raise Refused(conversion_type, value)


def _int_or_none(value):
    try:
        return int(value)
    except ValueError:
        return None


@FUZZ
@given(value=st.one_of(_VALUE_LINE, st.integers().map(str), st.floats().map(str),
                       st.sampled_from(TRUE_VALUES + FALSE_VALUES).map(lambda v: ' %s ' % v.upper())))
@example(value='9' * 5000)   # past int()'s digit limit: ValueError, so conf.error
@example(value='~')
def test_conf_getters_convert_or_call_error(value):
    conf = Conf({'s': {'o': value}})
    conf.error = _refuse
    assert conf.get('s', 'o') == value
    assert conf.get(('x', 's'), 'o') == value   # the first section that has it
    assert conf.get('s', 'missing', 'dflt') == 'dflt'
    for getter, kind, convert in (
            (conf.get_int, 'int', _int_or_none),
            (conf.get_float, 'float', lambda v: float(v) if _float_ok(v) else None),
            (conf.get_bool, 'boolean', lambda v: True if v.strip().lower() in TRUE_VALUES else
             False if v.strip().lower() in FALSE_VALUES else None)):
        assert getter('s', 'missing', 42) == 42
        want = convert(value)
        if want is None:
            with pytest.raises(Refused) as info:
                getter('s', 'o')
            assert info.value.args == (kind, value)
        else:
            got = getter('s', 'o')
            assert type(got) is type(want) and (got == want or (math.isnan(got) and math.isnan(want)))
    if '\x00' in value:
        with pytest.raises(Refused):
            conf.get_path('s', 'o')
    else:
        assert isinstance(conf.get_path('s', 'o'), str)
    # The default error: exit with one line naming section, option and value.
    conf = Conf({'s': {'o': value}})
    if _int_or_none(value) is None:
        with pytest.raises(SystemExit) as info:
            conf.get_int('s', 'o')
        assert '\n' not in info.value.code and '[s] o of %r' % value in info.value.code


def _float_ok(value):
    try:
        float(value)
    except ValueError:
        return False
    return True


# ---- brim.http.QueryParser ---------------------------------------------------------------

# PEP 3333: QUERY_STRING is the raw bytes decoded as Latin-1; also any str at all.
query_strings = st.one_of(st.binary(max_size=80).map(lambda b: b.decode('latin-1')), any_texts,
                          st.lists(st.sampled_from(['a', 'b', '=', '&', '+', '%', '%2', '%41', '%zz', '%ff', ';',
                                                    '1', '-1', '1.5', 'nan', 'yes', 'off', '\xc3\xa9']),
                                   max_size=12).map(''.join))


@FUZZ
@given(query=query_strings, default=st.sampled_from([None, True, False, 7]))
def test_query_parser_raises_only_bad_request(query, default):
    parser = QueryParser(query)
    assert isinstance(parser.query, dict)
    for name, values in parser.query.items():
        assert isinstance(name, str) and values and all(isinstance(v, str) for v in values)
    for name in list(parser.query)[:4] + ['surely-absent']:
        absent = name not in parser.query
        assert parser.get(name, 'dflt') == ('dflt' if absent else parser.query[name][-1])
        assert parser.get(name, 'dflt', last_only=False) == ('dflt' if absent else parser.query[name])
        for getter, kind in ((parser.get_int, int), (parser.get_float, float), (parser.get_bool, bool)):
            try:
                got = getter(name, default)
            except HTTPBadRequest as err:
                assert not absent and err.code == 400
                assert repr(name).encode('utf-8') in err.body   # "the body names the parameter"
                continue
            if absent:
                assert got is default
            elif kind is bool and not parser.get(name):
                assert got is (not default)   # ?verbose means "not default"
            else:
                assert type(got) is kind


_QUERY_TEXT = st.text(alphabet=st.characters(blacklist_categories=('Cs',)), max_size=10)


@FUZZ
@given(pairs=st.lists(st.tuples(_QUERY_TEXT, _QUERY_TEXT), max_size=6), raw=st.booleans())
def test_query_parser_round_trips(pairs, raw):
    if raw:
        # Unescaped UTF-8 as a WSGI server hands it over (bytes as Latin-1, PEP 3333).
        assume(not any(c in name + value for name, value in pairs for c in '&=+%'))
        query = '&'.join('%s=%s' % pair for pair in pairs).encode('utf-8').decode('latin-1')
    else:
        query = urllib.parse.urlencode(pairs)
    parser = QueryParser(query)
    for name, _value in pairs:
        assert parser.get(name, last_only=False) == [v for n, v in pairs if n == name]


@FUZZ
@given(number=st.integers(-10 ** 30, 10 ** 30), real=st.floats(allow_nan=False),
       flag=st.sampled_from(TRUE_VALUES + FALSE_VALUES), shout=st.booleans())
def test_query_parser_typed_round_trips(number, real, flag, shout):
    parser = QueryParser(urllib.parse.urlencode({'n': number, 'r': repr(real),
                                                 'f': ' %s ' % (flag.upper() if shout else flag)}))
    assert parser.get_int('n') == number
    assert parser.get_float('r') == real
    assert parser.get_bool('f') is (flag in TRUE_VALUES)


# ---- brim.httpform.parse_attrs ----------------------------------------------------------

_PARAM_NAME = st.text(alphabet='abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_.', min_size=1, max_size=8)
_ATTR_PIECES = st.sampled_from(['form-data', ';', ';', '=', '"', '\\', '*', "'", "UTF-8''", "utf-8'en'",
                                "iso-8859-1''", "nosuch''", "rot13''", "idna''", ' ', '\t', 'name', 'filename',
                                'filename*', '%e2%82%ac', '%ff', '%', 'x'])
headers_ = st.one_of(st.text(max_size=60), st.lists(st.one_of(_ATTR_PIECES, st.text(max_size=3)),
                                                    max_size=20).map(''.join))


@FUZZ
@given(header=headers_)
@example(header='a; *=utf-8\'\'x; "=";=')
def test_parse_attrs_never_raises(header):
    value, attrs = parse_attrs(header)
    assert value == header.partition(';')[0].strip()
    assert isinstance(attrs, dict)
    for name, param in attrs.items():
        assert type(name) is str and type(param) is str
        assert name == name.strip() and name == name.lower()


def _quoted(text):
    # RFC 9110 §5.6.4 quoted-string; quoted-pair for '"' and '\'.
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"')


@FUZZ
@given(value=_PARAM_NAME, params=st.lists(st.tuples(_PARAM_NAME, texts, st.booleans()), max_size=5),
       space=st.sampled_from(['', ' ', '  ', '\t']))
def test_parse_attrs_round_trips_quoted_strings(value, params, space):
    header = value + ''.join(';%s%s=%s' % (space, name, _quoted(text) if quote else text)
                             for name, text, quote in params)
    # Unquoted values are tokens (no ';', '"', no surrounding whitespace to keep).
    assume(all(quote or (text and text == text.strip() and not set(text) & set(';"') and
                         text.strip(' \t') == text) for _, text, quote in params))
    expected = {}
    for name, text, _ in params:
        expected[name.lower()] = text
    assert parse_attrs(header) == (value, expected)


@FUZZ
@given(name=_PARAM_NAME, text=texts, plain=st.one_of(st.none(), _PARAM_NAME),
       charset=st.sampled_from(['UTF-8', 'utf-8', 'Utf8', '']), first=st.booleans())
def test_parse_attrs_decodes_rfc8187(name, text, plain, charset, first):
    ext = '%s*=%s\'en\'%s' % (name, charset, urllib.parse.quote(text.encode('utf-8'), safe=''))
    params = [ext] if plain is None else ([ext, '%s="%s"' % (name, plain)] if first else
                                          ['%s=%s' % (name, plain), ext])
    # The extended form wins over the plain one, wherever it comes.
    assert parse_attrs('attachment; ' + '; '.join(params)) == ('attachment', {name.lower(): text})


# ---- brim.httpform.iter_form -----------------------------------------------------------

_BOUNDARY = st.text(alphabet="abcXYZ0123456789'()+_,-./:=? ", min_size=1, max_size=70).filter(
    lambda b: b[-1] != ' ')
_HEADER = st.tuples(st.text(alphabet='abcdefgXYZ-', min_size=1, max_size=10),
                    st.text(alphabet=st.characters(blacklist_categories=('Cs',), blacklist_characters='\r\n'),
                            max_size=20))
# Content near the delimiter: CRLF, dashes, bits of boundary-like text.
_CONTENT = st.lists(st.one_of(st.binary(max_size=20), st.sampled_from([b'\r\n', b'--', b'\r\n--', b'\r', b'-',
                                                                       b'abc', b'\r\n-- '])),
                    max_size=8).map(b''.join)


@st.composite
def forms(draw):
    """(content_type, body, parts): a well-formed multipart body and the parts it holds."""
    boundary = draw(_BOUNDARY).encode()
    delimiter = b'\r\n--' + boundary
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        headers = draw(st.lists(_HEADER, max_size=3))
        content = draw(_CONTENT)
        assume(delimiter not in content)
        parts.append((headers, content))
    preamble = draw(st.one_of(st.just(b''), _CONTENT.map(lambda c: c + b'\r\n')))
    assume(delimiter not in b'\r\n' + preamble)
    padding = st.sampled_from([b'', b' ', b'\t ', b'  '])
    body = preamble
    for headers, content in parts:
        body += b'--' + boundary + draw(padding) + b'\r\n'
        body += b''.join(('%s:%s%s\r\n' % (n, draw(st.sampled_from(['', ' ', '  '])), v)).encode() for n, v in headers)
        body += b'\r\n' + content + b'\r\n'
    body += b'--' + boundary + b'--'
    parts = [([(n, v.strip()) for n, v in headers], content) for headers, content in parts]
    quoted = draw(st.booleans()) or not set(boundary.decode()) <= set("abcXYZ0123456789'+_-.")
    ctype = 'multipart/form-data; boundary=%s' % (_quoted(boundary.decode()) if quoted else boundary.decode())
    return ctype, body, parts


@FUZZ
@given(form=forms(), chunk=st.integers(1, 80), epilogue=st.binary(max_size=20), length=st.booleans(),
       trailing=st.binary(max_size=20))
def test_iter_form_round_trips(form, chunk, epilogue, length, trailing):
    ctype, body, parts = form
    body += epilogue
    env = {'CONTENT_TYPE': ctype, 'wsgi.input': io.BytesIO(body + (trailing if length else b''))}
    if length:
        env['CONTENT_LENGTH'] = str(len(body))
    got = [(part.headers, part.fp.read()) for part in iter_form(env, read_chunk_size=chunk)]
    assert got == parts
    if length:
        # PEP 3333: never read past CONTENT_LENGTH.
        assert env['wsgi.input'].tell() <= len(body)


@FUZZ
@given(form=forms(), cut=st.integers(0, 10 ** 6), chunk=st.integers(1, 80))
def test_iter_form_truncated_body_is_invalid(form, cut, chunk):
    ctype, body, _parts = form
    body = body[:cut % len(body)]   # anything short of the close delimiter
    env = {'CONTENT_TYPE': ctype, 'wsgi.input': io.BytesIO(body), 'CONTENT_LENGTH': str(len(body))}
    with pytest.raises(FormInvalid) as info:
        for part in iter_form(env, read_chunk_size=chunk):
            part.fp.read()
    assert not isinstance(info.value, FormTooLarge)   # 400, not 413


@FUZZ
@given(form=forms(), cap=st.integers(0, 60), chunk=st.integers(1, 80))
def test_capped_file_like_object(form, cap, chunk):
    ctype, body, parts = form
    env = {'CONTENT_TYPE': ctype, 'wsgi.input': io.BytesIO(body)}
    for part, (_headers, content) in zip(iter_form(env, read_chunk_size=chunk), parts, strict=True):
        capped = CappedFileLikeObject(part.fp, cap)
        if len(content) > cap:
            with pytest.raises(EOFError):
                capped.read()
            part.fp.read()
        else:
            assert capped.read() == content and capped.amount_read == len(content)


_CONTENT_TYPES = st.one_of(
    st.builds('multipart/form-data; boundary={}'.format, st.sampled_from(['b', '"b"', '"b c"', '', '""', '"',
                                                                         'b' * 71, '"\r"', '\xe9', '\u20ac'])),
    st.just('multipart/mixed; boundary=b'), st.just('text/plain; boundary=b'), st.just(''), headers_)
_BODY_PIECES = st.sampled_from([b'--b', b'--b--', b'\r\n', b'\r\n--b\r\n', b'\r\n--b--', b'a: b\r\n',
                                b'\r\n\r\n', b' folded\r\n', b':\r\n', b'no colon\r\n', b'--b  \r\n', b'--bx\r\n',
                                b'x' * 50])


@FUZZ
@given(ctype=_CONTENT_TYPES, body=st.lists(st.one_of(_BODY_PIECES, st.binary(max_size=8)), max_size=20)
       .map(b''.join), length=st.one_of(st.none(), st.integers(-1, 400).map(str), st.sampled_from(['', 'x', '1e3'])),
       chunk=st.integers(1, 64), max_header_size=st.integers(0, 120),
       max_part_size=st.one_of(st.none(), st.integers(0, 60)), cap=st.one_of(st.none(), st.integers(0, 60)))
def test_iter_form_raises_only_form_errors(ctype, body, length, chunk, max_header_size, max_part_size, cap):
    env = {'CONTENT_TYPE': ctype, 'wsgi.input': io.BytesIO(body)}
    if length is not None:
        env['CONTENT_LENGTH'] = length
    total = 0
    try:
        for part in iter_form(env, read_chunk_size=chunk, max_header_size=max_header_size,
                              max_part_size=max_part_size):
            assert all(type(n) is str and type(v) is str for n, v in part.headers)
            data = CappedFileLikeObject(part.fp, cap).read() if cap is not None else part.fp.read()
            assert max_part_size is None or len(data) <= max_part_size
            total += len(data)
            assert total <= len(body)
    except FormInvalid:   # FormTooLarge is one
        pass
    except EOFError:
        assert cap is not None   # only CappedFileLikeObject raises it


# ---- brim.log.access_line (SPEC §6) ---------------------------------------------------------

log_fields = st.one_of(st.none(), any_texts, st.binary(max_size=20), st.integers(), st.floats(),
                       st.sampled_from(['', b'', '-', '%', '%25', ' ', '\x7f', '\xff', '\u20ac', 'a b']))


def _field_bytes(field):
    if isinstance(field, bytes):
        return field
    text = field if isinstance(field, str) else str(field)
    try:
        return text.encode('latin-1')
    except UnicodeEncodeError:
        pass
    try:
        return text.encode('utf-8', 'surrogateescape')  # os.fsdecode'd bytes come back
    except UnicodeEncodeError:
        return text.encode('utf-8', 'surrogatepass')


_LOG_TOKEN = re.compile(r'(?:[!-$&-~]|%[0-9A-F]{2})+')


@FUZZ
@given(fields=st.lists(log_fields, max_size=20))
def test_access_line_quotes_every_field(fields):
    line = access_line(fields)
    assert all(0x21 <= ord(c) <= 0x7e or c == ' ' for c in line)   # no control or non-ASCII chars
    tokens = line.split(' ') if fields else []
    assert len(tokens) == len(fields)   # no space inside a field
    for token, field in zip(tokens, fields, strict=True):
        assert token == quote_log_field(field)
        if field is None or (isinstance(field, (str, bytes)) and not field):
            assert token == '-'
        else:
            # Round trip: printable ASCII but '%', or %XX escapes; they decode to the field's bytes.
            assert _LOG_TOKEN.fullmatch(token), token
            assert urllib.parse.unquote_to_bytes(token) == _field_bytes(field)


# ---- /stats JSON (brim.stats, SPEC §5) -------------------------------------------------------

_MASK = (1 << 64) - 1
_STAT = st.text(alphabet='abcdefghijklmnopqrstuvwxyz_', min_size=1, max_size=10)


@st.composite
def stats_setups(draw):
    """(layout rows, values): subservers, their buckets and stats, and what to set."""
    rows = []
    for subserver in draw(st.lists(st.sampled_from(['wsgi', 'wsgi2', 'wsgi#admin', 'tcp', 'udp', 'daemons']),
                                   unique=True, max_size=4)):
        if subserver == 'daemons':
            buckets = draw(st.lists(_STAT.map('d_'.__add__), unique=True, max_size=3))
        else:
            buckets = [str(i) for i in range(draw(st.integers(0, 3)))]
        # One type per stat name within a subserver, as apps declare them.
        kinds = draw(st.dictionaries(_STAT, st.sampled_from(STAT_TYPES), max_size=5))
        kinds['start_time'] = 'daemon' if subserver == 'daemons' else 'worker'
        pool = sorted(kinds.items())
        # A stat may not be named like a bucket: both are keys of one JSON object.
        assume(not set(kinds) & set(buckets))
        rows.append((subserver, [(bucket, draw(st.lists(st.sampled_from(pool), max_size=6))) for bucket in buckets]))
    values = draw(st.lists(st.integers(-(2 ** 70), 2 ** 70), min_size=64, max_size=64))
    return rows, values


@SLOW
@given(setup=stats_setups(), start=st.integers(0, _MASK), untouched=st.integers(0, 3))
def test_stats_json_reports_every_cell(setup, start, untouched):
    rows, values = setup
    layout = StatsLayout(rows)
    # The layout crosses a process boundary as JSON (the probe); it must come back the same.
    again = StatsLayout.from_json(json.loads(json.dumps(layout.to_json())))
    assert (again.index, again.types, again.buckets) == (layout.index, layout.types, layout.buckets)
    stats = SharedStats(again)
    stats.start_time = start
    expected = {}
    count = 0
    for subserver, buckets in rows:
        for i, (bucket, declared) in enumerate(buckets):
            view = stats.bucket(subserver, bucket)
            cells = expected[(subserver, bucket)] = {}
            for name, _kind in declared:
                cells.setdefault(name, 0)
                if i != untouched:   # leave one bucket at zero: zeros are reported too
                    value = values[count % len(values)]
                    count += 1
                    view.set(name, value)
                    cells[name] = value & _MASK
    snapshot = json.loads(json.dumps(stats.snapshot()))
    assert set(snapshot) == {'start_time'} | {subserver for subserver, _ in rows}
    assert snapshot['start_time'] == start
    for subserver, buckets in rows:
        entry = snapshot[subserver]
        rolled = {}
        for bucket, declared in buckets:
            assert entry[bucket] == expected[(subserver, bucket)]
            for name, kind in dict(reversed(declared)).items():   # a stat declared twice counts once
                if kind in ('sum', 'min', 'max'):
                    rolled.setdefault((name, kind), []).append(expected[(subserver, bucket)][name])
        assert set(entry) == {bucket for bucket, _ in buckets} | {name for name, _ in rolled}
        for (name, kind), seen in rolled.items():
            assert entry[name] == {'sum': sum, 'min': min, 'max': max}[kind](seen)
    for leaf in _leaves(snapshot):
        assert type(leaf) is int and leaf >= 0


def _leaves(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaves(value)
    else:
        yield node


@FUZZ
@given(value=st.integers(-(2 ** 70), 2 ** 70), bumps=st.integers(0, 3))
def test_bucket_values_wrap_modulo_2_64(value, bumps):
    stats = SharedStats(StatsLayout([('wsgi', [('0', [('n', 'sum')])])]))
    view = stats.bucket('wsgi', '0')
    view.set('n', value)
    for _ in range(bumps):
        view.incr('n')
    assert view.get('n') == (value + bumps) & _MASK
    with pytest.raises(KeyError):
        view.get('undeclared')


# ---- brim.server.http1.parse_head (bench/fuzz_http.py runs it long) -------------------------

def _load_bench(name):
    path = os.path.join(os.path.dirname(__file__), '..', '..', 'bench', name + '.py')
    spec = importlib.util.spec_from_file_location('bench_' + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fuzz_http = _load_bench('fuzz_http')
http1 = fuzz_http.load_parser()
needs_http1 = pytest.mark.skipif(http1 is None, reason='brim.server.http1.parse_head is not there yet')
HEADS = settings(FUZZ, max_examples=300)
# A bound only a hang would reach: bench/fuzz_http.py checks time per byte.
check = fuzz_http.Checker(http1, time_bound=60.0) if http1 is not None else None


@needs_http1
@HEADS
@given(data=fuzz_http.grammar_heads())
def test_parse_head_grammar(data):
    check.head(data)


@needs_http1
@HEADS
@given(data=st.one_of(fuzz_http.mutated_heads(), fuzz_http.raw_heads))
def test_parse_head_mutated_and_raw(data):
    check.head(data)


@needs_http1
@HEADS
@given(case=fuzz_http.valid_heads())
def test_parse_head_valid(case):
    check.valid(*case)


@needs_http1
@HEADS
@given(case=fuzz_http.limited_heads())
def test_parse_head_limits(case):
    check.limits(*case)


@needs_http1
@settings(FUZZ, max_examples=30)
@given(data=fuzz_http.big_heads(max_leading=2000))
def test_parse_head_big(data):
    check.head(data)


@needs_http1
def test_parse_head_http10_close_wins_over_keep_alive():
    # Found by test_parse_head_valid. RFC 9112 §9.3: with the "close" option the connection
    # does not persist, whatever the version.
    head = http1.parse_head(b'GET / HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n', http1.Limits())
    assert not head.keep_alive
