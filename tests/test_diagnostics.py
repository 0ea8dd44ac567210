"""Error flow and error signals: the theory's bounds, the carousel's constant
error, finite differences, agreement with the functional backward passes,
variable lengths and bad input."""
import numpy as np
import pytest

from cbptt import functional, rnn_backward, rnn_forward
from cbptt.diagnostics import (ErrorFlow, error_flow, error_signals,
                               format_error_flow_table)

from conftest import central_diff, rel_err

needs_lstm = pytest.mark.skipif(
    not hasattr(functional, "lstm_forward"),
    reason="the CEC and LSTM layers (issue 3) are not in cbptt.functional yet")


def elman_weights(rng, H=6, I=3, scale=0.5, w_hh=None):
    return dict(weight_ih=rng.standard_normal((H, I)) * scale,
                weight_hh=(rng.standard_normal((H, H)) * scale
                           if w_hh is None else w_hh),
                bias=rng.standard_normal(H) * 0.1)


# --- error flow: Elman -------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_logistic_with_small_weights_stays_below_the_bound(seed):
    rng = np.random.default_rng(seed)
    H, T = 8, 60
    # every |w_ij| < 4/H, so ||W_hh||_2 <= H max|w| < 4 and 0.25 ||W_hh|| < 1
    w = elman_weights(rng, H=H, w_hh=rng.uniform(-3.9 / H, 3.9 / H, (H, H)))
    X = rng.standard_normal((20, T, 3)) * 2
    flow = error_flow(X, w, activation="logistic", random_state=seed)
    assert flow.bound_per_step == pytest.approx(
        0.25 * np.linalg.norm(w["weight_hh"], 2))
    assert flow.bound_per_step < 1
    tol = 1 + 1e-12
    assert flow.ratio[0] == 1.0
    assert np.all(flow.sample_ratio <= flow.bound * tol)       # every sample
    assert np.all(flow.ratio <= flow.path_bound * tol)
    assert np.all(flow.path_bound <= flow.bound * tol)
    assert np.all(np.diff(flow.ratio) < 0)                     # vanishes
    assert flow.ratio[-1] < flow.bound_per_step ** (T - 1) * tol
    # the step factors never exceed sup f' ||W||, nor the entrywise bound
    assert np.all(flow.step_factor[1:] <= flow.bound_per_step * tol)
    assert np.all(flow.step_factor_max[1:] <= 0.25 * 3.9 / H)
    assert np.isnan(flow.step_factor[0]) and np.isnan(flow.step_factor_max[0])


def test_tanh_bound_is_the_norm_of_w_hh():
    rng = np.random.default_rng(0)
    w = elman_weights(rng, H=5, scale=0.6)
    flow = error_flow(rng.standard_normal((8, 30, 3)), w, random_state=0)
    assert flow.bound_per_step == pytest.approx(np.linalg.norm(w["weight_hh"], 2))
    tol = 1 + 1e-12
    assert np.all(flow.sample_ratio <= flow.bound * tol)
    assert np.all(flow.ratio <= flow.path_bound * tol)
    assert np.all(flow.path_bound <= flow.bound * tol)
    # tanh's f' reaches 1 only at net = 0: the actual factors are smaller
    assert np.all(flow.step_factor[1:] < flow.bound_per_step)


@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
def test_ratio_agrees_with_finite_differences(activation):
    rng = np.random.default_rng(1)
    B, T, H = 3, 7, 3
    # with weight_ih = I, dL/dx(t) = weight_ih^T delta(t) = delta(t): the
    # error signals are derivatives with respect to the inputs
    w = dict(weight_ih=np.eye(H), weight_hh=rng.standard_normal((H, H)) * 0.8,
             bias=rng.standard_normal(H) * 0.3)
    x = rng.standard_normal((B, T, H)) + (1.0 if activation == "relu" else 0)
    e = rng.standard_normal((B, H))
    params = {"x": x.copy()}

    def loss():
        h = rnn_forward(params["x"], w["weight_ih"], w["weight_hh"], w["bias"],
                        activation=activation).h
        return float(np.sum(e * h[:, -1]))

    dx = central_diff(loss, params, "x")
    norms = np.linalg.norm(dx[:, ::-1], axis=2)
    expected = np.mean(norms / norms[:, :1], axis=0)
    flow = error_flow(x, w, activation=activation, direction=e)
    assert rel_err(flow.ratio, expected) < 1e-7
    assert flow.horizon == np.flatnonzero(expected > 1e-3).max()


def test_horizon_is_the_last_lag_above_the_threshold():
    rng = np.random.default_rng(2)
    w = elman_weights(rng, H=6, w_hh=np.eye(6) * 0.7)
    X = rng.standard_normal((10, 40, 3))
    for threshold in [1e-1, 1e-3, 1e-6]:
        flow = error_flow(X, w, threshold=threshold, random_state=0)
        h = flow.horizon
        assert flow.ratio[h] > threshold
        assert np.all(flow.ratio[h + 1:] <= threshold)
    assert error_flow(X, w, threshold=1e-1).horizon < error_flow(
        X, w, threshold=1e-6).horizon
    # an error that never falls below the threshold reaches the first step
    wide = error_flow(X, dict(w, weight_hh=np.eye(6)), activation="identity",
                      random_state=0)
    assert wide.horizon == 39
    np.testing.assert_allclose(wide.ratio, 1.0, rtol=1e-12)
    assert "39+" in format_error_flow_table([wide])


def test_directions_and_determinism():
    rng = np.random.default_rng(3)
    w = elman_weights(rng)
    X = rng.standard_normal((5, 12, 3))
    a = error_flow(X, w, random_state=4)
    b = error_flow(X, w, random_state=4)
    c = error_flow(X, w, random_state=5)
    np.testing.assert_array_equal(a.ratio, b.ratio)
    assert not np.array_equal(a.ratio, c.ratio)
    ones = error_flow(X, w, direction="ones")
    given = error_flow(X, w, direction=np.ones(6) * 3.0)   # scale cancels
    np.testing.assert_allclose(ones.ratio, given.ratio, rtol=1e-12)
    per_sample = error_flow(X, w, direction=np.ones((5, 6)))
    np.testing.assert_allclose(per_sample.ratio, ones.ratio, rtol=1e-12)


def test_variable_lengths_measure_each_sequence_from_its_own_end():
    rng = np.random.default_rng(4)
    w = elman_weights(rng)
    seqs = [rng.standard_normal((L, 3)) for L in (9, 5, 9, 3)]
    e = rng.standard_normal((4, 6))
    flow = error_flow(seqs, w, direction=e)
    padded = np.full((4, 9, 3), np.nan)
    for n, s in enumerate(seqs):
        padded[n, :len(s)] = s
    flow_padded = error_flow(padded, w, direction=e)
    np.testing.assert_array_equal(flow.sample_ratio, flow_padded.sample_ratio)
    for n, s in enumerate(seqs):
        alone = error_flow(s[None], w, direction=e[n])
        np.testing.assert_allclose(flow.sample_ratio[n, :len(s)], alone.ratio,
                                   rtol=1e-12)
        assert np.isnan(flow.sample_ratio[n, len(s):]).all()
    # the mean at each lag is over the sequences that long
    np.testing.assert_allclose(flow.ratio[6], flow.sample_ratio[[0, 2], 6].mean())
    assert flow.n_lags == 9


def test_error_flow_result_helpers():
    rng = np.random.default_rng(5)
    flow = error_flow(rng.standard_normal((4, 20, 3)), elman_weights(rng),
                      activation="logistic", random_state=0)
    assert isinstance(flow, ErrorFlow) and flow.name == "logistic elman"
    np.testing.assert_array_equal(flow.at([0, 5, 19]), flow.ratio[[0, 5, 19]])
    assert np.isnan(flow.at(20)[0])
    assert "logistic elman" in repr(flow) and "horizon" in repr(flow)
    table = format_error_flow_table({"A": flow, "B": flow}, lags=(1, 10, 50))
    lines = table.splitlines()
    assert lines[0] == "| model | q=1 | q=10 | q=50 | horizon | bound/step |"
    assert lines[2].startswith("| A | ") and " - |" in lines[2]
    assert len(lines) == 4


@pytest.mark.parametrize("call, exc, match", [
    (lambda X, w: error_flow(X, w, cell="rnn"), ValueError, "cell='rnn'"),
    (lambda X, w: error_flow(X, w, activation="softplus"), ValueError,
     "activation='softplus'"),
    (lambda X, w: error_flow(X, {"weight_ih": w["weight_ih"]}), ValueError,
     "lacks"),
    (lambda X, w: error_flow(X, [1, 2]), TypeError, "weights"),
    (lambda X, w: error_flow(X[0], w), ValueError, "expected 3"),
    (lambda X, w: error_flow(X, w, direction="up"), ValueError, "direction"),
    (lambda X, w: error_flow(X, w, direction=np.ones(5)), ValueError,
     "direction has shape"),
    (lambda X, w: error_flow(X, w, direction=np.zeros(6)), ValueError,
     "nonzero"),
    (lambda X, w: error_flow(X, w, threshold=0), ValueError, "threshold"),
    (lambda X, w: error_flow(X, dict(w, weight_hh=np.eye(5))), ValueError,
     "weight_hh"),
    (lambda X, w: error_flow(X.astype(complex), w), TypeError, "dtype"),
    (lambda X, w: error_flow([], w), ValueError, "empty"),
])
def test_error_flow_bad_input(call, exc, match):
    rng = np.random.default_rng(6)
    with pytest.raises(exc, match=match):
        call(rng.standard_normal((3, 8, 3)), elman_weights(rng))


def test_nan_inside_a_sequence_is_an_error():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3, 8, 3))
    X[1, 4, 0] = np.nan
    with pytest.raises(ValueError, match=r"X\[1\] has a NaN .* at step 4"):
        error_flow(X, elman_weights(rng))
    with pytest.raises(ValueError, match=r"X\[1\] has a NaN"):
        error_signals(X, [elman_weights(rng)], np.zeros((3, 8, 6)))


# --- error flow: the carousel and LSTM ---------------------------------------

@needs_lstm
def test_cec_ratio_is_exactly_one():
    rng = np.random.default_rng(8)
    w = dict(weight_ih=rng.standard_normal((6, 3)), bias=rng.standard_normal(6))
    X = rng.standard_normal((10, 100, 3))
    flow = error_flow(X, w, cell="cec", random_state=0)
    assert np.all(flow.ratio == 1.0) and np.all(flow.sample_ratio == 1.0)
    assert flow.horizon == 99 and flow.bound is None and flow.name == "cec"


@needs_lstm
def test_lstm1997_without_recurrence_carries_delta_c_unchanged():
    rng = np.random.default_rng(9)
    H = 4
    w = dict(weight_ih=rng.standard_normal((3 * H, 3)),
             weight_hh=np.zeros((3 * H, H)), bias=rng.standard_normal(3 * H))
    flow = error_flow(rng.standard_normal((5, 50, 3)), w, cell="lstm1997",
                      random_state=0)
    assert flow.signal == "delta_c"
    assert np.all(flow.ratio == 1.0)
    assert flow.ratio_gates.shape == (50,)


@needs_lstm
def test_forget_gate_scales_the_carousel_error_by_f_per_step():
    rng = np.random.default_rng(10)
    H, T = 1, 30
    w = dict(weight_ih=rng.standard_normal((4 * H, 2)),
             weight_hh=np.zeros((4 * H, H)), bias=np.array([0, 2.0, 0, 0]))
    X = rng.standard_normal((6, T, 2))
    flow = error_flow(X, w, cell="lstm", direction=np.ones(1))
    f = functional.lstm_forward(X, **w).gates[:, :, 1]         # (6, T)
    # delta_c(T-q) = f(T) f(T-1) ... f(T-q+1) delta_c(T)
    expected = np.cumprod(np.concatenate([np.ones((6, 1)), f[:, :0:-1]], 1), 1)
    np.testing.assert_allclose(flow.sample_ratio, expected, rtol=1e-12)


# --- error signals ------------------------------------------------------------

def test_error_signals_equal_the_functional_backward():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((4, 9, 3))
    l0 = elman_weights(rng, H=5)
    l1 = elman_weights(rng, H=2, I=5)
    g = rng.standard_normal((4, 9, 2))
    s = error_signals(X, [l0, dict(l1, activation="logistic")], g)
    r0 = rnn_forward(X, **l0)
    r1 = rnn_forward(r0.h, **l1, activation="logistic")
    g1 = rnn_backward(r1, g)
    g0 = rnn_backward(r0, g1.x)
    np.testing.assert_array_equal(s[1].delta, g1.delta)
    np.testing.assert_array_equal(s[0].delta, g0.delta)
    np.testing.assert_array_equal(s[0].h, r0.h)
    assert s[0].delta_c is None and s[0].gates is None
    with pytest.raises(ValueError, match="gate"):
        s[0].gate("i")
    # truncation is passed on
    st = error_signals(X, [l0], g[..., :1].repeat(5, 2), truncate=3)
    ref = rnn_backward(r0, g[..., :1].repeat(5, 2), truncate=3)
    np.testing.assert_array_equal(st[0].delta, ref.delta)


def test_error_signals_with_a_loss_callable_and_variable_lengths():
    rng = np.random.default_rng(12)
    w_out = rng.standard_normal(4)
    layer = elman_weights(rng, H=4)
    seqs = [rng.standard_normal((L, 3)) for L in (6, 3, 6, 4)]
    targets = rng.standard_normal(4)
    calls = []

    def grad_h(h, index):          # loss = sum_n (w_out . h_n(last) - y_n)^2 / 2
        calls.append(index.tolist())
        g = np.zeros_like(h)
        g[:, -1] = (h[:, -1] @ w_out - targets[index])[:, None] * w_out
        return g

    s = error_signals(seqs, [layer], grad_h)
    assert sorted(sum(calls, [])) == [0, 1, 2, 3] and len(calls) == 3
    assert s[0].delta.shape == (4, 6, 4)
    for n, x in enumerate(seqs):
        r = rnn_forward(x[None], **layer)
        g = np.zeros_like(r.h)
        g[0, -1] = (r.h[0, -1] @ w_out - targets[n]) * w_out
        np.testing.assert_allclose(s[0].delta[n, :len(x)], rnn_backward(r, g).delta[0],
                                   rtol=1e-13, atol=1e-15)
        assert np.isnan(s[0].delta[n, len(x):]).all()


def test_error_signals_keep_float32():
    rng = np.random.default_rng(13)
    layer = {k: v.astype(np.float32) for k, v in elman_weights(rng).items()}
    s = error_signals(rng.standard_normal((2, 5, 3)).astype(np.float32), [layer],
                      np.ones((2, 5, 6), np.float32))
    assert s[0].delta.dtype == np.float32 and s[0].h.dtype == np.float32


@needs_lstm
@pytest.mark.parametrize("cell, gates", [("lstm", "ifgo"), ("lstm1997", "igo")])
def test_lstm_error_signals_have_gates_and_delta_c(cell, gates):
    rng = np.random.default_rng(14)
    G, H = len(gates), 3
    layers = [dict(weight_ih=rng.standard_normal((G * H, 2)) * 0.5,
                   weight_hh=rng.standard_normal((G * H, H)) * 0.5,
                   bias=np.zeros(G * H)),
              dict(cell="cec", weight_ih=rng.standard_normal((2, H)),
                   bias=np.zeros(2))]
    X = rng.standard_normal((3, 7, 2))
    g = rng.standard_normal((3, 7, 2))
    s = error_signals(X, layers, g, cell=cell)
    assert s[0].gates == tuple(gates) and s[1].cell == "cec"
    r0 = functional.lstm_forward(X, **layers[0], forget_gate=(cell == "lstm"))
    r1 = functional.cec_forward(r0.h, layers[1]["weight_ih"], layers[1]["bias"])
    g1 = functional.cec_backward(r1, g)
    g0 = functional.lstm_backward(r0, g1.x)
    np.testing.assert_array_equal(s[0].delta, g0.delta)
    np.testing.assert_array_equal(s[0].delta_c, g0.delta_c)
    np.testing.assert_array_equal(s[1].delta, g1.delta)
    np.testing.assert_array_equal(s[0].gate("g"), g0.delta[:, :, gates.index("g") * H:
                                                          (gates.index("g") + 1) * H])


@pytest.mark.parametrize("call, exc, match", [
    (lambda X, w: error_signals(X, [], np.zeros((2, 5, 6))), ValueError, "layers"),
    (lambda X, w: error_signals(X, [w], np.zeros((2, 5, 4))), ValueError,
     r"grad_h has shape \(2, 5, 4\)"),
    (lambda X, w: error_signals(X, [w], lambda h, i: h[:, :1]), ValueError,
     "grad_h returned shape"),
    (lambda X, w: error_signals(X, [dict(w, cell="rnn")], np.zeros((2, 5, 6))),
     ValueError, "cell='rnn'"),
    (lambda X, w: error_signals(X, [w, {"bias": 1}], np.zeros((2, 5, 6))),
     ValueError, "layer 1: weights lacks"),
])
def test_error_signals_bad_input(call, exc, match):
    rng = np.random.default_rng(15)
    with pytest.raises(exc, match=match):
        call(rng.standard_normal((2, 5, 3)), elman_weights(rng))


# --- fitted estimators ---------------------------------------------------------

import cbptt  # noqa: E402
from cbptt.diagnostics import (estimator_error_flow,  # noqa: E402
                               estimator_error_signals, generate_text)

needs_estimators = pytest.mark.skipif(
    not hasattr(cbptt, "RNNRegressor"),
    reason="the estimators (issue 4) are not in cbptt yet")


def input_gradient_from_signals(signals, weight_ih):
    """dL/dx(t) = weight_ih^T delta(t) of the first layer."""
    return np.asarray(signals[0].delta) @ np.asarray(weight_ih)


@needs_estimators
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_estimator_error_signals_are_the_loss_gradient(cell):
    rng = np.random.default_rng(20)
    X = rng.standard_normal((4, 6, 2))
    y = rng.standard_normal(4)
    model = cbptt.RNNRegressor((3,), cell=cell, max_iter=3, random_state=0)
    model.fit(X, y)
    signals = estimator_error_signals(model, X, y)
    assert signals[0].delta.shape[:2] == (4, 6)
    params = {"x": X.copy()}

    def loss():       # the estimator's loss: 1/(2N) sum (prediction - y)^2
        return 0.5 * np.mean((model.predict(params["x"]) - y) ** 2)

    dx = central_diff(loss, params, "x")
    assert rel_err(input_gradient_from_signals(signals, model.coefs_[0]["weight_ih"]),
                   dx) < 1e-6


@needs_estimators
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_classifier_sequence_signals_with_padding():
    rng = np.random.default_rng(21)
    lengths = [5, 3, 5, 4]
    X = np.full((4, 5, 2), np.nan)
    y = np.full((4, 5), np.nan)
    for n, L in enumerate(lengths):
        X[n, :L] = rng.standard_normal((L, 2))
        y[n, :L] = rng.integers(0, 3, L)
    model = cbptt.RNNClassifier((3,), cell="elman", output="sequence",
                                max_iter=3, random_state=0).fit(X, y)
    signals = estimator_error_signals(model, X, y)
    codes = np.searchsorted(model.classes_, np.nan_to_num(y)).astype(int)
    valid = ~np.isnan(y)
    params = {"x": np.nan_to_num(X)}

    def loss():       # mean cross-entropy over the valid steps
        x = np.where(np.isnan(X), np.nan, params["x"])
        p = model.predict_proba(x)
        picked = np.take_along_axis(np.nan_to_num(p, nan=1.0), codes[..., None], 2)[..., 0]
        return -np.mean(np.log(picked[valid]))

    dx = central_diff(loss, params, "x")
    got = input_gradient_from_signals(signals, model.coefs_[0]["weight_ih"])
    got[np.isnan(got)] = 0.0
    assert rel_err(got, dx) < 1e-6
    assert np.isnan(signals[0].delta[1, 3:]).all()


@needs_estimators
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_error_flow_is_the_first_layers():
    rng = np.random.default_rng(22)
    X = rng.standard_normal((6, 12, 2))
    model = cbptt.RNNRegressor((4, 3), cell="lstm", max_iter=2,
                               random_state=0).fit(X, rng.standard_normal(6))
    flow = estimator_error_flow(model, X, random_state=1)
    same = error_flow(X, model.coefs_[0], cell="lstm", random_state=1)
    np.testing.assert_array_equal(flow.ratio, same.ratio)
    few = estimator_error_flow(model, X, max_samples=2, random_state=1)
    assert few.sample_ratio.shape == (2, 12)
    with pytest.raises(AttributeError, match="not fitted"):
        estimator_error_flow(cbptt.RNNRegressor(), X)


@needs_estimators
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_generate_text_carries_the_states():
    from cbptt.datasets import CharCodec
    text = "the cat sat on the mat. " * 20
    codec = CharCodec(text)
    X, y = codec.sequences(text, 12, step=3, dtype=np.float64)
    model = cbptt.RNNClassifier((8,), cell="lstm", output="sequence",
                                max_iter=5, random_state=0).fit(X, y)
    sample = generate_text(model, "the ", 15, codec=codec, random_state=0)
    assert len(sample) == 15 and set(sample) <= set(codec.chars)
    assert sample == generate_text(model, "the ", 15, codec=codec, random_state=0)
    # at a tiny temperature sampling is the argmax: the same as running the
    # whole prefix through predict_proba again for every character
    greedy = generate_text(model, "the ", 10, temperature=1e-6, codec=codec)
    prefix = "the "
    for _ in range(10):
        p = model.predict_proba(codec.one_hot(prefix, np.float64)[None])[0, -1]
        prefix += codec.chars[model.classes_[int(np.argmax(p))]]
    assert greedy == prefix[4:]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        generate_text(model, "dog!", 5, codec=codec)
    with pytest.raises(ValueError, match="temperature"):
        generate_text(model, "the", 5, temperature=0, codec=codec)
    with pytest.raises(ValueError, match="codec"):
        generate_text(model, "the", 5)                 # integer classes
    regressor = cbptt.RNNRegressor((3,), max_iter=1).fit(X[:, :, :2], y[:, 0] * 1.0)
    with pytest.raises(ValueError, match="output='sequence'"):
        generate_text(regressor, "the", 5, codec=codec)


def test_a_bound_beyond_float64_is_inf_without_a_warning():
    """||W_hh|| = 1e10: the bound (f'_sup ||W_hh||)^q passes float64's
    range after about 31 lags; it is inf there (no bound), with no
    RuntimeWarning leaking from NumPy."""
    import warnings
    rng = np.random.default_rng(0)
    H = 3
    w = {"weight_ih": rng.standard_normal((H, 2)) * 0.1,
         "weight_hh": np.eye(H) * 1e10, "bias": np.zeros(H)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flow = error_flow(rng.standard_normal((4, 60, 2)) * 1e-12, w,
                          activation="tanh", random_state=0)
    assert flow.bound_per_step == pytest.approx(1e10)
    assert np.isinf(flow.bound[-1]) and np.isfinite(flow.bound[:30]).all()
