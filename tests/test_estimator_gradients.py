"""The estimators' training gradient is exact: stack + output layer + loss +
padding against central differences, and truncated BPTT against a loop over
the functional API."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from cbptt import (RNNRegressor, lstm_backward, lstm_forward,
                   rnn_backward, rnn_forward)
from cbptt._cells import make_cell
from cbptt._network import (Network, SoftmaxCrossEntropy, SquaredError,
                            Trainer, Workspace, predict_raw)

from conftest import central_diff, rel_err


class Capture:
    """An optimizer that records the gradient instead of updating."""

    def begin_batch(self, batch_size):
        pass

    def step(self, params, grads):
        self.grads = grads.copy()


def mean_loss(net, params, loss, output, x, lengths, target):
    """The mean training loss from the forward pass alone (NumPy)."""
    z = predict_raw(net, params, x, lengths, output)
    T, N = x.shape[:2]
    if output == "last":
        rows = z
        tgt = target
    else:
        valid = (np.ones((T, N), bool) if lengths is None
                 else np.arange(T)[:, None] < lengths[None, :])
        rows, tgt = z[valid], target[valid]
    if isinstance(loss, SquaredError):
        return 0.5 * np.sum((rows - tgt) ** 2) / rows.shape[0]
    codes = tgt.reshape(-1)
    m = rows.max(axis=1, keepdims=True)
    logp = rows - m - np.log(np.exp(rows - m).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(codes)), codes].mean()


def make_case(rng, cell, output, classify, padded, T=6, B=4, F=2,
              hidden=(3, 4), k=3):
    cell_obj = make_cell(cell, "tanh")
    net = Network(cell_obj, F, hidden, k)
    params = net.init_params(check_random_state(0), np.float64, 0.5)
    params += 0.3 * rng.standard_normal(params.shape)      # off the init
    x = rng.standard_normal((T, B, F))
    lengths = None
    if padded:
        lengths = np.array([T, 2, 5, 1][:B], dtype=np.intp)
        x[np.arange(T)[:, None] >= lengths[None, :]] = 0.0
    shape = (B,) if output == "last" else (T, B, 1)
    if classify:
        target = rng.integers(0, k, shape).astype(np.int32)
    else:
        target = rng.standard_normal(shape[:-1] + (k,) if output != "last"
                                     else (B, k))
    return net, params, x, lengths, target


@pytest.mark.parametrize("cell", ["lstm", "lstm1997", "elman", "cec"])
@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("classify", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_training_gradient_matches_finite_differences(rng, cell, output,
                                                      classify, padded):
    net, params, x, lengths, target = make_case(rng, cell, output, classify,
                                                padded)
    loss = SoftmaxCrossEntropy() if classify else SquaredError()
    T, B = x.shape[:2]
    cap = Capture()
    tr = Trainer(net, params, loss, output, None, cap,
                 Workspace(net, T, B, np.float64))
    s, n = tr.batch(x, lengths, target)
    f = lambda: mean_loss(net, params, loss, output, x, lengths, target)  # noqa: E731
    assert s / n == pytest.approx(f(), rel=1e-12)
    num = central_diff(f, {"params": params}, "params")
    assert rel_err(cap.grads, num) < 1e-7
    # The top layer's gradient buffer is left all zero for the next batch.
    if output == "last":
        assert not tr.ws._grad_top.any()


def _layer_pass(cell, p, x, state):
    """The functional API's forward for one window; returns (result, new state)."""
    if cell == "elman":
        res = rnn_forward(x, p["weight_ih"], p["weight_hh"], p["bias"], state[0])
        return res, (res.h[:, -1].copy(),)
    res = lstm_forward(x, p["weight_ih"], p["weight_hh"], p["bias"], state[0],
                       state[1], forget_gate=cell == "lstm")
    return res, (res.h[:, -1].copy(), res.c[:, -1].copy())


def _layer_grads(cell, res, grad_h):
    g = (rnn_backward(res, grad_h) if cell == "elman"
         else lstm_backward(res, grad_h))
    return {"weight_ih": g.weight_ih, "weight_hh": g.weight_hh,
            "bias": g.bias}


@pytest.mark.parametrize("cell", ["elman", "lstm", "lstm1997"])
@pytest.mark.parametrize("output", ["last", "sequence"])
def test_truncated_bptt_is_windowed_updates(rng, cell, output):
    """One epoch of bptt_truncate=k with plain SGD equals, window by window:
    forward from the carried state (h, and c for the LSTM), exact BPTT inside
    the window, an update, and the window's final state (from the old
    weights) carried on."""
    N, T, F, H, k, lr = 5, 11, 2, 4, 4, 0.05
    X = rng.standard_normal((N, T, F))
    y = rng.standard_normal((N, T)) if output == "sequence" else \
        rng.standard_normal(N)
    est = RNNRegressor(cell=cell, hidden_layer_sizes=(H,), output=output,
                       bptt_truncate=k, solver="sgd", momentum=0.0,
                       learning_rate_init=lr, alpha=0.0, clip_norm=None,
                       batch_size=N, max_iter=1, shuffle=False, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)

    net = Network(make_cell(cell, "tanh"), F, (H,), 1)
    p0 = net.init_params(check_random_state(3), np.float64, 1.0)
    (layer,), out = net.views(p0)
    p = {name: a.copy() for name, a in layer.items()}
    w_out, b_out = out["weight"].copy(), out["bias"].copy()
    state = (np.zeros((N, H)), np.zeros((N, H)))
    for t0 in range(0, T, k):
        t1 = min(T, t0 + k)
        res, new_state = _layer_pass(cell, p, X[:, t0:t1], state)
        if output == "sequence":
            hs, tgt = res.h, y[:, t0:t1, None]
        elif t1 == T:
            hs, tgt = res.h[:, -1:], y[:, None, None]
        else:
            state = new_state
            continue                            # no target in this window
        dz = (hs @ w_out.T + b_out - tgt) / (tgt.shape[0] * tgt.shape[1])
        g_out = np.einsum("ntk,nth->kh", dz, hs)
        gb_out = dz.sum(axis=(0, 1))
        grad_h = np.zeros_like(res.h)
        grad_h[:, -hs.shape[1]:] = dz @ w_out
        for name, g in _layer_grads(cell, res, grad_h).items():
            p[name] -= lr * g
        w_out -= lr * g_out
        b_out -= lr * gb_out
        state = new_state
    c = est.coefs_
    for name in p:
        np.testing.assert_allclose(c[0][name], p[name], rtol=1e-12,
                                   atol=1e-14, err_msg=name)
    np.testing.assert_allclose(c[1]["weight"], w_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c[1]["bias"], b_out, rtol=1e-12, atol=1e-14)


def test_truncation_at_least_T_is_full_bptt(rng):
    X = rng.standard_normal((12, 6, 2))
    y = rng.standard_normal((12, 6))
    kw = dict(cell="lstm", output="sequence", hidden_layer_sizes=(4,),
              max_iter=2, batch_size=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = RNNRegressor(**kw).fit(X, y)
        b = RNNRegressor(bptt_truncate=6, **kw).fit(X, y)
        c = RNNRegressor(bptt_truncate=2, **kw).fit(X, y)
    np.testing.assert_array_equal(a._params, b._params)
    assert not np.array_equal(a._params, c._params)
