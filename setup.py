"""Packaging for brim; ``pip install .`` gives the ``brimd`` console script."""

import os

from setuptools import find_packages, setup


def version():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, 'brim', '__init__.py')) as fp:
        for line in fp:
            if line.startswith('__version__'):
                return line.split('=')[1].strip().strip("'\"")
    raise RuntimeError('no __version__ in brim/__init__.py')


setup(
    name='brim',
    version=version(),
    description='brimd: WSGI, TCP, UDP servers and daemons from one INI conf, supervised, with live stats',
    long_description=open('README.md').read() if os.path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(exclude=['tests', 'tests.*', 'bench', 'bench.*', 'examples', 'examples.*', 'docs']),
    install_requires=[
        # 0.40.3 fixed CVE-2025-58068 (request smuggling in eventlet.wsgi).
        'eventlet>=0.40.3',
        'bcrypt>=4.0',
    ],
    extras_require={
        'proctitle': ['setproctitle'],
        'test': ['pytest>=7', 'pytest-timeout>=2', 'trustme>=1.0', 'setproctitle', 'ruff', 'mypy', 'hypothesis>=6',
                 'sphinx>=7', 'myst-parser>=2', 'flask>=2.2', 'django>=4.2', 'prometheus_client>=0.17'],
    },
    entry_points={'console_scripts': ['brimd = brim.server.cli:main']},
    classifiers=[
        'Programming Language :: Python :: 3',
        'Environment :: No Input/Output (Daemon)',
        'Topic :: Internet :: WWW/HTTP :: WSGI :: Server',
    ],
)
