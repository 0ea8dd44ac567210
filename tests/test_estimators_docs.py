"""The documentation runs: the estimators' and the functional API's docstring
examples and every code
block of README.md's "## Estimators", "## Seeing BPTT" and "## Functional
API" sections."""
import doctest
import re
import warnings
from pathlib import Path

import pytest
from sklearn.exceptions import ConvergenceWarning

import cbptt._estimators

README = Path(__file__).resolve().parent.parent / "README.md"


def test_docstring_examples():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = doctest.testmod(cbptt._estimators, verbose=False)
    assert result.attempted >= 10 and result.failed == 0


def test_functional_docstring_examples():
    import cbptt.functional
    result = doctest.testmod(cbptt.functional, verbose=False)
    assert result.attempted >= 40 and result.failed == 0


def readme_blocks():
    text = README.read_text()
    section = text.split("\n## Estimators\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.parametrize("index", range(3))
def test_readme_estimators_section_runs(index, tmp_path, monkeypatch, capsys):
    blocks = readme_blocks()
    assert len(blocks) == 3
    if "import torch" in blocks[index]:
        pytest.importorskip("torch", reason="torch not installed")
    monkeypatch.chdir(tmp_path)      # GridSearchCV workers: not the repo root
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exec(compile(blocks[index], f"README block {index}", "exec"), {})
    out = capsys.readouterr().out
    assert out.strip()


def seeing_bptt_blocks():
    text = README.read_text()
    section = text.split("\n## Seeing BPTT\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_seeing_bptt_section_runs(tmp_path, monkeypatch, capsys):
    """The blocks build on each other (the plots draw the flows and signals
    of the block before), so they run in order in one namespace."""
    blocks = seeing_bptt_blocks()
    assert len(blocks) == 6
    try:
        import matplotlib  # noqa: F401
        monkeypatch.setenv("MPLBACKEND", "Agg")
    except ImportError:
        blocks = [b for b in blocks if "cbptt.plotting" not in b]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for index, block in enumerate(blocks):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            exec(compile(block, f"README Seeing BPTT block {index}", "exec"),
                 namespace)
    out = capsys.readouterr().out
    assert "record_error_flow" in README.read_text()
    assert out.count("\n") > len(blocks)


def test_readme_functional_api_section_runs(capsys):
    """The "## Functional API" blocks build on each other: run them in order
    in one namespace; the time-major example prints what it says."""
    text = README.read_text()
    section = text.split("\n## Functional API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2
    namespace = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"README Functional API block {index}", "exec"),
             namespace)
    out = capsys.readouterr().out
    assert "(8, 50, 16)" in out and "True None" in out
    assert "(8, 50, 48) (48,) (8, 50, 48)" in out          # the GRU example
