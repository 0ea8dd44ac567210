"""Sphinx configuration of cbptt's documentation site.

Build (with the docs extra, ``pip install ".[docs]"``, and cbptt installed):
``sphinx-build -W docs docs/_build/html``. The API pages come from the installed
package's numpydoc docstrings (autosummary, into ``api/generated/``, where the
estimators' HTML repr links point: ``cbptt._docs.DOCS_URL``); the gallery runs the
scripts in ``../examples``; the user guide is MyST Markdown whose Python blocks
tests/test_readme.py runs. Nothing here reaches the network (no intersphinx), so the
build works offline and in CI.
"""
import cbptt
from cbptt._docs import DOCS_URL

project = "cbptt"
author = "The cbptt developers"
copyright = "2026, The cbptt developers"
release = version = cbptt.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/README.md"]

# API reference: one page per public object, from the docstrings.
autosummary_generate = True
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# MyST: ```python fences are code (the tests run them); {include} pulls in
# BENCHMARKS.md and CHANGELOG.md from the repository root.
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# The gallery: small versions of the demo's parts, run at build time.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "doc_module": ("cbptt",),
    "reference_url": {"cbptt": None},
    "download_all_examples": False,
    "show_memory": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
}

# Straight quotes: the estimators' HTML repr links each parameter to its entry by a text
# fragment of its type line ("cell,-{"lstm", ...}"), which must match the page's text.
smartquotes = False

html_theme = "pydata_sphinx_theme"
html_title = f"cbptt {release}"
html_baseurl = DOCS_URL
html_theme_options = {
    "github_url": "https://github.com/cbptt/cbptt",
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_show_sourcelink = False
