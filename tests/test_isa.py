"""cbptt.set_isa / get_isa and CBPTT_ISA: one call switches every compiled
module, the code path really changes, bad levels are refused with a clear
error, and a model fitted at one level predicts at another."""
import doctest
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import cbptt
from cbptt import _isa

from conftest import ISA_LEVELS

BEST = ISA_LEVELS[_isa._cpu_level()]
RUNS = ISA_LEVELS[:_isa._cpu_level() + 1]


@pytest.fixture(autouse=True)
def restore_level():
    before = cbptt.get_isa()
    yield
    cbptt.set_isa(before)


@pytest.mark.parametrize("level", RUNS)
def test_one_call_sets_every_module(level):
    assert cbptt.set_isa(level) == level
    assert cbptt.get_isa() == level
    levels = _isa._module_levels()
    assert set(levels) == {"_elman", "_lstm", "_scan"}
    assert set(levels.values()) == {level}


def test_none_is_the_cpus_best_and_names_are_case_insensitive():
    assert cbptt.set_isa("BASELINE") == "baseline"
    assert cbptt.set_isa(None) == BEST
    assert set(_isa._module_levels().values()) == {BEST}


@pytest.mark.parametrize("level,exc,match", [
    ("sse4", ValueError, "unknown level 'sse4'"),
    ("", ValueError, "unknown level ''"),
    ("1", ValueError, "unknown level '1'"),
    ("avx-512", ValueError, "unknown level"),
    (1, TypeError, "must be a string"),
    (b"avx2", TypeError, "got bytes"),
])
def test_unknown_levels_are_refused(level, exc, match):
    cbptt.set_isa("baseline")
    with pytest.raises(exc, match=match):
        cbptt.set_isa(level)
    assert cbptt.get_isa() == "baseline"            # unchanged


@pytest.mark.parametrize("level", [v for v in ISA_LEVELS if v not in RUNS])
def test_a_level_the_cpu_cannot_run_is_refused(level):
    with pytest.raises(ValueError, match=f"this CPU cannot run '{level}'.*"
                                         f"it runs .*'{BEST}'"):
        cbptt.set_isa(level)
    assert cbptt.get_isa() == BEST


def test_modules_that_disagree_are_reported():
    """Only the private per-module twins can split them; get_isa says so."""
    if len(RUNS) < 2:
        pytest.skip("this CPU runs one level only")
    cbptt.set_isa(BEST)
    from cbptt import _lstm
    _lstm._limit_simd_level(0)
    with pytest.raises(RuntimeError, match="different instruction sets"):
        cbptt.get_isa()
    cbptt.set_isa(None)
    assert cbptt.get_isa() == BEST


def _elman_lstm_results(rng_seed=3):
    rng = np.random.default_rng(rng_seed)
    B, T, I, H = 9, 12, 5, 37
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    out = []
    for G, fwd, bwd in ((1, cbptt.rnn_forward, cbptt.rnn_backward),
                        (4, cbptt.lstm_forward, cbptt.lstm_backward)):
        w_ih = (rng.standard_normal((G * H, I)) * 0.4).astype(np.float32)
        w_hh = (rng.standard_normal((G * H, H)) / np.sqrt(H)).astype(np.float32)
        b = (rng.standard_normal(G * H) * 0.1).astype(np.float32)
        res = fwd(x, w_ih, w_hh, b)
        g = bwd(res, np.ones((B, T, H), np.float32))
        out += [res.h, g.weight_hh, g.weight_ih, g.bias]
    return out


def test_set_isa_switches_the_code_path():
    """The baseline has no fused multiply-add on x86-64, AVX2 and AVX-512
    do: float32 products round differently, so some result differs in its
    last bits, and every one agrees to float32 accuracy."""
    if len(RUNS) < 2:
        pytest.skip("this CPU runs one level only: nothing to switch")
    cbptt.set_isa("baseline")
    base = _elman_lstm_results()
    assert all(np.array_equal(a, b) for a, b in zip(base, _elman_lstm_results()))
    cbptt.set_isa(BEST)
    best = _elman_lstm_results()
    assert any(not np.array_equal(a, b) for a, b in zip(base, best))
    for a, b in zip(base, best):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_a_model_fitted_at_one_level_predicts_at_another():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 8, 2))
    y = X[:, :, 0].mean(axis=1)
    cbptt.set_isa("baseline")
    est = cbptt.RNNRegressor(hidden_layer_sizes=(6,), max_iter=3,
                             random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    at_base = est.predict(X)
    cbptt.set_isa(BEST)
    np.testing.assert_allclose(est.predict(X), at_base, rtol=1e-12, atol=1e-12)


def _run_python(code, env_value, tmp_path):
    env = dict(os.environ)
    env.pop("CBPTT_ISA", None)
    if env_value is not None:
        env["CBPTT_ISA"] = env_value
    # from a directory without the source folder: the installed cbptt
    return subprocess.run([sys.executable, "-W", "always", "-c", code],
                          capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)


CODE = ("import cbptt; from cbptt import _isa; "
        "print(cbptt.get_isa(), sorted(set(_isa._module_levels().values())))")


@pytest.mark.parametrize("value", ["baseline", "0"])
def test_environment_variable_lowers_every_module(value, tmp_path):
    p = _run_python(CODE, value, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[0] == "baseline"
    assert "['baseline']" in p.stdout
    assert "RuntimeWarning" not in p.stderr


@pytest.mark.parametrize("value", ["avx3", "AVX2", " avx2"])
def test_unknown_environment_value_warns_and_is_ignored(value, tmp_path):
    p = _run_python(CODE, value, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "names no instruction set and is ignored" in p.stderr
    assert p.stdout.split()[0] == BEST


def test_environment_level_above_the_cpu_warns(tmp_path):
    if BEST == "avx512":
        pytest.skip("this CPU runs every level")
    p = _run_python(CODE, "avx512", tmp_path)
    assert p.returncode == 0, p.stderr
    assert "this CPU cannot run it" in p.stderr
    assert p.stdout.split()[0] == BEST


def test_docstring_examples_run():
    result = doctest.testmod(_isa, verbose=False)
    assert result.attempted >= 5 and result.failed == 0
