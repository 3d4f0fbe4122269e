"""Sphinx configuration for the brim documentation (the tutorial and the API reference).

Build (CI does, through tests/test_docs.py; warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Document the checkout's brim, whether or not it is installed.
sys.path.insert(0, os.path.dirname(HERE))

import brim

project = 'brim'
author = 'brim contributors'
copyright = 'brim contributors'
version = release = brim.__version__

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
    'myst_parser',
]

source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']

# autodoc: every module page documents what the module defines, in source order.
autodoc_default_options = {
    'members': True,
    'undoc-members': True,
    'show-inheritance': True,
    'member-order': 'bysource',
}
autodoc_typehints = 'signature'
autodoc_inherit_docstrings = True
# Defaults as written (``umask=0o022``, not 18).
autodoc_preserve_defaults = True
autoclass_content = 'class'

# The docstrings are Google style (Args:, Returns:, Raises:, Yields:, Attributes:).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Attributes: sections become fields of the class (not attribute entries that
# would clash with autodoc's own entries for dataclass fields and slots).
napoleon_use_ivar = True

# Markdown pages (the tutorial): ``code`` fences and headings as in GitHub.
myst_heading_anchors = 3

html_theme = 'alabaster'
html_title = 'brim %s' % release
html_static_path: list = []
