"""Nothing silent (issue 19): the estimators refuse, as the functional API
does, predictions whose network values overflowed; a model kept after a
divergence predicts finite values on its training data; bad X and bad
``generate`` arguments get errors that name them.

Every case here returned garbage without an error before (the overflow
hidden by tanh(inf) = 1 or relu(NaN) = 0, a kept model of ~1e308 weights,
``n_chars=-1`` giving ``''``).
"""
import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from cbptt import RNNClassifier, RNNRegressor
from cbptt._cells import CELLS


def _fitted(cell="elman", activation="tanh", H=2, dtype=np.float64,
            cls=RNNRegressor, **kw):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 5, 1)).astype(dtype)
    y = X.sum(axis=(1, 2)) if kw.get("output") != "sequence" else X.sum(axis=2)
    if cls is RNNClassifier:
        y = np.where(y > 0, "up", "down")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(cell=cell, activation=activation, hidden_layer_sizes=(H,),
                   max_iter=1, random_state=0, **kw).fit(X, y), X, y


def _set(est, **values):
    """Overwrite some of the torch-named weights (broadcast) and load them."""
    sd = est.to_torch_state_dict()
    for k, v in values.items():
        sd[k.replace("__", ".")][...] = v
    return est.from_torch_state_dict(sd)


def _step(msg):
    m = re.search(r"sample (\d+), step (\d+)", msg)
    assert m, msg
    return int(m.group(1)), int(m.group(2))


# -- 1. predictions refuse overflowed values --------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_saturated_tanh_overflow_is_refused_by_every_method(dtype):
    """weight_ih = 1 on X = 1e308 (float32: 1e38): tanh(inf) = 1 hid the
    overflow and predict returned a finite value; rnn_forward refuses."""
    est, _, _ = _fitted(dtype=dtype)
    _set(est, weight_ih_l0=1.0)
    big = 1e308 if dtype == np.float64 else 3e38
    X = np.zeros((3, 4, 1), dtype)
    X[2, 1:] = big                      # sample 2 from step 1 on
    y = np.zeros(3)
    calls = [est.predict, lambda X: est.score(X, y),
             lambda X: est.error_signals(X, y), est.error_flow]
    for call in calls:
        with pytest.raises(ValueError, match="X") as info:
            call(X)
        assert _step(str(info.value)) == (2, 1)
    # the rest of the data still predicts
    assert np.isfinite(est.predict(X[:2])).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gru_overflow_is_refused(dtype):
    """The GRU's bound counts both of its biases; n = tanh(inf) = 1 would
    hide the overflow."""
    est, _, _ = _fitted(cell="gru", dtype=dtype)
    _set(est, weight_ih_l0=1.0)
    X = np.zeros((3, 4, 1), dtype)
    X[1, 2:] = 1e308 if dtype == np.float64 else 3e38
    with pytest.raises(ValueError, match="X") as info:
        est.predict(X)
    assert _step(str(info.value)) == (1, 2)
    assert np.isfinite(est.predict(X[:1])).all()


def test_classifier_methods_refuse_overflow():
    est, _, _ = _fitted(cls=RNNClassifier, cell="lstm")
    _set(est, weight_ih_l0=1e308)
    X = np.ones((2, 3, 1))
    X[0] = 0.0
    for call in (est.predict, est.predict_proba, est.predict_log_proba,
                 lambda X: est.score(X, ["up", "down"])):
        with pytest.raises(ValueError, match="X") as info:
            call(X)
        assert _step(str(info.value)) == (1, 0)


@pytest.mark.parametrize("T", [1100, 1200])
def test_relu_growth_that_overflows_is_refused(T):
    """relu with W_hh = 2I: the state overflowed near step 1023, 0 * inf
    became NaN, relu(NaN) = 0 and the growth started over, so predict gave
    8.6e301, 6.0e23, 7.7e53; now the step where values left the range is
    named."""
    est, _, _ = _fitted(activation="relu")
    _set(est, weight_ih_l0=1.0, weight_hh_l0=2 * np.eye(2), bias_ih_l0=0.0,
         out__weight=1.0)
    with pytest.raises(ValueError, match="X") as info:
        est.predict(np.ones((1, T, 1)))
    sample, step = _step(str(info.value))
    assert sample == 0 and 1015 <= step <= 1023
    # T = 1000 stays in range: 2 * (2**1000 - 1), a true value, not garbage
    np.testing.assert_allclose(est.predict(np.ones((1, 1000, 1))),
                               2.0 ** 1001, rtol=1e-12)


def test_cec_and_output_layer_overflow_are_refused():
    est, _, _ = _fitted(cell="cec")
    _set(est, bias_ih_l0=1e308)                  # s(t) = s(t-1) + 1e308
    with pytest.raises(ValueError, match="X") as info:
        est.predict(np.zeros((1, 4, 1)))
    assert _step(str(info.value)) == (0, 1)
    est, _, _ = _fitted()
    _set(est, weight_ih_l0=10.0, weight_hh_l0=0.0, bias_ih_l0=0.0,
         out__weight=1.7e308)                    # z = 1.7e308 * 2 h = inf
    X = np.ones((2, 3, 1))
    X[0] = -1e-3                                 # |z| ~ 3.4e305: finite
    with pytest.raises(ValueError, match="X.*output layer") as info:
        est.predict(X)
    assert _step(str(info.value)) == (1, 2)


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("where", ["recurrent layer", "output layer"])
def test_overflow_in_rows_names_the_sample_by_its_index_in_x(where, ragged):
    """predict_raw over a subset ``rows`` of X (the validation split's path)
    names the overflowing sequence by its row of X, the one the user can
    find, not by its position in ``rows``; chunks of 2 sequences put it
    at position 4 of ``rows``, 0 of its chunk."""
    from cbptt._network import OverflowInX, predict_raw
    est, _, _ = _fitted()
    X = np.zeros((10, 4, 1))
    if where == "recurrent layer":
        _set(est, weight_ih_l0=1.0)
        X[7, 1:] = 1e308                         # sample 7 from step 1 on
        step = 1
    else:
        _set(est, weight_ih_l0=10.0, weight_hh_l0=0.0, bias_ih_l0=0.0,
             out__weight=1.7e308)                # z = 1.7e308 * 2 h = inf
        X[:] = -1e-3                             # |z| ~ 3.4e305: finite
        X[7] = 1.0                               # ... but not for sample 7
        step = 3
    lengths = np.full(10, 4, np.intp) if ragged else None
    rows = np.array([0, 1, 2, 9, 7, 4], np.intp)
    with pytest.raises(OverflowInX, match=where) as info:
        predict_raw(est._net, est._params, X, lengths, "last",
                    max_elements=2 * 4 * max(est._net.sizes),
                    batch_first=True, check=True, rows=rows)
    assert _step(str(info.value)) == (7, step)
    z = predict_raw(est._net, est._params, X, lengths, "last",
                    batch_first=True, rows=rows[:4])      # without sample 7
    assert np.isfinite(z).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_overflow_guard_takes_the_compiled_bound_for_every_cell(monkeypatch,
                                                               cell, dtype):
    """Every cell's guard runs the compiled pre-activation bound (a float32
    GRU's float64 bias bound fell back to NumPy on every chunk), never the
    NumPy fallback, and the bound keeps its value: |b| (a GRU's |b_ih| +
    |b_hh|) + |W_ih| x_max + |W_hh| h_in, maximised over the units."""
    from cbptt import _network
    est, X, _ = _fitted(cell=cell, dtype=dtype, H=3)
    compiled, seen = _network._scan.preact_bound_or_none, []

    def spy(*args):
        seen.append(compiled(*args))
        return seen[-1]

    def fallback(*args):
        raise AssertionError("the NumPy fallback of the bound ran")

    monkeypatch.setattr(_network._scan, "preact_bound_or_none", spy)
    monkeypatch.setattr(_network, "_preact_worst_numpy", fallback,
                        raising=False)
    assert np.isfinite(est.predict(X)).all()
    p = est._net.views(est._params)[0][0]
    if "weight_hh" not in p:                   # CEC: its states are scanned
        assert seen == []
        return
    assert seen and None not in seen, seen
    rng = np.random.default_rng(1)
    x_max, h_in = 3 * rng.random(1), rng.random(3)
    bias = sum(np.abs(v.astype(np.float64)) for k, v in p.items()
               if k.startswith("bias"))
    want = (bias + np.abs(p["weight_ih"].astype(np.float64)) @ x_max
            + np.abs(p["weight_hh"].astype(np.float64)) @ h_in).max()
    seen.clear()
    assert _network._preact_worst(p, x_max, h_in) == pytest.approx(want,
                                                                   rel=1e-12)
    assert seen and None not in seen


def test_padding_that_would_overflow_is_not_refused():
    """Steps beyond a sequence's end are not the network's values for it:
    a short sequence whose padded continuation would overflow predicts."""
    est, _, _ = _fitted(activation="relu")
    _set(est, weight_ih_l0=1.0, weight_hh_l0=2 * np.eye(2), bias_ih_l0=0.0)
    short = np.ones((3, 1))
    X = [short, np.zeros((1100, 1))]
    pred = est.predict(X)
    np.testing.assert_allclose(pred[:1], est.predict([short]), rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "identity"])
@pytest.mark.parametrize("layout", ["list", "nan"])
def test_training_on_padding_that_would_overflow(activation, layout):
    """A mini-batch pads the short sequence to the long one's 60 steps;
    with W_hh = 1e10 its padded continuation overflows (relu/identity
    states are unbounded), where the sequence itself does not. That is not
    the network's value for it: training goes on, and the update is the
    one without padding (half that of the short sequence alone, as the
    long sequence of zeros has a zero gradient)."""
    X = [np.zeros((60, 1)), np.ones((1, 1))]
    if layout == "nan":
        padded = np.full((2, 60, 1), np.nan)
        padded[0], padded[1, 0] = 0.0, 1.0
        X = padded
    y = np.array([0.0, 2.0])
    moved = {}
    for batch_size in (1, 2):
        est = RNNRegressor((1,), cell="elman", activation=activation,
                           max_iter=1, batch_size=batch_size, shuffle=False,
                           solver="sgd", momentum=0, learning_rate_init=1e-3,
                           alpha=0, clip_norm=None, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit([np.zeros((3, 1))] * 2, np.zeros(2))
        est.from_torch_state_dict({
            "weight_ih_l0": np.ones((1, 1)), "weight_hh_l0": np.full((1, 1), 1e10),
            "bias_ih_l0": np.zeros(1), "bias_hh_l0": np.zeros(1),
            "out.weight": np.ones((1, 1)), "out.bias": np.zeros(1)})
        np.testing.assert_array_equal(est.predict(X), [0.0, 1.0])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            est.partial_fit(X, y)
        moved[batch_size] = est.coefs_[0]["weight_ih"][0, 0] - 1.0
    assert moved[1] > 0
    assert moved[2] == pytest.approx(moved[1] / 2, rel=1e-9)


def test_sequence_output_overflow_is_refused():
    est, X, _ = _fitted(cell="elman", output="sequence")
    _set(est, weight_ih_l0=1.0)
    X = np.zeros((2, 4, 1))
    X[1, 3] = 1e308
    with pytest.raises(ValueError, match="X") as info:
        est.predict(X)
    assert _step(str(info.value)) == (1, 3)


@pytest.mark.parametrize("fit", ["fit", "partial_fit", "warm_start"])
@pytest.mark.parametrize("cell, activation", [
    ("elman", "tanh"), ("elman", "relu"), ("elman", "logistic"),
    ("lstm", "tanh"), ("gru", "tanh")])
def test_fit_refuses_data_the_network_overflows_on(cell, activation, fit):
    """Training on X whose pre-activations overflow fits saturated garbage
    (tanh(inf) = 1 keeps the loss finite): fit, partial_fit and a warm fit
    refuse it as predict does, naming the sample and step, and leave the
    estimator as it was."""
    est, X, y = _fitted(cell=cell, activation=activation, H=3)
    before = est.coefs_
    X = X.copy()
    X[13, 2, 0] = 1e308
    with pytest.raises(ValueError, match="training on it would fit garbage"
                       ) as info:
        if fit == "fit":
            type(est)(cell=cell, activation=activation, hidden_layer_sizes=(3,),
                      random_state=0).fit(X, y)
        elif fit == "partial_fit":
            est.partial_fit(X, y)
        else:
            est.set_params(warm_start=True).fit(X, y)
    assert _step(str(info.value)) == (13, 2)
    for a, b in zip(before, est.coefs_):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_fit_checks_bounded_stacks_without_a_forward_pass(monkeypatch):
    """For states in [-1, 1] the data's column maxima bound every layer:
    ordinary data costs no forward pass, before training or after an
    epoch."""
    from cbptt import _network

    def no_forward(*args, **kwargs):
        raise AssertionError("a checked forward pass ran")

    monkeypatch.setattr(_network, "predict_raw", no_forward)
    X = np.random.default_rng(1).standard_normal((12, 6, 1))
    X[3, 4:] = np.nan                     # a shorter sequence: NaN padding
    lengths = np.array([6, 6, 6, 4] + [6] * 8)
    for cell in ("elman", "lstm", "gru"):
        est, _, _ = _fitted(cell=cell, H=2)
        guard = _network.DataGuard(est._net, X, lengths, "last")
        np.testing.assert_array_equal(guard.x_max, np.nanmax(np.abs(X),
                                                             axis=(0, 1)))
        guard.check(est._params)
        guard.after_epoch(est._params)


@pytest.mark.parametrize("activation, early_stopping, what", [
    ("tanh", False, "training data"), ("tanh", True, "training data"),
    ("relu", True, "validation data")])
def test_weights_grown_until_the_data_overflows_fall_back(
        monkeypatch, activation, early_stopping, what):
    """Weights that grow in training until the network overflows on the
    data (here: made so after epoch 2) count as a divergence: the weights
    of the epoch before are kept, with the warning, and predict on the
    training data."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5, 1))
    y = X.sum(axis=(1, 2))
    run = RNNRegressor._run_epoch

    def growing(self, trainer, batches, order, in_order, interrupt, epoch,
                l2_div):
        loss = run(self, trainer, batches, order, in_order, interrupt, epoch,
                   l2_div)
        if epoch == 2:
            w = trainer.p_layers[0]["weight_ih"]
            w[...] = 1e308
        return loss

    monkeypatch.setattr(RNNRegressor, "_run_epoch", growing)
    est = RNNRegressor(cell="elman", activation=activation,
                       hidden_layer_sizes=(3,),
                       max_iter=4, early_stopping=early_stopping,
                       n_iter_no_change=10, random_state=0)
    with pytest.warns(ConvergenceWarning, match=f"Training stopped in epoch "
                      f"2: the network's values on the {what}"):
        est.fit(X, y)
    assert est.n_iter_ == 1 and len(est.loss_curve_) == 1
    assert np.isfinite(est.predict(X)).all()


@pytest.mark.parametrize("on_nonfinite", ["warn", "raise"])
def test_relu_states_hidden_in_training_stop_the_epoch(monkeypatch,
                                                       on_nonfinite):
    """relu with W_hh = 2I on all-ones sequences of 1100 steps (made so
    after epoch 2): the states overflow near step 1023 and relu(NaN) = 0
    hides it again, so the loss stays finite (before, only the NaN
    gradient stopped it, named as the cause). The training windows are
    scanned: epoch 3 stops at its first mini-batch's forward pass, on the
    network's values, the data is not to blame (the call's starting
    weights are fine on it), and the weights of epoch 1 are kept, or the
    fit raises and changes nothing."""
    X = np.ones((8, 1100, 1))
    y = np.zeros(8)
    run = RNNRegressor._run_epoch
    seen = []

    def growing(self, trainer, batches, order, in_order, interrupt, epoch,
                l2_div):
        seen.append(epoch)
        loss = run(self, trainer, batches, order, in_order, interrupt, epoch,
                   l2_div)
        if epoch == 2:
            p = trainer.p_layers[0]
            p["weight_ih"][...] = 1.0
            p["weight_hh"][...] = 2 * np.eye(2)
            p["bias"][...] = 0.0
        return loss

    monkeypatch.setattr(RNNRegressor, "_run_epoch", growing)
    est = RNNRegressor(cell="elman", activation="relu",
                       hidden_layer_sizes=(2,), max_iter=5,
                       learning_rate_init=1e-6, on_nonfinite=on_nonfinite,
                       random_state=0)
    if on_nonfinite == "raise":
        with pytest.raises(FloatingPointError, match="epoch 3: the network's "
                           "values on the training data"):
            est.fit(X, y)
        assert not hasattr(est, "coefs_")
        return
    with pytest.warns(ConvergenceWarning, match="Training stopped in epoch "
                      "3: the network's values on the training data"):
        est.fit(X, y)
    assert seen == [1, 2, 3]
    assert est.n_iter_ == 1 and len(est.loss_curve_) == 1
    assert np.isfinite(est.predict(X)).all()


def test_truncation_windows_scan_from_the_state_they_start_in():
    """A truncation window starts in the state the window before ended in:
    with bptt_truncate=1, step 1 of this relu layer sees only h(0) = 5e37
    times W_hh = -3 (the float32 pre-activation -1.5e38 may overflow),
    which relu(-inf) = 0 would hide. The scan of step 1's window counts
    h(0), and partial_fit refuses the data, naming step 1."""
    est, _, _ = _fitted(activation="relu", H=1, dtype=np.float32)
    _set(est, weight_ih_l0=1.0, weight_hh_l0=-3.0, bias_ih_l0=0.0,
         bias_hh_l0=0.0)
    est.set_params(bptt_truncate=1)
    before = est.coefs_
    X = np.zeros((4, 2, 1), np.float32)
    X[2, 0, 0] = 5e37
    with pytest.raises(ValueError, match="training on it would fit garbage"
                       ) as info:
        est.partial_fit(X, np.zeros(4))
    assert _step(str(info.value)) == (2, 1)
    for a, b in zip(before, est.coefs_):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_check_window_counts_the_initial_state():
    from cbptt import _network
    est, _, _ = _fitted(activation="relu", H=1, dtype=np.float32)
    _set(est, weight_ih_l0=0.0, weight_hh_l0=-3.0, bias_ih_l0=0.0,
         bias_hh_l0=0.0)
    net, params = est._net, est._params
    p_layers, _ = net.views(params)
    ws = _network.Workspace(net, 2, 1, np.float32)
    v = ws.views(2, 1)
    x = np.zeros((2, 1, 1), np.float32)
    h0 = np.full((1, 1), 5e37, np.float32)
    _network.forward_stack(net, p_layers, x, v, [(h0,)])
    assert np.isfinite(v.layers[0]["h"]).all()        # relu hid -1.5e38 ok
    _network.check_window(net, p_layers, x, v, None, None, 0)  # zero state
    with pytest.raises(_network.NonFiniteError, match="training data"):
        _network.check_window(net, p_layers, x, v, [(h0,)], None, 1)
    # a sequence that ended before the window: its steps are padding
    _network.check_window(net, p_layers, x, v, [(h0,)], np.array([1]), 1)


def test_unbounded_fit_runs_no_forward_pass_of_its_own(monkeypatch):
    """relu, identity and the CEC: the training windows are scanned, so
    fit and partial_fit on ordinary data run no checked forward pass."""
    from cbptt import _network

    def no_forward(*args, **kwargs):
        raise AssertionError("a checked forward pass ran")

    X = np.random.default_rng(1).standard_normal((12, 6, 1))
    y = X.sum(axis=(1, 2))
    for cell, activation in [("elman", "relu"), ("elman", "identity"),
                             ("cec", "tanh")]:
        est = RNNRegressor(cell=cell, activation=activation,
                           hidden_layer_sizes=(2,), max_iter=2,
                           random_state=0)
        monkeypatch.setattr(_network, "predict_raw", no_forward)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
            est.partial_fit(X, y)
        monkeypatch.undo()
        assert np.isfinite(est.predict(X)).all()


# -- 2. a model kept after divergence is usable ------------------------------

def test_weights_kept_after_divergence_predict_finite_values():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 5, 1))
    y = X.sum(axis=(1, 2))
    est = RNNRegressor(hidden_layer_sizes=(4,), max_iter=3,
                       learning_rate_init=1e308, random_state=0)
    with pytest.warns(ConvergenceWarning, match="kept"):
        est.fit(X, y)
    pred = est.predict(X)
    assert np.isfinite(pred).all()
    assert np.isfinite(est.score(X, y))
    assert est.n_iter_ == len(est.loss_curve_)
    assert all(np.isfinite(est.loss_curve_))
    for d in est.coefs_:
        for a in d.values():
            assert np.abs(a).max() < 1e10
    clf = RNNClassifier(hidden_layer_sizes=(4,), max_iter=3,
                        learning_rate_init=1e308, random_state=0)
    with pytest.warns(ConvergenceWarning, match="kept"):
        clf.fit(X, y > 0)
    assert np.isfinite(clf.predict_proba(X)).all()
    assert 0 <= clf.score(X, y > 0) <= 1


def test_divergence_without_usable_weights_leaves_the_estimator_as_it_was():
    """Targets so large that even the initial weights' loss is infinite
    are refused by name before training; a warm start from weights whose
    finite predictions (~1e200) have an infinite loss has no weights to
    keep: the fit raises the documented error and the estimator keeps its
    model."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 5, 1))
    y = X.sum(axis=(1, 2))
    est = RNNRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    with pytest.raises(ValueError, match="y has values up to 1e"):
        est.fit(X, np.full(20, 1e200))
    assert not hasattr(est, "coefs_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    _set(est, out__weight=1e200)
    before = est.predict(X)
    assert np.isfinite(before).all() and np.abs(before).max() > 1e199
    with pytest.raises(FloatingPointError, match="no weights of this call"):
        est.set_params(warm_start=True).fit(X, y)
    np.testing.assert_array_equal(est.predict(X), before)


# -- smaller: X that cannot be a float array, generate's n_chars ------------

@pytest.mark.filterwarnings("error::RuntimeWarning")   # the error, no noise
def test_float32_cast_overflow_says_so():
    est, _, _ = _fitted(dtype=np.float32)
    with pytest.raises(ValueError, match="X.*overflow.*float32"):
        est.predict(np.full((1, 3, 1), 1e39))


@pytest.mark.parametrize("bad", [
    np.array([[[10**400]]], dtype=object),
    [[[10**400]]],
    [np.ones((3, 1)), None],
    [None, np.ones((3, 1))],
])
def test_unconvertible_X_names_X(bad):
    est, _, _ = _fitted()
    with pytest.raises((ValueError, TypeError), match=r"\bX\b"):
        est.predict(bad)


@pytest.mark.parametrize("n_chars", [-1, 1.5, "3", True, None])
def test_generate_refuses_bad_n_chars(n_chars):
    from cbptt.datasets import CharCodec
    codec = CharCodec("ab")
    X, y = codec.sequences("abab" * 20, 5, max_sequences=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = RNNClassifier(cell="elman", hidden_layer_sizes=(3,),
                            output="sequence", max_iter=1,
                            random_state=0).fit(X, y)
    with pytest.raises((ValueError, TypeError), match="n_chars"):
        clf.generate("ab", n_chars=n_chars, codec=codec)
    assert clf.generate("ab", n_chars=0, codec=codec) == ""
    assert len(clf.generate("ab", n_chars=np.int64(3), codec=codec)) == 3


def test_divergence_reports_the_sample_weighted_training_loss():
    # Zero weight on half the sequences: the loss reported with the weights
    # kept is that of a fit on the other half alone (same initial weights,
    # same L2 divisor: the summed weights).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 5, 1))
    y = X.sum(axis=(1, 2))
    sw = np.r_[np.zeros(10), np.ones(10)]

    def reported(*args, **kwargs):
        est = RNNRegressor(hidden_layer_sizes=(4,), max_iter=3,
                           learning_rate_init=1e308, random_state=0)
        with pytest.warns(ConvergenceWarning, match="kept") as caught:
            est.fit(*args, **kwargs)
        text = " ".join(str(w.message) for w in caught)
        return float(re.search(r"training loss ([0-9.e+-]+),", text).group(1))

    weighted = reported(X, y, sample_weight=sw)
    assert weighted == pytest.approx(reported(X[10:], y[10:]), rel=1e-5)
    assert weighted != pytest.approx(reported(X, y), rel=1e-3)


# -- scores of finite values are finite ---------------------------------------

def test_r2_is_scale_free_and_exact_when_scaled():
    """R^2 of values whose squares overflow float64 is that of the values
    divided by a power of two: bitwise r2_score of the unscaled ones."""
    from sklearn.metrics import r2_score
    from cbptt._estimators import r2_float64
    rng = np.random.default_rng(3)
    y, p = rng.standard_normal((50, 2)), rng.standard_normal((50, 2))
    w = rng.uniform(0.5, 2.0, 50)
    for shift in (0, 600, 1000):
        got = r2_float64(np.ldexp(y, shift), np.ldexp(p, shift), w)
        assert got == r2_score(y, p, sample_weight=w), shift
    assert r2_float64(y.astype(np.float32), p.astype(np.float32)) == \
        r2_score(y.astype(np.float32).astype(np.float64),
                 p.astype(np.float32).astype(np.float64))


def test_score_of_large_finite_values_is_finite():
    """A float32 CEC model predicting 6.6e19 on finite X scored -inf
    (r2_score squared float32 residuals) while cbptt.dask.score gave
    -4.3e37; a float64 model scored NaN on y ~ 1e300. Both are finite now,
    and the Dask score equals the in-memory one."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 5, 2)).astype(np.float32)
    y = X.sum(axis=(1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = RNNRegressor((4,), cell="cec", max_iter=3,
                           random_state=0).fit(X, y)
    Xb = X.copy()
    Xb[3, 2, 1] = 1e20
    pred = est.predict(Xb)
    assert np.isfinite(pred).all() and np.abs(pred).max() > 1e19
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        s = est.score(Xb, y)
    from sklearn.metrics import r2_score
    assert s == r2_score(y.astype(np.float64), pred.astype(np.float64))
    X64, y64 = X.astype(np.float64), y.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e64 = RNNRegressor((4,), cell="gru", max_iter=2,
                           random_state=0).fit(X64, y64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        huge = e64.score(X64, y64 * 1e300)
    assert np.isfinite(huge) and huge < 0
    dask = pytest.importorskip("dask", reason="dask not installed")
    import dask.array as da
    from cbptt import dask as cdask
    with dask.config.set(scheduler="synchronous"):
        assert cdask.score(est, da.from_array(Xb, chunks=(3, -1, -1)),
                           y) == pytest.approx(s, rel=1e-12)
        assert cdask.score(e64, da.from_array(X64, chunks=(2, -1, -1)),
                           y64 * 1e300) == pytest.approx(huge, rel=1e-12)


# -- a loss out of range from the start is the arguments' fault --------------

@pytest.mark.filterwarnings("error::RuntimeWarning")   # the error, no noise
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_arguments_whose_loss_overflows_are_refused_by_name(dtype):
    """Finite y, sample_weight or alpha that put the loss out of range
    whatever the weights do stopped the fit at its first update with a
    FloatingPointError advising clip_norm (already set): now a ValueError
    names the argument before training, and the estimator is unchanged."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 5, 3)).astype(dtype)
    y = X.sum(axis=(1, 2)).astype(np.float64)
    big_y = 1e300 if dtype == np.float64 else 1e30      # float32: 1e60 > max
    cases = [(dict(y=y * big_y), "y has values up to"),
             (dict(sample_weight=np.full(12, 1e308)), "sample_weight has"),
             (dict(alpha=1e308), "alpha=1e+308")]
    for kw, what in cases:
        params = dict(hidden_layer_sizes=(4,), cell="gru", max_iter=2,
                      random_state=0, alpha=kw.get("alpha", 1e-4))
        with pytest.raises(ValueError, match=re.escape(what)):
            RNNRegressor(**params).fit(X, kw.get("y", y),
                                       sample_weight=kw.get("sample_weight"))
    fitted, X0, y0 = _fitted(dtype=dtype)
    before = fitted.coefs_
    with pytest.raises(ValueError, match="y has values up to"):
        fitted.partial_fit(X0, y0 * big_y)
    for a, b in zip(before, fitted.coefs_):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    # classifiers check weights and alpha (their loss reads no y values)
    with pytest.raises(ValueError, match="sample_weight has"):
        RNNClassifier((4,), max_iter=1).fit(X, y > 0,
                                            sample_weight=np.full(12, 1e308))


def test_divergence_advice_does_not_offer_clip_norm_when_it_is_set():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 5, 1))
    y = X.sum(axis=(1, 2))
    for clip_norm, advice in [(None, "Set clip_norm"),
                              (1.0, "clip_norm=1 rescales a finite "
                                    "gradient, not one that overflowed")]:
        est = RNNRegressor(hidden_layer_sizes=(4,), max_iter=3,
                           learning_rate_init=1e308, clip_norm=clip_norm,
                           on_nonfinite="raise", random_state=0)
        with pytest.raises(FloatingPointError) as info:
            est.fit(X, y)
        assert advice in str(info.value)
        if clip_norm is not None:
            assert "Set clip_norm" not in str(info.value)
