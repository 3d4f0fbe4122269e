"""The example files in contrib/: present, parseable, and in step with the health app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from brim.wsgi_health import WSGIHealth

CONTRIB = Path(__file__).resolve().parents[1] / 'contrib'
DEFAULTS = {option.name: option.default for option in WSGIHealth.OPTIONS}


def test_files_exist():
    for name in ('brimd.service', 'haproxy.cfg', 'kubernetes.yaml', 'prometheus.yml'):
        assert (CONTRIB / name).is_file(), name


def test_haproxy_checks_the_health_path():
    text = (CONTRIB / 'haproxy.cfg').read_text()
    assert re.search(r'^\s*http-check send meth GET uri %s\b' % re.escape(DEFAULTS['path']), text, re.M)
    assert re.search(r'^\s*http-check expect status 200$', text, re.M)
    assert re.search(r'^\s*server \S+ \S+ check$', text, re.M)


def test_kubernetes_manifest():
    yaml = pytest.importorskip('yaml')
    docs = {doc['kind']: doc for doc in yaml.safe_load_all((CONTRIB / 'kubernetes.yaml').read_text())}
    assert set(docs) == {'ConfigMap', 'Deployment', 'Service'}
    pod = docs['Deployment']['spec']['template']['spec']
    container = pod['containers'][0]
    assert container['readinessProbe']['httpGet']['path'] == DEFAULTS['path']
    assert container['livenessProbe']['httpGet']['path'] == DEFAULTS['live_path']
    conf = docs['ConfigMap']['data']['brimd.conf']
    graceful = int(re.search(r'^graceful_timeout = (\d+)$', conf, re.M).group(1))
    pre_stop = int(re.search(r'sleep (\d+)', ' '.join(container['lifecycle']['preStop']['exec']['command'])).group(1))
    assert pod['terminationGracePeriodSeconds'] > pre_stop + graceful
    assert 'call = brim.wsgi_health.WSGIHealth' in conf


def test_prometheus_conf():
    yaml = pytest.importorskip('yaml')
    conf = yaml.safe_load((CONTRIB / 'prometheus.yml').read_text())
    job = conf['scrape_configs'][0]
    assert job['metrics_path'] == '/metrics'
    assert len(job['static_configs'][0]['targets']) > 1
