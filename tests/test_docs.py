"""The documentation site: it builds with warnings as errors, and the
estimators' HTML representation links to its API pages.

The build (``sphinx-build -W``) runs on a copy of ``docs/``, ``examples/``,
BENCHMARKS.md and CHANGELOG.md in a temporary directory, so that the
generated API stubs and gallery pages never land in the source tree; it
documents the installed cbptt. Without the ``docs`` extra the build tests
skip, saying what is missing; the link tests need only scikit-learn.
"""
import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

from cbptt import RNNClassifier, RNNRegressor
from cbptt._docs import DOCS_URL

ROOT = Path(__file__).resolve().parent.parent
DOCS_EXTRA = ("sphinx", "pydata_sphinx_theme", "numpydoc", "sphinx_gallery",
              "myst_parser", "matplotlib")
ESTIMATORS = [RNNRegressor, RNNClassifier]


def param_links(estimator):
    """The parameter links of the estimator's HTML repr: {name: URL}."""
    links = re.findall(r'href="([^"]*#:~:text=[^"]*)"', estimator._repr_html_())
    return {unquote(link.split("#:~:text=")[1]).split(",-")[0]: html.unescape(link)
            for link in links}


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_html_repr_links_to_the_api_page(cls):
    est = cls(hidden_layer_sizes=(4,))
    url = f"{DOCS_URL}api/generated/cbptt.{cls.__name__}.html"
    assert DOCS_URL == "https://cbptt.github.io/cbptt/"
    assert est._get_doc_link() == url
    assert f'href="{url}"' in est._repr_html_()
    links = param_links(est)
    # every parameter links to its own entry on that page
    assert set(links) == set(est.get_params())
    assert all(link.startswith(url + "#:~:text=") for link in links.values())


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory):
    missing = [m for m in DOCS_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed (no {', '.join(missing)}): "
                    "pip install \".[docs]\"")
    src = tmp_path_factory.mktemp("docs-src")
    for name in ("docs", "examples"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns(
            "_build", "generated", "auto_examples", "sg_execution_times.rst"))
    for name in ("BENCHMARKS.md", "CHANGELOG.md"):
        shutil.copy(ROOT / name, src / name)
    out = src / "html"
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("PYTHONPATH", None)
    tic = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "docs", str(out)], cwd=src, env=env, capture_output=True, text=True,
        timeout=1200)
    print(f"sphinx-build: {time.perf_counter() - tic:.1f} s")
    assert proc.returncode == 0, (
        f"sphinx-build -W failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return out


def test_docs_build_with_warnings_as_errors(built_docs):
    pages = ["index.html", "install.html", "performance.html", "developer.html",
             "changelog.html", "api/index.html", "auto_examples/index.html",
             "user_guide/estimators.html", "user_guide/functional.html",
             "user_guide/seeing_bptt.html", "user_guide/datasets.html",
             "user_guide/persistence.html", "user_guide/errors_and_safety.html"]
    for page in pages:
        assert (built_docs / page).is_file(), page
    # the gallery ran every example and kept its figure
    for example in sorted((ROOT / "examples").glob("plot_*.py")):
        assert (built_docs / "auto_examples" / f"{example.stem}.html").is_file()
        assert list((built_docs / "_images").glob(f"sphx_glr_{example.stem}_001.png"))
    # BENCHMARKS.md is part of the performance page
    performance = (built_docs / "performance.html").read_text(encoding="utf-8")
    assert "Peak resident memory" in performance


def page_text(path):
    """A built page's visible text, tags dropped and spaces collapsed."""
    text = re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8"))
    return " ".join(html.unescape(text).split())


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_html_repr_links_lead_to_built_pages(built_docs, cls):
    """The estimator's link is a page of the built site, and each parameter's
    text fragment (its name, then its type line) is on that page."""
    est = cls()
    page = built_docs / est._get_doc_link()[len(DOCS_URL):]
    assert page.is_file()
    text = page_text(page)
    for name, link in param_links(est).items():
        fragment = unquote(link.split("#:~:text=")[1])
        param, type_line = fragment.split(",-", 1)
        assert param == name
        assert re.search(re.escape(name) + r"\s*:?\s*" + re.escape(type_line),
                         text), (name, type_line)
