"""Conformance: every cell of the registry (``cbptt._cells.CELLS``) meets one contract.

A new cell gets these tests by its registry entry and its reference forward
equations in ``reference.CELL_FORWARD_REF``: the forward pass equals the
NumPy reference, every gradient equals central differences of that
reference (float64), truncated BPTT is the sum of independent windows, float32
follows float64, edge sizes work, bad input is refused by name, the thread
count changes no bit, the estimators' network computes what the functional
API computes, a fitted model survives pickle, save/load and the PyTorch state
dict, torch's own module (where there is one) computes the same, and
diagnostics use the fitted architecture.
"""
import copy
import pickle

import numpy as np
import pytest

from cbptt import RNNRegressor, load
from cbptt._activations import ACTIVATIONS
from cbptt._cells import CELLS, make_cell
from conftest import central_diff, rel_err
from reference import CELL_FORWARD_REF

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning")   # fits of 3 epochs

CELL_NAMES = list(CELLS)
STATE_GRAD = {"h": "h0", "c": "c0"}       # state name -> gradient field


def _cell(name, activation="tanh"):
    return make_cell(name, activation)


def _weights(cell, I, H, rng, dtype=np.float64):
    """Random weights of the cell's shapes, scaled so that |net| stays O(1)."""
    return {name: (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(dtype)
            for name, shape, _ in cell.param_specs(I, H)}


def _states(cell, B, H, rng, dtype=np.float64):
    return tuple((rng.standard_normal((B, H)) * 0.5).astype(dtype)
                 for _ in cell.state_names)


def _problem(name, B=3, T=6, I=2, H=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    cell = _cell(name)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    return cell, x, _weights(cell, I, H, rng, dtype), _states(cell, B, H, rng,
                                                              dtype)


def _reference(cell, x, w, state=None):
    return CELL_FORWARD_REF[cell.name](
        np.asarray(x, np.float64), {k: np.asarray(v, np.float64)
                                    for k, v in w.items()},
        cell.activation, None if state is None else
        tuple(np.asarray(s, np.float64) for s in state))


def test_every_registered_cell_has_a_reference():
    assert set(CELL_FORWARD_REF) == set(CELLS)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_registry_entry_fulfils_the_contract(name):
    cls = CELLS[name]
    assert cls.name == name
    assert len(set(cls.gates)) == len(cls.gates)
    assert set(cls.activations) <= set(ACTIVATIONS)
    assert cls.state_names[0] == "h"
    assert cls.torch_module in (None, "RNN", "LSTM", "GRU")
    names = cls.weight_names()
    assert names[0] == "weight_ih" and any(n.startswith("bias") for n in names)
    for I, H in [(1, 1), (3, 5)]:
        specs = {n: (shape, decay) for n, shape, decay in cls.param_specs(I, H)}
        assert specs["weight_ih"] == ((cls.n_blocks() * H, I), True)
        assert cls.hidden_size(specs["weight_ih"][0]) == H
        for n, (shape, decay) in specs.items():
            assert decay == n.startswith("weight")
    # an accepted activation is kept; a cell without activations ignores it
    for act in ACTIVATIONS:
        cell = make_cell(name, act)
        if cls.activations:
            assert cell.activation == act
    with pytest.raises(ValueError, match="cell='nope' is not supported"):
        make_cell("nope", "tanh")


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_forward_matches_reference(name, with_state):
    cell, x, w, s0 = _problem(name)
    state = s0 if with_state else None
    fwd = cell.api_forward(x, w, state)
    h_ref, final_ref = _reference(cell, x, w, state)
    assert rel_err(fwd.h, h_ref) < 1e-12
    for got, ref in zip(cell.api_final_state(fwd), final_ref):
        assert rel_err(got, ref) < 1e-12


@pytest.mark.parametrize("name", CELL_NAMES)
def test_every_gradient_matches_central_differences(name):
    cell, x, w, s0 = _problem(name, B=2, T=5, I=3, H=3, seed=1)
    g = np.random.default_rng(2).standard_normal((2, 5, 3))
    grads = cell.api_backward(cell.api_forward(x, w, s0), g, None)
    params = dict(w, x=x.copy())
    params.update({STATE_GRAD[n]: s.copy() for n, s in zip(cell.state_names, s0)})

    def loss():
        state = tuple(params[STATE_GRAD[n]] for n in cell.state_names)
        h, _ = _reference(cell, params["x"], {k: params[k] for k in w}, state)
        return float((h * g).sum())

    for key in params:
        fd = central_diff(loss, params, key)
        assert rel_err(getattr(grads, key), fd) < 1e-7, key


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_truncation_is_the_sum_of_independent_windows(name, k):
    # windows [0, k), [k, 2k), ...: each window's BPTT starts from the state
    # the full forward pass carried into it, and no error crosses a boundary
    cell, x, w, s0 = _problem(name, T=7, seed=3)
    g = np.random.default_rng(4).standard_normal((3, 7, 4))
    full = cell.api_backward(cell.api_forward(x, w, s0), g, k)
    sums = {n: 0.0 for n in w}
    state = s0
    for t0 in range(0, 7, k):
        fwd = cell.api_forward(x[:, t0:t0 + k], w, state)
        part = cell.api_backward(fwd, g[:, t0:t0 + k], None)
        for n in w:
            sums[n] = sums[n] + getattr(part, n)
        np.testing.assert_allclose(full.x[:, t0:t0 + k], part.x, atol=1e-13)
        state = cell.api_final_state(fwd)
    for n in w:
        np.testing.assert_allclose(getattr(full, n), sums[n], rtol=1e-12,
                                   atol=1e-13, err_msg=n)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_float32_follows_float64(name):
    cell, x, w, s0 = _problem(name, seed=5)
    g = np.random.default_rng(6).standard_normal((3, 6, 4))
    f64 = cell.api_forward(x, w, s0)
    f32 = cell.api_forward(x.astype(np.float32),
                           {k: v.astype(np.float32) for k, v in w.items()},
                           tuple(s.astype(np.float32) for s in s0))
    assert f32.h.dtype == np.float32
    assert rel_err(f32.h, f64.h) < 1e-5
    b64 = cell.api_backward(f64, g, None)
    b32 = cell.api_backward(f32, g.astype(np.float32), None)
    for n in w:
        assert getattr(b32, n).dtype == np.float32
        assert rel_err(getattr(b32, n), getattr(b64, n)) < 1e-4, n


@pytest.mark.parametrize("B, T, I, H", [(1, 1, 1, 1), (1, 7, 1, 2),
                                        (5, 1, 3, 1), (2, 3, 4, 17)])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_edge_sizes(name, B, T, I, H):
    cell, x, w, s0 = _problem(name, B, T, I, H, seed=7)
    fwd = cell.api_forward(x, w, s0)
    assert rel_err(fwd.h, _reference(cell, x, w, s0)[0]) < 1e-12
    grads = cell.api_backward(fwd, np.ones((B, T, H)), None)
    assert grads.x.shape == (B, T, I)
    for n, v in w.items():
        assert getattr(grads, n).shape == v.shape


@pytest.mark.parametrize("name", CELL_NAMES)
def test_bad_input_is_refused_by_name(name):
    cell, x, w, s0 = _problem(name)
    bad = x.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"\bx\b"):
        cell.api_forward(bad, w, s0)
    wrong = dict(w, weight_ih=w["weight_ih"][:, :-1])
    with pytest.raises(ValueError, match="weight_ih"):
        cell.api_forward(x, wrong, s0)
    fwd = cell.api_forward(x, w, s0)
    with pytest.raises(ValueError, match="grad_h"):
        cell.api_backward(fwd, np.ones((3, 5, 4)), None)


# A batch large enough for every cell's kernels to take two threads; widths
# that split into thread parts off the vector length (G*H = 387 and 579)
# and the weight gradients summed after the time loop, split by columns.
@pytest.mark.parametrize("B, T, I, H, truncate, dtype", [
    (64, 20, 8, 64, 5, np.float64), (17, 3, 3, 129, None, np.float64),
    (33, 4, 3, 193, None, np.float32)])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_thread_count_changes_no_bit(name, B, T, I, H, truncate, dtype):
    threadpoolctl = pytest.importorskip("threadpoolctl",
                                        reason="threadpoolctl not installed")
    cell, x, w, s0 = _problem(name, B=B, T=T, I=I, H=H, seed=8, dtype=dtype)
    g = np.random.default_rng(9).standard_normal((B, T, H)).astype(dtype)

    def run():
        fwd = cell.api_forward(x, w, s0)
        return [fwd.h] + list(cell.api_backward(fwd, g, truncate))

    with threadpoolctl.threadpool_limits(1):
        one = run()
    with threadpoolctl.threadpool_limits(2):
        two = run()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def _fitted(name, output="last", seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((24, 7, 2))
    y = X.sum(axis=(1, 2)) if output == "last" else X.sum(axis=2).cumsum(1)
    est = RNNRegressor(cell=name, hidden_layer_sizes=(5, 4), max_iter=3,
                       output=output, random_state=seed).fit(X, y)
    return est, X, y


@pytest.mark.parametrize("name", CELL_NAMES)
def test_network_computes_what_the_functional_api_computes(name):
    est, X, _ = _fitted(name)
    layers, out = est.coefs_[:-1], est.coefs_[-1]
    cell = make_cell(name, est.activation)
    h = X
    for w in layers:
        h = cell.api_forward(h, w).h
    z = h[:, -1] @ out["weight"].T + out["bias"]
    np.testing.assert_allclose(est.predict(X), z[:, 0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_fitted_model_round_trips(name, tmp_path):
    est, X, _ = _fitted(name)
    expected = est.predict(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X),
                                  expected)
    est.save(tmp_path / "model.cbptt")
    np.testing.assert_array_equal(load(tmp_path / "model.cbptt").predict(X),
                                  expected)
    other, _, _ = _fitted(name, seed=1)
    other.from_torch_state_dict(est.to_torch_state_dict())
    np.testing.assert_array_equal(other.predict(X), expected)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_torch_module_computes_the_cell(name):
    torch = pytest.importorskip("torch", reason="torch not installed")
    cls = CELLS[name]
    if cls.torch_module is None:
        pytest.skip(f"no torch module computes the {name} cell")
    est, X, _ = _fitted(name)
    sd = est.to_torch_state_dict()
    # the first recurrent layer as a torch module of one layer
    module = getattr(torch.nn, cls.torch_module)(
        input_size=X.shape[2], hidden_size=est.hidden_layer_sizes[0],
        batch_first=True, dtype=torch.float64)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()
                            if k.endswith("_l0")})
    with torch.no_grad():
        h, _ = module(torch.from_numpy(X))
    cell = make_cell(name, est.activation)
    ours = cell.api_forward(X, est.coefs_[0]).h
    np.testing.assert_allclose(h.numpy(), ours, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_diagnostics_use_the_fitted_architecture(name):
    est, X, y = _fitted(name, output="sequence")
    signals = est.error_signals(X, y)
    flow = est.error_flow(X)
    others = [c for c in CELLS if c != name]
    est.set_params(cell=others[0], activation="relu", output="last")
    for before, after in zip(signals, est.error_signals(X, y)):
        assert after.cell == name
        np.testing.assert_array_equal(before.delta, after.delta)
        np.testing.assert_array_equal(before.h, after.h)
    np.testing.assert_array_equal(flow.ratio, est.error_flow(X).ratio)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_activation_counts_only_where_the_cell_has_one(name):
    """warm_start and partial_fit continue the fitted network: a changed
    activation refuses that for a cell that uses it (Elman), and changes
    nothing for a cell of fixed nonlinearities (LSTM, GRU, CEC), which
    ignores it; the continued fit equals one without the change."""
    est, X, y = _fitted(name)
    twin = copy.deepcopy(est)
    other = "relu" if est.activation != "relu" else "tanh"
    est.set_params(activation=other)
    if CELLS[name].activations:
        with pytest.raises(ValueError, match=f"activation='{other}' differs"):
            est.partial_fit(X, y)
        return
    est.partial_fit(X, y)
    twin.partial_fit(X, y)
    np.testing.assert_array_equal(est.predict(X), twin.predict(X))
    est.set_params(warm_start=True, max_iter=2).fit(X, y)
