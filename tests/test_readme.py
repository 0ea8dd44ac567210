"""README.md's and the documentation's Python blocks run as a reader runs them.

Each file's ```python blocks run in order, in a fresh interpreter started in a
temporary directory outside the source tree (so the installed cbptt is
imported, and files the examples write land there), with MPLBACKEND=Agg. A
block that uses names from the blocks before it starts with a comment saying
so (``# Continues the block above: ...``) and runs in their namespace; every
other block runs in a namespace of its own, so it must run on its own, as a
reader who copies just that block would run it. A block marked as continuing
must use a name an earlier block defined, so the marker is never noise.

Blocks that need an optional package that is not installed (torch, or
matplotlib for the plots) are left out, and the test says which.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
# Pages whose blocks another test runs, with what it needs around them (a
# local Dask cluster, closed and its environment restored).
RUN_ELSEWHERE = {"docs/user_guide/more_data.md": "tests/test_dask.py"}
BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)
CONTINUES = re.compile(r"#\s*continues\b", flags=re.I)

# What some pages' blocks print, as their comments say.
EXPECTED_OUTPUT = {
    "README.md": ["test R^2:", "(8, 50, 16)"],
    "docs/user_guide/functional.md": ["(8, 50, 16)", "True None"],
    "docs/user_guide/persistence.md": ["RNNClassifier ['down' 'up'] True\nTrue\nTrue"],
    "docs/user_guide/datasets.md": ["(1000, 110, 2) (1000,)", "1.0"],
}

# The runner, in the subprocess: blocks from a JSON file, each exec'd in a
# fresh namespace or (when it says it continues) in the current one.
RUNNER = r"""
import json, sys, warnings
blocks = json.load(open(sys.argv[1]))
namespace = None
for index, (source, continues) in enumerate(blocks):
    code = compile(source, f"{sys.argv[2]}, python block {index + 1}", "exec")
    if continues:
        if namespace is None:
            sys.exit(f"block {index + 1} says it continues, but no block ran before it")
        defined = set(namespace) - {"__name__", "__builtins__"}
        names = set(code.co_names) | {n for c in code.co_consts
                                      if hasattr(c, "co_names") for n in c.co_names}
        if not names & defined:
            sys.exit(f"block {index + 1} says it continues, but uses no name "
                     "of the blocks before it")
    else:
        namespace = {"__name__": "__main__"}
    print(f"--- block {index + 1}", flush=True)
    exec(code, namespace)
"""


def python_blocks(path):
    """The file's Python blocks as (source, continues) pairs, in order."""
    return [(source, bool(CONTINUES.match(source.lstrip())))
            for source in BLOCK.findall(path.read_text(encoding="utf-8"))]


def missing_optional(source):
    """The optional package a block needs and that is not installed, or None."""
    needs = {"torch": r"^\s*import torch\b",
             "matplotlib": r"cbptt\.plotting|^\s*import matplotlib"}
    for package, pattern in needs.items():
        if re.search(pattern, source, flags=re.M) and \
                importlib.util.find_spec(package) is None:
            return package
    return None


def test_every_documentation_file_is_covered():
    """The README and the user guide hold Python blocks for this test to run,
    and the README's first fenced block is still the two commands."""
    names = {str(p.relative_to(ROOT)) for p in FILES if python_blocks(p)}
    for page in ["README.md", "docs/index.md", "docs/user_guide/estimators.md",
                 "docs/user_guide/functional.md",
                 "docs/user_guide/seeing_bptt.md",
                 "docs/user_guide/datasets.md",
                 "docs/user_guide/persistence.md",
                 "docs/user_guide/errors_and_safety.md"]:
        assert page in names
    first = re.search(r"^```\w*\n(.*?)^```", (ROOT / "README.md").read_text(),
                      flags=re.S | re.M).group(1)
    commands = [line.split("#")[0].strip() for line in first.splitlines()]
    assert [c for c in commands if c] == [
        "pip install . && cbptt",
        'pip install ".[test,torch,docs]" && pytest']


@pytest.mark.parametrize(
    "path", [p for p in FILES if python_blocks(p)
             and str(p.relative_to(ROOT)) not in RUN_ELSEWHERE],
    ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run_in_order(path, tmp_path):
    name = str(path.relative_to(ROOT))
    blocks = python_blocks(path)
    kept = []
    left_out = []
    for index, (source, continues) in enumerate(blocks):
        package = missing_optional(source)
        if package is None and not (continues and kept and kept[-1] is None):
            kept.append((source, continues))
        else:
            left_out.append(f"block {index + 1} ({package or 'continues one left out'})")
            kept.append(None)
    runnable = [block for block in kept if block is not None]
    if not runnable:
        pytest.skip(f"{name}: every block needs {', '.join(left_out)}")
    (tmp_path / "blocks.json").write_text(json.dumps(runnable))
    (tmp_path / "runner.py").write_text(RUNNER)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "runner.py", "blocks.json", name], cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f"{name}: a Python block failed\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-5000:]}")
    # every block that prints something printed it
    outputs = proc.stdout.split("--- block ")[1:]
    for (source, _), output in zip(runnable, outputs):
        if re.search(r"^\s*print\(", source, flags=re.M):
            assert output.split("\n", 1)[1].strip(), (name, source[:200])
    for text in EXPECTED_OUTPUT.get(name, []):
        assert text in proc.stdout, (name, text, proc.stdout[-2000:])
    if left_out:
        pytest.skip(f"{name}: ran {len(runnable)} blocks; left out "
                    f"{', '.join(left_out)}: not installed")


def test_readme_links_work_on_a_package_index_page():
    """A package index shows README.md without the repository around it: every
    link and image is an absolute URL, and each image on the repository's raw
    content names a file that is in the repository."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    assert images and links
    for url in links:
        assert url.startswith("https://"), url
    raw = "https://raw.githubusercontent.com/cbptt/cbptt/main/"
    for url in images:
        assert url.startswith(raw), url
        assert (ROOT / url[len(raw):]).is_file(), url
    # the documentation site's pages the README links to are pages it builds
    from cbptt._docs import DOCS_URL
    for url in links:
        if url.startswith(DOCS_URL):
            page = url[len(DOCS_URL):].split("#")[0]
            if page.startswith("auto_examples/"):
                continue                    # generated from examples/
            source = ROOT / "docs" / page.replace(".html", "")
            assert any(source.with_suffix(s).is_file() for s in (".md", ".rst")), url
    assert len(text.splitlines()) <= 200
