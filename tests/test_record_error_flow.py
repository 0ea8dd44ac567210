"""record_error_flow: the estimators measure the error flow of their first
layer while training (``error_flow_`` at the end of a fit, the ratio of every
epoch in ``error_flow_history_``), exactly as ``error_flow`` would on the
same sequences, and without disturbing fitting, rollback or persistence."""
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import cbptt
from cbptt import RNNClassifier, RNNRegressor, _persistence, diagnostics
from cbptt.datasets import make_adding_problem

SMALL = dict(hidden_layer_sizes=(6,), max_iter=4, learning_rate_init=0.01,
             random_state=0)


def fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def data(n=100, T=12, F=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, F))
    return X, X[:, 0, 0] + X[:, -1, -1]


def subset(X):
    """The documented sample: X[::ceil(n_samples / 64)]."""
    return X[::-(-len(X) // 64)]


def assert_same_flow(a, b):
    assert (a.cell, a.activation, a.signal, a.horizon) == (
        b.cell, b.activation, b.signal, b.horizon)
    for name in ("ratio", "sample_ratio", "ratio_gates", "bound",
                 "step_factor", "path_bound"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_default_records_nothing():
    X, y = data()
    est = fit(RNNRegressor(cell="elman", **SMALL), X, y)
    assert est.record_error_flow is None
    assert not hasattr(est, "error_flow_")
    assert not hasattr(est, "error_flow_history_")
    est.partial_fit(X, y)
    assert not hasattr(est, "error_flow_")


@pytest.mark.parametrize("n", [10, 64, 100, 200])
@pytest.mark.parametrize("cell", ["elman", "lstm", "lstm1997", "cec"])
def test_fit_records_the_error_flow_of_the_fitted_weights(cell, n):
    X, y = data(n=n)
    est = fit(RNNRegressor(cell=cell, record_error_flow="fit", **SMALL), X, y)
    flow = est.error_flow_
    assert isinstance(flow, diagnostics.ErrorFlow)
    assert flow.ratio.shape == (X.shape[1],)
    assert flow.ratio[0] == 1.0
    assert flow.sample_ratio.shape == (min(n, len(subset(X))), X.shape[1])
    assert flow.sample_ratio.shape[0] <= 64
    assert_same_flow(flow, est.error_flow(subset(X)))
    assert not hasattr(est, "error_flow_history_")


def test_epoch_history_has_one_ratio_per_epoch():
    X, y = data(n=150)
    est = fit(RNNRegressor(cell="lstm", record_error_flow="epoch",
                           **dict(SMALL, max_iter=5)), X, y)
    history = est.error_flow_history_
    assert len(history) == est.n_iter_ == 5
    for ratio in history:
        assert ratio.shape == (X.shape[1],) and ratio[0] == 1.0
    # the last epoch's weights are the fitted ones
    np.testing.assert_array_equal(history[-1], est.error_flow_.ratio)
    assert_same_flow(est.error_flow_, est.error_flow(subset(X)))
    # training changes the profile from epoch to epoch
    assert not np.array_equal(history[0], history[-1])

    # partial_fit adds one epoch; fit (warm or cold) starts a new history
    est.partial_fit(X, y)
    assert len(est.error_flow_history_) == est.n_iter_ == 6
    assert history is not est.error_flow_history_    # a new list each call
    assert len(history) == 5
    np.testing.assert_array_equal(est.error_flow_history_[-1],
                                  est.error_flow(subset(X)).ratio)
    est.set_params(warm_start=True, max_iter=2)
    fit(est, X, y)
    assert len(est.error_flow_history_) == est.n_iter_ == 2


def test_epoch_history_on_a_classifier_with_partial_fit_only():
    X, _ = data(n=40)
    labels = np.where(X[:, 0, 0] > 0, "up", "down")
    clf = RNNClassifier(cell="elman", activation="logistic",
                        record_error_flow="epoch", **SMALL)
    for _ in range(3):
        clf.partial_fit(X, labels, classes=["down", "up"])
    assert len(clf.error_flow_history_) == clf.n_iter_ == 3
    assert_same_flow(clf.error_flow_, clf.error_flow(X))
    # the logistic layer stays below its theoretical bound
    assert np.all(clf.error_flow_.ratio <= clf.error_flow_.bound * (1 + 1e-12))


def test_early_stopping_measures_the_restored_weights():
    X, y = data(n=120, seed=1)
    est = fit(RNNRegressor(cell="elman", early_stopping=True,
                           n_iter_no_change=2, record_error_flow="epoch",
                           **dict(SMALL, max_iter=15)), X, y)
    assert len(est.error_flow_history_) == est.n_iter_
    assert_same_flow(est.error_flow_, est.error_flow(subset(X)))


def test_variable_lengths_and_univariate_series():
    rng = np.random.default_rng(2)
    X = [rng.standard_normal((T, 1)) for T in rng.integers(3, 15, 90)]
    y = np.array([x.sum() for x in X])
    est = fit(RNNRegressor(cell="lstm", record_error_flow="fit", **SMALL), X, y)
    assert est.error_flow_.ratio.shape == (max(len(x) for x in subset(X)),)
    assert_same_flow(est.error_flow_, est.error_flow(subset(X)))

    X2 = rng.standard_normal((70, 9))                # 70 univariate series
    est = fit(RNNRegressor(cell="elman", record_error_flow="fit", **SMALL),
              X2, X2[:, 0])
    assert_same_flow(est.error_flow_, est.error_flow(subset(X2)))


def test_carousel_and_lstm_against_tanh_elman():
    X, y = make_adding_problem(128, 60, variable_length=False, random_state=0)
    flows = {}
    for cell in ("cec", "lstm", "elman"):
        est = fit(RNNRegressor(cell=cell, forget_bias=4.0, record_error_flow="fit",
                               **dict(SMALL, hidden_layer_sizes=(8,), max_iter=3)),
                  X, y)
        flows[cell] = est.error_flow_
    np.testing.assert_array_equal(flows["cec"].ratio, 1.0)
    assert flows["cec"].horizon == 59
    assert flows["elman"].ratio[59] < 1e-2
    assert flows["lstm"].ratio[59] > 10 * flows["elman"].ratio[59]


def test_switching_recording_off_drops_the_old_profile():
    X, y = data()
    est = fit(RNNRegressor(cell="elman", record_error_flow="epoch", **SMALL), X, y)
    est.set_params(record_error_flow="fit")
    est.partial_fit(X, y)
    assert hasattr(est, "error_flow_") and not hasattr(est, "error_flow_history_")
    est.set_params(record_error_flow=None)
    fit(est, X, y)
    assert not hasattr(est, "error_flow_")


def test_a_failing_call_keeps_the_recorded_profile(monkeypatch):
    X, y = data()
    est = fit(RNNRegressor(cell="elman", record_error_flow="epoch", **SMALL), X, y)
    history, flow = est.error_flow_history_, est.error_flow_
    with pytest.raises(ValueError):
        est.partial_fit(X[:, :, :1], y)             # wrong number of features
    assert est.error_flow_history_ is history and len(history) == est.n_iter_

    def interrupt(*args, **kwargs):                 # after the epoch's update
        raise RuntimeError("interrupted")
    monkeypatch.setattr(diagnostics, "_error_flow", interrupt)
    with pytest.raises(RuntimeError, match="interrupted"):
        est.partial_fit(X, y)
    assert est.error_flow_history_ is history and len(history) == est.n_iter_
    assert est.error_flow_ is flow


def test_a_failed_measurement_warns_and_records_none(monkeypatch):
    def refuse(*args, **kwargs):
        raise ValueError("weights too large")
    monkeypatch.setattr(diagnostics, "_error_flow", refuse)
    X, y = data(n=20)
    with pytest.warns(RuntimeWarning, match="weights too large"):
        est = fit(RNNRegressor(cell="elman", record_error_flow="epoch",
                               **dict(SMALL, max_iter=2)), X, y)
    assert est.error_flow_ is None and est.error_flow_history_ == [None, None]
    assert est.predict(X).shape == (20,)            # the fit itself is kept


def test_bad_value_is_refused():
    X, y = data(n=10)
    with pytest.raises(ValueError, match="record_error_flow"):
        RNNRegressor(record_error_flow="yes").fit(X, y)
    with pytest.raises(ValueError, match="record_error_flow"):
        RNNClassifier(record_error_flow=True).fit(X, y > 0)


def test_pickle_keeps_and_save_leaves_out_the_profile(tmp_path):
    X, y = data(n=30)
    est = fit(RNNRegressor(cell="lstm", record_error_flow="epoch", **SMALL), X, y)
    copy = pickle.loads(pickle.dumps(est))
    assert_same_flow(copy.error_flow_, est.error_flow_)
    for a, b in zip(copy.error_flow_history_, est.error_flow_history_):
        np.testing.assert_array_equal(a, b)
    path = _persistence.save(est, tmp_path / "model.npz")
    loaded = cbptt.load(path)
    assert loaded.record_error_flow == "epoch"
    assert not hasattr(loaded, "error_flow_")
    assert not hasattr(loaded, "error_flow_history_")
    assert loaded.n_iter_ == est.n_iter_


def _sigint_on_call(monkeypatch, which):
    """Make the ``which``-th error-flow measurement send one real SIGINT (as
    Ctrl-C does) before it measures."""
    import signal
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a non-default handler in this process")
    real, calls = diagnostics._error_flow, []

    def measure(*args, **kwargs):
        calls.append(args[-1])                    # with_factors
        if len(calls) == which:
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)
    monkeypatch.setattr(diagnostics, "_error_flow", measure)
    return calls


def test_ctrl_c_while_measuring_at_the_end_keeps_model_and_profile(monkeypatch):
    X, y = data(n=40)
    calls = _sigint_on_call(monkeypatch, 1)
    est = RNNRegressor(cell="elman", record_error_flow="fit", **SMALL)
    with pytest.warns(UserWarning, match="KeyboardInterrupt"):
        fit(est, X, y)
    assert calls == [True] and est.n_iter_ == SMALL["max_iter"]
    assert_same_flow(est.error_flow_, est.error_flow(subset(X)))


def test_ctrl_c_during_training_keeps_the_epochs_and_their_profiles(monkeypatch):
    X, y = data(n=40)
    calls = _sigint_on_call(monkeypatch, 2)       # in epoch 2's measurement
    est = RNNRegressor(cell="lstm", record_error_flow="epoch",
                       **dict(SMALL, max_iter=10))
    with pytest.warns(UserWarning, match="after epoch 2"):
        fit(est, X, y)
    assert est.n_iter_ == 2 and len(est.error_flow_history_) == 2
    assert calls == [False, False]                # nothing measured after
    assert not hasattr(est, "error_flow_")
    assert est.predict(X).shape == (40,)
