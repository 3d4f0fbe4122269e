"""Tests for brim.stats: layout, bucket views, roll-up and real shared memory."""

import json
import os
import time

import pytest

from brim.stats import STAT_TYPES, BucketStats, SharedStats, StatsLayout

WSGI_STATS = [('start_time', 'worker'), ('request_count', 'sum'), ('status_2xx_count', 'sum'),
              ('lowest', 'min'), ('highest', 'max')]
LAYOUT_INPUT = [
    ('wsgi', [('0', WSGI_STATS), ('1', WSGI_STATS)]),
    ('tcp', [('0', [('start_time', 'worker'), ('connection_count', 'sum')])]),
    ('daemons', [('daemon_sample', [('start_time', 'daemon'), ('iterations', 'daemon'), ('last_run', 'daemon')]),
                 ('other', [('start_time', 'daemon')])]),
]


def make_layout():
    return StatsLayout(LAYOUT_INPUT)


# ---- layout ----------------------------------------------------------------------

def test_layout_assigns_distinct_cells_after_start_time():
    layout = make_layout()
    cells = [cell for bucket in layout.index.values() for cell in bucket.values()]
    assert len(cells) == len(set(cells))
    assert sorted(cells) == list(range(1, layout.cells))
    assert 0 not in cells  # cell 0 is the server's start_time
    assert layout.cells == 1 + 2 * len(WSGI_STATS) + 2 + 3 + 1


def test_layout_buckets_and_types():
    layout = make_layout()
    assert layout.buckets == {'wsgi': ['0', '1'], 'tcp': ['0'], 'daemons': ['daemon_sample', 'other']}
    assert layout.types['wsgi'] == dict(WSGI_STATS)
    assert layout.types['tcp'] == {'start_time': 'worker', 'connection_count': 'sum'}
    assert list(layout.index[('wsgi', '1')]) == [name for name, _ in WSGI_STATS]


@pytest.mark.parametrize('stats, cells, types', [
    ([('a', 'sum'), ('a', 'max')], 2, {'a': 'sum'}),  # first type wins, one cell
    ([('a', 'sum'), ('b', 'sum'), ('a', 'sum')], 3, {'a': 'sum', 'b': 'sum'}),
    ([], 1, {}),
])
def test_layout_duplicate_stat_names(stats, cells, types):
    layout = StatsLayout([('s', [('0', stats)])])
    assert layout.cells == cells
    assert layout.types['s'] == types


def test_layout_empty():
    layout = StatsLayout([])
    assert layout.cells == 1
    assert layout.to_json() == []
    stats = SharedStats(layout)
    assert stats.snapshot() == {'start_time': 0}


@pytest.mark.parametrize('bad_type', ['average', 'Sum', '', 'counter'])
def test_layout_unknown_type(bad_type):
    with pytest.raises(ValueError) as caught:
        StatsLayout([('s', [('0', [('x', bad_type)])])])
    assert str(caught.value) == 'stat %r has type %r, not one of %s' % ('x', bad_type, ' '.join(STAT_TYPES))


def test_stat_types():
    assert STAT_TYPES == ('worker', 'daemon', 'sum', 'min', 'max')


@pytest.mark.parametrize('layout_input', [
    LAYOUT_INPUT,
    [],
    [('wsgi', [])],
    [('s', [('0', [('a', 'sum'), ('a', 'max')])])],
])
def test_layout_json_round_trip(layout_input):
    layout = StatsLayout(layout_input)
    data = json.loads(json.dumps(layout.to_json()))
    again = StatsLayout.from_json(data)
    assert again.index == layout.index
    assert again.types == layout.types
    assert again.buckets == layout.buckets
    assert again.cells == layout.cells
    assert again.to_json() == data


# ---- BucketStats -----------------------------------------------------------------

@pytest.fixture
def shared():
    return SharedStats(make_layout())


def test_bucket_starts_at_zero(shared):
    bucket = shared.bucket('wsgi', '0')
    assert isinstance(bucket, BucketStats)
    assert {name: bucket.get(name) for name in dict(WSGI_STATS)} == dict.fromkeys(dict(WSGI_STATS), 0)


@pytest.mark.parametrize('ops, expected', [
    ([('set', 5)], 5),
    ([('incr',)], 1),
    ([('incr',), ('incr',), ('incr',)], 3),
    ([('set', 10), ('incr',)], 11),
    ([('set', 2 ** 64 - 1)], 2 ** 64 - 1),
    ([('set', 2 ** 64 - 1), ('incr',)], 0),
    ([('set', 2 ** 64)], 0),
    ([('set', 2 ** 64 + 7)], 7),
    ([('set', -1)], 2 ** 64 - 1),
    ([('set', 3.9)], 3),
    ([('set', 5), ('set', 0)], 0),
    ([('add', 4096)], 4096),
    ([('set', 10), ('add', 5), ('incr',)], 16),
    ([('set', 2 ** 64 - 2), ('add', 3)], 1),
    ([('set', 5), ('add', -2)], 3),
    ([('add', 2.9)], 2),
])
def test_bucket_set_incr_get(shared, ops, expected):
    bucket = shared.bucket('wsgi', '1')
    for op in ops:
        getattr(bucket, op[0])('request_count', *op[1:])
    assert bucket.get('request_count') == expected


def test_buckets_are_separate(shared):
    a = shared.bucket('wsgi', '0')
    b = shared.bucket('wsgi', '1')
    t = shared.bucket('tcp', '0')
    a.set('request_count', 7)
    b.incr('request_count')
    t.set('start_time', 9)
    assert (a.get('request_count'), b.get('request_count')) == (7, 1)
    assert (a.get('start_time'), b.get('start_time'), t.get('start_time')) == (0, 0, 9)
    assert shared.start_time == 0


@pytest.mark.parametrize('method, args', [('get', ()), ('set', (1,)), ('incr', ()), ('add', (2,))])
def test_bucket_undeclared_stat(shared, method, args):
    bucket = shared.bucket('tcp', '0')
    with pytest.raises(KeyError) as caught:
        getattr(bucket, method)('request_count', *args)
    assert 'request_count' in str(caught.value)
    assert 'stats_conf' in str(caught.value)


@pytest.mark.parametrize('subserver, bucket', [('nope', '0'), ('wsgi', '2'), ('daemons', '0')])
def test_unknown_bucket(shared, subserver, bucket):
    with pytest.raises(KeyError):
        shared.bucket(subserver, bucket)


def test_start_time_property(shared):
    shared.start_time = 1763600000
    assert shared.start_time == 1763600000
    assert shared.cells[0] == 1763600000
    assert shared.snapshot()['start_time'] == 1763600000


# ---- snapshot (SPEC §5) ------------------------------------------------------------

def test_snapshot_zeros_reported(shared):
    snap = shared.snapshot()
    assert snap == {
        'start_time': 0,
        'wsgi': {
            'request_count': 0, 'status_2xx_count': 0, 'lowest': 0, 'highest': 0,
            '0': dict.fromkeys(dict(WSGI_STATS), 0),
            '1': dict.fromkeys(dict(WSGI_STATS), 0),
        },
        'tcp': {'connection_count': 0, '0': {'start_time': 0, 'connection_count': 0}},
        'daemons': {
            'daemon_sample': {'start_time': 0, 'iterations': 0, 'last_run': 0},
            'other': {'start_time': 0},
        },
    }


def test_snapshot_rolls_up_sum_min_max(shared):
    shared.start_time = 100
    w0 = shared.bucket('wsgi', '0')
    w1 = shared.bucket('wsgi', '1')
    for bucket, values in ((w0, (101, 7, 6, 3, 50)), (w1, (102, 5, 5, 9, 40))):
        for (name, _), value in zip(WSGI_STATS, values, strict=True):
            bucket.set(name, value)
    shared.bucket('tcp', '0').set('connection_count', 3)
    d = shared.bucket('daemons', 'daemon_sample')
    d.set('iterations', 4)
    d.set('last_run', 1763600060)
    snap = shared.snapshot()
    assert snap['start_time'] == 100
    wsgi = snap['wsgi']
    assert wsgi['request_count'] == 12
    assert wsgi['status_2xx_count'] == 11
    assert wsgi['lowest'] == 3
    assert wsgi['highest'] == 50
    # worker stats are per bucket only.
    assert 'start_time' not in wsgi
    assert wsgi['0'] == {'start_time': 101, 'request_count': 7, 'status_2xx_count': 6, 'lowest': 3, 'highest': 50}
    assert wsgi['1']['start_time'] == 102
    assert snap['tcp'] == {'connection_count': 3, '0': {'start_time': 0, 'connection_count': 3}}
    # daemon stats are never rolled up.
    assert snap['daemons'] == {
        'daemon_sample': {'start_time': 0, 'iterations': 4, 'last_run': 1763600060},
        'other': {'start_time': 0},
    }
    # JSON-able, integer values.
    assert json.loads(json.dumps(snap)) == snap


def test_snapshot_roll_up_only_over_buckets_that_have_the_stat():
    layout = StatsLayout([('s', [('0', [('m', 'min')]), ('1', [('other', 'sum')]), ('2', [('m', 'min')])])])
    shared = SharedStats(layout)
    shared.bucket('s', '0').set('m', 5)
    shared.bucket('s', '2').set('m', 8)
    shared.bucket('s', '1').set('other', 1)
    snap = shared.snapshot()['s']
    assert snap['m'] == 5
    assert snap['other'] == 1


def test_snapshot_sum_is_not_wrapped():
    layout = StatsLayout([('s', [('0', [('n', 'sum')]), ('1', [('n', 'sum')])])])
    shared = SharedStats(layout)
    shared.bucket('s', '0').set('n', 2 ** 64 - 1)
    shared.bucket('s', '1').set('n', 2)
    assert shared.snapshot()['s']['n'] == 2 ** 64 + 1


def test_snapshot_from_rebuilt_layout_reads_same_cells(shared):
    shared.bucket('wsgi', '1').set('request_count', 42)
    other = SharedStats.__new__(SharedStats)
    other.layout = StatsLayout.from_json(shared.layout.to_json())
    other.cells = shared.cells
    assert other.snapshot() == shared.snapshot()
    assert other.snapshot()['wsgi']['1']['request_count'] == 42


# ---- shared memory across fork ------------------------------------------------------

def _wait_child(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    return None


@pytest.mark.timeout(30)
def test_value_written_by_forked_child_is_read_by_parent(shared):
    shared.start_time = 1
    pid = os.fork()
    if pid == 0:  # child: write its bucket, exit without running pytest teardown
        code = 1
        try:
            bucket = shared.bucket('wsgi', '1')
            bucket.set('request_count', 12345)
            bucket.incr('request_count')
            shared.bucket('daemons', 'daemon_sample').set('last_run', 2 ** 64 - 1)
            code = 0
        finally:
            os._exit(code)
    try:
        status = _wait_child(pid)
        assert status is not None, 'child did not exit in time'
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    assert shared.bucket('wsgi', '1').get('request_count') == 12346
    snap = shared.snapshot()
    assert snap['wsgi']['request_count'] == 12346
    assert snap['daemons']['daemon_sample']['last_run'] == 2 ** 64 - 1
    assert snap['start_time'] == 1


@pytest.mark.timeout(30)
def test_parent_write_after_fork_seen_by_child(shared):
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(write_fd)
            os.read(read_fd, 1)  # wait for the parent's write
            code = 0 if shared.bucket('tcp', '0').get('connection_count') == 77 else 2
        finally:
            os._exit(code)
    os.close(read_fd)
    try:
        shared.bucket('tcp', '0').set('connection_count', 77)
        os.write(write_fd, b'x')
        status = _wait_child(pid)
        assert status is not None, 'child did not exit in time'
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, 'child did not see the value'
    finally:
        os.close(write_fd)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
