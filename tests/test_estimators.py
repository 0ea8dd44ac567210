"""RNNRegressor and RNNClassifier: learning, input forms, fitted state,
reproducibility, persistence, scikit-learn integration and torch interop.

The exactness of the whole training gradient (stack + output layer + loss +
padding) is checked against central differences in test_estimator_gradients.py.
"""
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cbptt import RNNClassifier, RNNRegressor

CELLS = ["lstm", "lstm1997", "elman", "cec"]


def small(est_cls, **kw):
    """A fast estimator for behaviour tests (not for learning tests)."""
    params = dict(hidden_layer_sizes=(6,), max_iter=3, learning_rate_init=0.01,
                  random_state=0)
    params.update(kw)
    return est_cls(**params)


def sine_data(rng, n, T):
    """Next-value prediction of sines with random phase and frequency."""
    phase = rng.uniform(0, 2 * np.pi, n)
    freq = rng.uniform(0.1, 0.3, n)
    s = np.sin(phase[:, None] + freq[:, None] * np.arange(T + 1)[None, :])
    return s[:, :T], s[:, T]


def ragged(rng, n, F=2, lo=2, hi=9):
    """n sequences of random lengths in [lo, hi) with F features."""
    return [rng.standard_normal((int(L), F)) for L in rng.integers(lo, hi, n)]


def pad_nan(seqs, T=None):
    T = T or max(len(s) for s in seqs)
    out = np.full((len(seqs), T, seqs[0].shape[1]), np.nan)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


# --------------------------------------------------------------- learning --

@pytest.mark.parametrize("cell", ["lstm", "elman"])
def test_next_step_sine_regression(rng, cell):
    X, y = sine_data(rng, 500, 30)
    est = RNNRegressor(cell=cell, hidden_layer_sizes=(16,),
                       learning_rate_init=0.01, max_iter=60, random_state=0)
    quiet(est.fit, X[:400], y[:400])
    assert est.score(X[400:], y[400:]) > 0.95


@pytest.mark.parametrize("cell", ["lstm", "cec"])
def test_sign_of_sum_classification(rng, cell):
    X = rng.standard_normal((1200, 20, 1))
    y = np.where(X.sum(axis=(1, 2)) > 0, "pos", "neg")
    clf = RNNClassifier(cell=cell, hidden_layer_sizes=(16,),
                        learning_rate_init=0.01, max_iter=30, random_state=0)
    quiet(clf.fit, X[:1000], y[:1000])
    assert clf.score(X[1000:], y[1000:]) > 0.95
    assert set(clf.predict(X[1000:])) <= {"pos", "neg"}


def test_sequence_tagging(rng):
    # Tag every step with the sign of the running sum.
    X = rng.standard_normal((600, 12, 1))
    y = (np.cumsum(X[..., 0], axis=1) > 0).astype(int)
    clf = RNNClassifier(cell="lstm", output="sequence", hidden_layer_sizes=(16,),
                        learning_rate_init=0.02, max_iter=25, random_state=0)
    quiet(clf.fit, X[:500], y[:500])
    pred = clf.predict(X[500:])
    assert pred.shape == (100, 12)
    assert np.mean(pred == y[500:]) > 0.9
    assert clf.score(X[500:], y[500:]) == pytest.approx(np.mean(pred == y[500:]))
    proba = clf.predict_proba(X[500:])
    assert proba.shape == (100, 12, 2)
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0)


def test_sequence_regression_variable_length(rng):
    # Per-step target: the running mean of the input, on ragged sequences.
    X = ragged(rng, 300, F=1, lo=3, hi=12)
    y = [np.cumsum(s[:, 0]) / np.arange(1, len(s) + 1) for s in X]
    est = RNNRegressor(cell="lstm", output="sequence", hidden_layer_sizes=(16,),
                       learning_rate_init=0.02, max_iter=30, random_state=0)
    quiet(est.fit, X[:250], y[:250])
    pred = est.predict(X[250:])
    assert isinstance(pred, list) and len(pred) == 50
    assert all(p.shape == t.shape for p, t in zip(pred, y[250:]))
    assert est.score(X[250:], y[250:]) > 0.9


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_truncated_bptt_learns(rng, cell):
    X = rng.standard_normal((300, 40, 1))
    y = np.roll(X[..., 0], 1, axis=1)         # echo the previous input
    y[:, 0] = 0.0
    est = RNNRegressor(cell=cell, output="sequence", bptt_truncate=8,
                       hidden_layer_sizes=(16,), learning_rate_init=0.02,
                       max_iter=15, random_state=0)
    quiet(est.fit, X, y)
    assert est.score(X, y) > 0.9


# ------------------------------------------------- variable-length inputs --

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("output", ["last", "sequence"])
def test_variable_length_equals_one_at_a_time(rng, cell, output):
    X = ragged(rng, 12)
    y = ([s.sum() for s in X] if output == "last"
         else [np.cumsum(s[:, 0]) for s in X])
    est = quiet(small(RNNRegressor, cell=cell, output=output,
                      hidden_layer_sizes=(5, 4)).fit, X, y)
    together = est.predict(X)
    padded = est.predict(pad_nan(X, T=12))
    for i, s in enumerate(X):
        alone = est.predict([s, s])[0] if output == "sequence" else \
            est.predict(s[None])[0]
        np.testing.assert_allclose(together[i], alone, rtol=1e-12, atol=1e-12)
        if output == "last":
            assert padded[i] == together[i]
        else:
            np.testing.assert_array_equal(padded[i, :len(s)], together[i])
            assert np.isnan(padded[i, len(s):]).all()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("output", ["last", "sequence"])
def test_padding_changes_nothing_in_training(rng, cell, output):
    # The same sequences as a list, NaN-padded, and NaN-padded further (with
    # garbage targets at padded steps) train bitwise the same network.
    X = ragged(rng, 20)
    if output == "last":
        y = np.array([s[-1, 0] for s in X])
        y_pad = y
    else:
        y = [s[:, 1] for s in X]
        y_pad = np.full((20, 15), 1e6)
        for i, t in enumerate(y):
            y_pad[i, :len(t)] = t
    kw = dict(cell=cell, output=output, batch_size=7, max_iter=2,
              bptt_truncate=3)
    a = quiet(small(RNNRegressor, **kw).fit, X, y)
    b = quiet(small(RNNRegressor, **kw).fit, pad_nan(X, T=15), y_pad)
    np.testing.assert_array_equal(a._params, b._params)
    assert a.loss_curve_ == b.loss_curve_


def test_classifier_sequence_padding_fill(rng):
    X = ragged(rng, 10, F=1)
    y = [np.where(s[:, 0] > 0, "up", "down") for s in X]
    clf = quiet(small(RNNClassifier, output="sequence").fit, X, y)
    out = clf.predict(X)
    assert [len(o) for o in out] == [len(s) for s in X]
    padded = clf.predict(pad_nan(X))
    assert padded.dtype == object
    for i, s in enumerate(X):
        assert list(padded[i, :len(s)]) == list(out[i])
        assert all(v is None for v in padded[i, len(s):])
    # Float labels: NaN at the pads.
    yf = [(s[:, 0] > 0).astype(float) for s in X]
    clf = quiet(small(RNNClassifier, output="sequence").fit, X, yf)
    padded = clf.predict(pad_nan(X))
    assert padded.dtype == np.float64
    assert np.isnan(padded[0, len(X[0]):]).all()
    assert clf.score(X, yf) == pytest.approx(
        np.mean(np.concatenate(clf.predict(X)) == np.concatenate(yf)))


def test_two_d_input_is_univariate_series(rng):
    X = rng.standard_normal((30, 7))
    y = X.sum(axis=1)
    est = quiet(small(RNNRegressor).fit, X, y)
    assert est.n_features_in_ == 7          # scikit-learn's count of columns
    np.testing.assert_array_equal(est.predict(X), est.predict(X[:, :, None]))
    with pytest.raises(ValueError, match="X has 5 features, but RNNRegressor "
                       "is expecting 7 features"):
        est.predict(X[:, :5])
    # Any length as 3-D input of one feature.
    assert est.predict(X[:, :4, None]).shape == (30,)
    est3 = quiet(small(RNNRegressor).fit, X[:, :, None], y)
    assert est3.n_features_in_ == 1
    assert est3.predict(X[:, :3]).shape == (30,)


def test_multivariate_and_list_predict(rng):
    X = rng.standard_normal((25, 6, 3))
    y = X[:, :, 0].sum(axis=1)
    est = quiet(small(RNNRegressor).fit, X, y)
    assert est.n_features_in_ == 3
    np.testing.assert_allclose(est.predict(list(X)), est.predict(X), rtol=1e-12)
    with pytest.raises(ValueError, match="X has 2 features per time step, but "
                       "RNNRegressor is expecting 3"):
        est.predict(X[:, :, :2])
    with pytest.raises(ValueError, match="2-D"):
        est.predict(X[:, :, 0])


# ------------------------------------------------------------- bad input --

@pytest.mark.parametrize("make, match", [
    (lambda X: X.__setitem__((1, 2, 0), np.nan) or X, "some but not all features"),
    (lambda X: X.__setitem__((1, slice(2, 3)), np.nan) or X,
     "NaN at sample 1, step 2, before"),
    (lambda X: X.__setitem__((3, 0, 1), np.inf) or X, "infinity"),
    (lambda X: X.__setitem__(2, np.nan) or X, "NaN at every step"),
    (lambda X: X[:, :0], "at least 1 time step"),
    (lambda X: X[:, :, :0], "at least 1 time step and 1 feature"),
    (lambda X: X[..., None], r"X has 4 dimensions with shape \(6, 5, 2, 1\); "
     r"expected a 3-D array"),
    (lambda X: X[:, 0, 0], r"X has 1 dimension with shape \(6,\); expected"),
    (lambda X: [X[0], X[1][:, :1]], "different numbers of features"),
    (lambda X: [X[0], X[1][:3, :, None]], r"X\[1\] has 3 dimensions"),
])
def test_bad_X(rng, make, match):
    X = make(rng.standard_normal((6, 5, 2)))
    with pytest.raises(ValueError, match=match):
        small(RNNRegressor).fit(X, np.zeros(len(X)))


def test_bad_y(rng):
    X = rng.standard_normal((6, 5, 2))
    with pytest.raises(ValueError, match="requires y to be passed"):
        small(RNNRegressor).fit(X, None)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        small(RNNRegressor).fit(X, np.zeros(5))
    with pytest.raises(ValueError, match="y contains NaN at sample 0; "
                       "expected a finite target for every sequence"):
        small(RNNRegressor).fit(X, np.full(6, np.nan))
    with pytest.raises(ValueError, match=r"expected \(n_samples, n_timesteps\)"):
        small(RNNRegressor, output="sequence").fit(X, np.zeros((6, 4)))
    with pytest.raises(ValueError, match=r"y contains NaN at sample 0, step "
                       r"1 \(of that sequence's 5 steps\); expected finite"):
        y = np.zeros((6, 5))
        y[0, 1] = np.nan                       # NaN at a valid step
        small(RNNRegressor, output="sequence").fit(X, y)
    with pytest.raises(ValueError, match="one label per time step"):
        small(RNNClassifier, output="sequence").fit(X, np.zeros((6, 5, 2)))
    with pytest.raises(ValueError, match="Unknown label type"):
        small(RNNClassifier).fit(X, np.linspace(0, 1, 6))
    Xl = ragged(rng, 4)
    with pytest.raises(ValueError, match=r"y\[1\] has shape"):
        small(RNNRegressor, output="sequence").fit(
            Xl, [np.zeros(len(s)) for s in Xl[:1]] + [np.zeros(99)] * 3)


def test_bad_parameters(rng):
    X = rng.standard_normal((6, 5, 2))
    with pytest.raises(ValueError, match="cell"):
        RNNRegressor(cell="rnn").fit(X, np.zeros(6))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        RNNRegressor(hidden_layer_sizes=(4, 0)).fit(X, np.zeros(6))
    with pytest.raises(ValueError, match="clip_norm"):
        RNNRegressor(clip_norm=-1.0).fit(X, np.zeros(6))
    with pytest.raises(ValueError, match="bptt_truncate"):
        RNNRegressor(bptt_truncate=0).fit(X, np.zeros(6))


# ---------------------------------------------------------- fitted state --

@pytest.mark.parametrize("cell, names, G", [
    ("lstm", ["weight_ih", "weight_hh", "bias"], 4),
    ("lstm1997", ["weight_ih", "weight_hh", "bias"], 3),
    ("elman", ["weight_ih", "weight_hh", "bias"], 1),
    ("cec", ["weight_ih", "bias"], 1),
])
def test_fitted_attributes(rng, cell, names, G):
    X = rng.standard_normal((20, 5, 3))
    y = rng.standard_normal((20, 2))
    est = quiet(small(RNNRegressor, cell=cell, hidden_layer_sizes=(4, 6)).fit,
                X, y)
    assert est.n_features_in_ == 3 and est.n_outputs_ == 2
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3
    assert est.loss_ == est.loss_curve_[-1]
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    assert len(est.coefs_) == 3
    assert sorted(est.coefs_[0]) == sorted(names)
    assert est.coefs_[0]["weight_ih"].shape == (G * 4, 3)
    assert est.coefs_[1]["weight_ih"].shape == (G * 6, 4)
    if "weight_hh" in names:
        assert est.coefs_[1]["weight_hh"].shape == (G * 6, 6)
    assert est.coefs_[1]["bias"].shape == (G * 6,)
    assert est.coefs_[2]["weight"].shape == (2, 6)
    assert est.coefs_[2]["bias"].shape == (2,)
    with pytest.raises(ValueError, match="read-only"):
        est.coefs_[0]["weight_ih"][0, 0] = 1.0
    assert est.predict(X).shape == (20, 2)


def test_initialisation(rng):
    X = rng.standard_normal((10, 4, 3))
    est = small(RNNRegressor, cell="lstm", hidden_layer_sizes=(5,), max_iter=1,
                forget_bias=2.5, learning_rate_init=1e-12)
    quiet(est.fit, X, np.zeros(10))
    c = est.coefs_[0]
    np.testing.assert_allclose(c["bias"][5:10], 2.5)        # forget gate
    np.testing.assert_allclose(c["bias"][:5], 0.0, atol=1e-9)
    for g in range(4):                                       # orthogonal blocks
        W = c["weight_hh"][5 * g:5 * (g + 1)]
        np.testing.assert_allclose(W @ W.T, np.eye(5), atol=1e-8)
    bound = np.sqrt(6 / (3 + 5))                             # Glorot
    assert np.abs(c["weight_ih"]).max() <= bound + 1e-9


def test_classifier_attributes_and_proba(rng):
    X = rng.standard_normal((30, 4, 2))
    y = np.array(["a", "b", "c"] * 10)
    clf = quiet(small(RNNClassifier).fit, X, y)
    np.testing.assert_array_equal(clf.classes_, ["a", "b", "c"])
    proba = clf.predict_proba(X)
    assert proba.shape == (30, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(X))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.coefs_[-1]["weight"].shape == (3, 6)


def test_single_class_and_binary(rng):
    X = rng.standard_normal((10, 4, 1))
    clf = quiet(small(RNNClassifier).fit, X, np.full(10, 7))
    np.testing.assert_array_equal(clf.predict(X), 7)
    clf = quiet(small(RNNClassifier).fit, X, np.arange(10) % 2 == 0)
    assert clf.predict(X).dtype == bool


# ------------------------------------------------- training loop control --

def test_convergence_warning_and_tol_stop(rng):
    X = rng.standard_normal((20, 5, 1))
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        small(RNNRegressor).fit(X, X[:, -1, 0])
    est = small(RNNRegressor, max_iter=100, tol=10.0, n_iter_no_change=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X, X[:, -1, 0])
    assert est.n_iter_ == 4        # 3 epochs in a row without a gain of tol


def test_early_stopping_restores_best_weights(rng):
    X, y = sine_data(rng, 200, 10)
    kw = dict(cell="elman", early_stopping=True, validation_fraction=0.2,
              n_iter_no_change=3, tol=0.0, max_iter=40,
              learning_rate_init=0.05)
    est = quiet(small(RNNRegressor, **kw).fit, X, y)
    scores = est.validation_scores_
    assert len(scores) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_validation_score_ == max(scores)
    assert est.best_loss_ is None
    best_epoch = int(np.argmax(scores)) + 1
    assert best_epoch < est.n_iter_          # it stopped after the best epoch
    # Training only up to the best epoch follows the same path (same seed).
    ref = quiet(small(RNNRegressor, **{**kw, "max_iter": best_epoch}).fit, X, y)
    np.testing.assert_array_equal(est._params, ref._params)


def test_verbose_prints_one_line_per_epoch(rng, capsys):
    X, y = sine_data(rng, 40, 6)
    quiet(small(RNNRegressor, verbose=1).fit, X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1: loss = ") and lines[0].endswith(" s")
    quiet(small(RNNRegressor, verbose=1, early_stopping=True, max_iter=2,
                validation_fraction=0.25).fit, X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "validation score = " in lines[1]


@pytest.mark.parametrize("solver", ["sgd", "adam", "rmsprop"])
def test_solvers_reduce_the_loss(rng, solver):
    X, y = sine_data(rng, 100, 8)
    lr = {"sgd": 0.1, "adam": 0.01, "rmsprop": 0.005}[solver]
    est = quiet(small(RNNRegressor, solver=solver, learning_rate_init=lr,
                      max_iter=10, cell="elman").fit, X, y)
    assert est.loss_curve_[-1] < 0.5 * est.loss_curve_[0]


def test_partial_fit(rng):
    X = rng.standard_normal((40, 5, 2))
    y = np.where(X.sum(axis=(1, 2)) > 0, 1, -1)
    clf = small(RNNClassifier)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    assert not hasattr(clf, "classes_")
    for i in range(4):
        clf.partial_fit(X[10 * i:10 * i + 10], y[10 * i:10 * i + 10],
                        classes=[-1, 1])
    assert clf.n_iter_ == 4 and len(clf.loss_curve_) == 4
    np.testing.assert_array_equal(clf.classes_, [-1, 1])
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X[:5], np.full(5, 3))
    with pytest.raises(ValueError, match="early_stopping"):
        small(RNNRegressor, early_stopping=True).partial_fit(X, y * 1.0)
    # partial_fit twice == fit with max_iter=2 (same seed, same batches).
    a = small(RNNRegressor, max_iter=2, shuffle=False)
    quiet(a.fit, X, y * 1.0)
    b = small(RNNRegressor, shuffle=False)
    b.partial_fit(X, y * 1.0).partial_fit(X, y * 1.0)
    np.testing.assert_array_equal(a._params, b._params)


def test_warm_start(rng):
    X, y = sine_data(rng, 60, 8)
    est = quiet(small(RNNRegressor, warm_start=True, max_iter=5).fit, X, y)
    first = est.loss_curve_[:]
    quiet(est.fit, X, y)
    assert len(est.loss_curve_) == 10 and est.n_iter_ == 5
    assert est.loss_curve_[5] < first[0]
    cold = quiet(small(RNNRegressor, max_iter=5).fit, X, y)
    assert cold.loss_curve_ == first
    est.set_params(hidden_layer_sizes=(7,))
    before = est.predict(X)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        est.fit(X, y)
    np.testing.assert_array_equal(est.predict(X), before)


def test_failed_fit_keeps_the_fitted_model(rng):
    X, y = sine_data(rng, 30, 6)
    est = quiet(small(RNNRegressor).fit, X, y)
    state = pickle.dumps(est)
    pred = est.predict(X)
    with pytest.raises(ValueError, match="NaN"):
        est.fit(X[:, :4], np.full(30, np.nan))        # new width, bad y
    with pytest.raises(ValueError):
        est.fit(np.full((30, 6), np.inf), y)
    assert est.n_features_in_ == 6
    np.testing.assert_array_equal(est.predict(X), pred)
    assert sorted(vars(est)) == sorted(vars(pickle.loads(state)))


def test_non_finite_training_stops_and_keeps_finite_weights(rng):
    X = rng.standard_normal((40, 30, 2)) * 50
    y = rng.standard_normal(40) * 1e3
    est = RNNRegressor(cell="elman", activation="identity", solver="sgd",
                       learning_rate_init=10.0, clip_norm=None, momentum=0.0,
                       max_iter=50, hidden_layer_sizes=(8,), random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"Training stopped in epoch "
                      r"\d+: .*clip_norm.*learning_rate_init.*scale"):
        est.fit(X, y)
    assert np.isfinite(est._params).all()
    assert est.n_iter_ == len(est.loss_curve_) < 50
    assert np.isfinite(est.predict(X[:, :2])).all()


def test_non_finite_training_raises_on_request_and_changes_nothing(rng):
    X = rng.standard_normal((40, 30, 2)) * 50
    y = rng.standard_normal(40) * 1e3
    kw = dict(cell="elman", activation="identity", solver="sgd",
              clip_norm=None, momentum=0.0, hidden_layer_sizes=(8,),
              random_state=0)
    fresh = RNNRegressor(learning_rate_init=10.0, max_iter=50,
                         on_nonfinite="raise", **kw)
    with pytest.raises(FloatingPointError, match=r"Training stopped in epoch "
                       r"\d+: .*on_nonfinite='raise'.*clip_norm"):
        fresh.fit(X, y)
    assert not hasattr(fresh, "coefs_")                 # still unfitted
    fitted = quiet(RNNRegressor(learning_rate_init=1e-4, max_iter=2,
                                **kw).fit, X, y)
    before = fitted.predict(X), list(fitted.loss_curve_), fitted.n_iter_
    fitted.set_params(learning_rate_init=10.0, on_nonfinite="raise",
                      max_iter=50, warm_start=True)
    with pytest.raises(FloatingPointError):
        fitted.fit(X, y)
    np.testing.assert_array_equal(fitted.predict(X), before[0])
    assert (fitted.loss_curve_, fitted.n_iter_) == before[1:]
    with pytest.raises(ValueError, match="on_nonfinite"):
        RNNRegressor(on_nonfinite="ignore").fit(X, y)


# ---------------------------------------------- reproducibility, dtypes --

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_reproducible(rng, cell, dtype):
    X = rng.standard_normal((30, 7, 2)).astype(dtype)
    y = np.arange(30) % 3
    kw = dict(cell=cell, hidden_layer_sizes=(5, 4), early_stopping=True,
              validation_fraction=0.2, max_iter=4, batch_size=8)
    a = quiet(small(RNNClassifier, **kw).fit, X, y)
    b = quiet(small(RNNClassifier, **kw).fit, X, y)
    np.testing.assert_array_equal(a._params, b._params)
    assert a._params.dtype == dtype
    assert a.loss_curve_ == b.loss_curve_
    assert a.validation_scores_ == b.validation_scores_
    c = quiet(small(RNNClassifier, **{**kw, "random_state": 1}).fit, X, y)
    assert not np.array_equal(a._params, c._params)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_trains_in_float32(rng, cell):
    X, y = sine_data(rng, 60, 8)
    e32 = quiet(small(RNNRegressor, cell=cell).fit, X.astype(np.float32), y)
    e64 = quiet(small(RNNRegressor, cell=cell).fit, X, y)
    assert e32._params.dtype == np.float32 and e64._params.dtype == np.float64
    assert e32.predict(X).dtype == np.float32
    assert e64.predict(X.astype(np.float32)).dtype == np.float64
    assert all(v.dtype == np.float32 for d in e32.coefs_ for v in d.values())
    np.testing.assert_allclose(e32.predict(X), e64.predict(X), atol=1e-3)


@pytest.mark.parametrize("steps", [(6, 1), (6,)])
def test_a_list_of_equal_length_float32_sequences_trains_in_float32(rng,
                                                                    steps):
    # as a ragged list and an array do; a list of lists is float64 data
    X = [rng.standard_normal(steps).astype(np.float32) for _ in range(12)]
    y = np.arange(12.0)
    est = quiet(small(RNNRegressor).fit, X, y)
    assert est._params.dtype == np.float32
    np.testing.assert_array_equal(
        est._params, quiet(small(RNNRegressor).fit, np.stack(X), y)._params)
    assert est.predict(X).dtype == np.float32
    lists = [x.tolist() for x in X]
    assert quiet(small(RNNRegressor).fit, lists, y)._params.dtype == np.float64


@pytest.mark.parametrize("form", ["3d", "2d", "list", "ragged"])
@pytest.mark.parametrize("native", [np.float32, np.float64])
@pytest.mark.parametrize("cls", [RNNRegressor, RNNClassifier])
def test_non_native_byte_order_counts_as_its_dtype(rng, cls, native, form):
    """X in the other byte order ('>f4' on a little-endian machine) is the
    same float32 (float64) for NumPy: the estimators fit and predict in that
    dtype, with the bits of the native array, not in float64."""
    X, y = sine_data(rng, 24, 6)
    if cls is RNNClassifier:
        y = np.where(y > np.median(y), "up", "down")
    X = X.astype(native)                                  # (n, T): 2-D
    if form != "2d":
        X = X[:, :, None]
    swapped = X.astype(X.dtype.newbyteorder("S"))
    assert not swapped.dtype.isnative and swapped.dtype.type is native
    as_given = {"list": list, "2d": np.asarray, "3d": np.asarray,
                "ragged": lambda X: [x[:6 - i % 3] for i, x in enumerate(X)],
                }[form]
    ref = quiet(small(cls).fit, as_given(X), y)
    est = quiet(small(cls).fit, as_given(swapped), y)
    dtype = native
    assert est._params.dtype == ref._params.dtype == dtype
    assert all(v.dtype == dtype for d in est.coefs_ for v in d.values())
    np.testing.assert_array_equal(est._params, ref._params)
    assert est.loss_curve_ == ref.loss_curve_
    pred = est.predict(as_given(swapped))
    np.testing.assert_array_equal(pred, ref.predict(as_given(X)))
    if cls is RNNRegressor:
        assert pred.dtype == dtype
    quiet(est.partial_fit, as_given(swapped), y)          # warm: its dtype
    assert est._params.dtype == dtype


# ----------------------------------------------- scikit-learn integration --

def test_pipeline_and_cross_val_score(rng):
    X, y = sine_data(rng, 80, 10)
    pipe = make_pipeline(StandardScaler(),
                         small(RNNRegressor, cell="elman", max_iter=20))
    quiet(pipe.fit, X, y)
    assert pipe.predict(X).shape == (80,)
    assert pipe.score(X, y) > 0.5
    scores = quiet(cross_val_score, clone(pipe), X, y, cv=3)
    assert scores.shape == (3,)


def test_grid_search_parallel(rng, tmp_path, monkeypatch):
    # Worker processes start in the current directory: keep them away from the
    # repository root, where ``import cbptt`` would find the uncompiled source.
    monkeypatch.chdir(tmp_path)
    X = rng.standard_normal((90, 8, 1))
    y = (X.sum(axis=(1, 2)) > 0).astype(int)
    grid = GridSearchCV(small(RNNClassifier, cell="cec", max_iter=10),
                        {"hidden_layer_sizes": [(4,), (8,)],
                         "learning_rate_init": [0.01, 0.05]}, cv=3, n_jobs=2)
    quiet(grid.fit, X, y)
    assert set(grid.best_params_) == {"hidden_layer_sizes", "learning_rate_init"}
    assert grid.best_estimator_.score(X, y) > 0.8


def test_clone_and_pickle_round_trip(rng):
    X = ragged(rng, 16)
    y = np.arange(16) % 2
    clf = quiet(small(RNNClassifier, cell="lstm").fit, X, y)
    c = clone(clf)
    assert c.get_params() == clf.get_params() and not hasattr(c, "coefs_")
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    # The views in coefs_ are rebuilt on the loaded parameters.
    assert again.coefs_[0]["weight_hh"].base is not None
    assert np.shares_memory(again.coefs_[0]["weight_hh"], again._params)
    # Training continues identically (optimizer state travels too).
    clf.partial_fit(X, y)
    again.partial_fit(X, y)
    np.testing.assert_array_equal(again._params, clf._params)


# ------------------------------------------------------------ torch interop --

def _torch():
    return pytest.importorskip("torch", reason="torch not installed")


def _torch_model(torch, est):
    """torch.nn.RNN/LSTM + Linear loaded from est.to_torch_state_dict()."""
    sd = est.to_torch_state_dict()
    sizes = {v.shape[1] for k, v in sd.items() if k.startswith("weight_hh")}
    (H,) = sizes
    L = len(est.coefs_) - 1
    I = est.n_features_in_
    if est.cell == "elman":
        rnn = torch.nn.RNN(I, H, num_layers=L, nonlinearity=est.activation,
                           batch_first=True)
    else:
        rnn = torch.nn.LSTM(I, H, num_layers=L, batch_first=True)
    rnn = rnn.double()
    rnn.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()
                         if not k.startswith("out.")})
    out = torch.nn.Linear(H, est.n_outputs_).double()
    out.load_state_dict({"weight": torch.from_numpy(sd["out.weight"]),
                         "bias": torch.from_numpy(sd["out.bias"])})
    return rnn, out


@pytest.mark.parametrize("cell, activation", [("lstm", "tanh"),
                                              ("lstm1997", "tanh"),
                                              ("elman", "tanh"),
                                              ("elman", "relu")])
@pytest.mark.parametrize("output", ["last", "sequence"])
def test_torch_round_trip(rng, cell, activation, output):
    torch = _torch()
    X = rng.standard_normal((9, 7, 3))
    y = rng.standard_normal((9, 7, 2) if output == "sequence" else (9, 2))
    est = quiet(small(RNNRegressor, cell=cell, activation=activation,
                      output=output, hidden_layer_sizes=(5, 5)).fit, X, y)
    rnn, out = _torch_model(torch, est)
    with torch.no_grad():
        hs, _ = rnn(torch.from_numpy(X))
        z = out(hs).numpy()
    expected = z[:, -1] if output == "last" else z
    np.testing.assert_allclose(est.predict(X), expected, rtol=0, atol=1e-10)
    # ... and back: weights trained in torch, with both biases, load exactly.
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            p.add_(0.1 * torch.randn_like(p))
            if cell == "lstm1997":           # keep the forget gate fixed open
                p[5:10] = 100.0 if name.startswith("bias_ih") else 0.0
        hs, _ = rnn(torch.from_numpy(X))
        z = out(hs).numpy()
    sd = {k: v for k, v in rnn.state_dict().items()}
    sd.update({"out." + k: v for k, v in out.state_dict().items()})
    est.from_torch_state_dict(sd)
    expected = z[:, -1] if output == "last" else z
    np.testing.assert_allclose(est.predict(X), expected, rtol=0, atol=1e-10)


def test_torch_round_trip_float32(rng):
    torch = _torch()
    X = rng.standard_normal((6, 9, 2)).astype(np.float32)
    est = quiet(small(RNNRegressor, cell="lstm").fit, X, np.zeros(6))
    sd = est.to_torch_state_dict()
    assert all(v.dtype == np.float32 for v in sd.values())
    rnn = torch.nn.LSTM(2, 6, batch_first=True)
    rnn.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()
                         if not k.startswith("out.")})
    with torch.no_grad():
        hs, _ = rnn(torch.from_numpy(X))
    z = (hs[:, -1].numpy() @ sd["out.weight"].T + sd["out.bias"])[:, 0]
    np.testing.assert_allclose(est.predict(X), z, atol=1e-6)


def test_sequence_y_non_finite_names_sample_and_step(rng):
    """NaN or inf in y (output="sequence") at a valid step names y, the
    sample, the step and that sequence's length; at a padded step it is
    ignored."""
    X = rng.standard_normal((6, 5, 2))
    ragged = [X[0], X[1][:3], X[2][:4]]
    y = [x.sum(1) for x in ragged]
    y[2] = y[2].copy()
    y[2][3] = np.inf
    with pytest.raises(ValueError, match=r"y contains infinity \(inf\) at "
                       r"sample 2, step 3 \(of that sequence's 4 steps\)"):
        small(RNNRegressor, output="sequence").fit(ragged, y)
    y2 = np.zeros((6, 5, 2))
    y2[4, 2, 1] = np.nan
    with pytest.raises(ValueError, match="y contains NaN at sample 4, step 2"):
        small(RNNRegressor, output="sequence").fit(X, y2)
    with pytest.raises(ValueError, match=r"y contains infinity \(inf\) \(or "
                       r"a value beyond the float32 range\) at sample 1, step 0"):
        y3 = np.zeros((6, 5))
        y3[1, 0] = 1e300                       # finite, inf in float32
        small(RNNRegressor, output="sequence").fit(X.astype(np.float32), y3)
    Xp = X.copy()
    Xp[3, 3:] = np.nan                         # sample 3 padded after 3 steps
    y4 = np.zeros((6, 5))
    y4[3, 4] = np.nan                          # ...where y is ignored
    quiet(small(RNNRegressor, output="sequence").fit, Xp, y4)


def test_last_y_non_finite_names_sample_and_output(rng):
    """NaN or inf in y (output="last") names y, the sample and, for several
    outputs, the output; a float64 target beyond the float32 range says so
    for a float32 fit; nothing is fitted."""
    X = rng.standard_normal((6, 5, 2))
    y = np.zeros(6)
    y[3] = np.nan
    with pytest.raises(ValueError, match="^y contains NaN at sample 3; "
                       "expected a finite target for every sequence$"):
        small(RNNRegressor).fit(X, y)
    y2 = np.zeros((6, 3))
    y2[4, 2] = -np.inf
    est = small(RNNRegressor)
    with pytest.raises(ValueError, match=r"y contains infinity \(inf\) at "
                       "sample 4, output 2; expected a finite target"):
        est.fit(X, y2)
    assert not hasattr(est, "coefs_") and not hasattr(est, "_params")
    y3 = np.zeros(6)
    y3[5] = 1e300                              # finite, inf in float32
    with pytest.raises(ValueError, match=r"y contains infinity \(inf\) \(or "
                       r"a value beyond the float32 range\) at sample 5;"):
        small(RNNRegressor).fit(X.astype(np.float32), y3)
    # a list of Python floats is checked the same way
    with pytest.raises(ValueError, match="y contains NaN at sample 1;"):
        small(RNNRegressor).fit(X, [0.0, float("nan"), 0, 0, 0, 0])


def test_classifier_non_finite_labels_name_sample(rng):
    """NaN or inf among float labels names the sample (and step) before
    scikit-learn's anonymous "Input y contains NaN." (and its cast
    warning), in fit and score; at a padded step it is ignored."""
    X = rng.standard_normal((6, 5, 2))
    y = np.array([0.0, 1, 0, 1, np.nan, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match="^y contains NaN at sample 4; "
                           "expected a class label for every sequence$"):
            small(RNNClassifier).fit(X, y)
    clf = quiet(small(RNNClassifier).fit, X, np.nan_to_num(y))
    with pytest.raises(ValueError, match="y contains NaN at sample 4; "
                       "expected a class label"):
        clf.score(X, y)
    ys = np.zeros((6, 5))
    ys[2, 3] = np.inf
    with pytest.raises(ValueError, match=r"y contains infinity \(inf\) at "
                       r"sample 2, step 3 \(of that sequence's 5 steps\); "
                       "expected a class label at every step"):
        small(RNNClassifier, output="sequence").fit(X, ys)
    ragged = [X[0], X[1][:3], X[2][:4]]
    yr = np.zeros((3, 5))
    yr[:, 1] = 1.0
    yr[1, 4] = np.nan                          # padded: sample 1 has 3 steps
    seq = quiet(small(RNNClassifier, output="sequence").fit, ragged, yr)
    assert 0.0 <= seq.score(ragged, yr) <= 1.0


def test_score_non_finite_y_names_sample(rng):
    """score with NaN or inf in y names the sample (and the step for
    output="sequence") instead of returning NaN or sklearn's anonymous
    error; NaN at a padded step is ignored."""
    X = rng.standard_normal((6, 5, 2))
    est = quiet(small(RNNRegressor).fit, X, X.sum((1, 2)))
    y = X.sum((1, 2))
    y[2] = np.nan
    with pytest.raises(ValueError, match="y contains NaN at sample 2; "
                       "expected a finite target"):
        est.score(X, y)
    ys = X.sum(2)
    seq = quiet(small(RNNRegressor, output="sequence").fit, X, ys)
    bad = ys.copy()
    bad[1, 4] = np.inf
    with pytest.raises(ValueError, match=r"y contains infinity \(inf\) at "
                       r"sample 1, step 4 \(of that sequence's 5 steps\)"):
        seq.score(X, bad)
    ragged = [X[0], X[1][:3], X[2][:4]]
    yr = np.zeros((3, 5))
    yr[1, 4] = np.nan                          # padded: sample 1 has 3 steps
    assert np.isfinite(seq.score(ragged, yr))
    yr[2, 3] = np.nan                          # valid: sample 2 has 4 steps
    with pytest.raises(ValueError, match="y contains NaN at sample 2, step 3 "
                       r"\(of that sequence's 4 steps\)"):
        seq.score(ragged, yr)


def test_from_torch_state_dict_refuses_non_mappings_and_non_real_values(rng):
    """A state dict that is not a mapping is a TypeError saying what is
    expected; values of bool or strings (TypeError) or complex numbers
    (ValueError) name their key; nothing is loaded."""
    X = rng.standard_normal((6, 5, 2))
    est = quiet(small(RNNRegressor).fit, X, np.zeros(6))
    sd = est.to_torch_state_dict()
    params = est._params.copy()
    with pytest.raises(TypeError, match="state_dict is a list; expected a "
                       "mapping of names to arrays, such as torch's "
                       r"state_dict\(\)"):
        est.from_torch_state_dict(list(sd.items()))
    with pytest.raises(TypeError, match=r"state_dict\['out.bias'\] has dtype "
                       "bool; expected real floating-point"):
        est.from_torch_state_dict({**sd, "out.bias": np.ones(1, bool)})
    with pytest.raises(TypeError, match=r"state_dict\['out.bias'\] has dtype "
                       "<U"):
        est.from_torch_state_dict({**sd, "out.bias": np.array(["1.0"])})
    with pytest.raises(ValueError, match=r"state_dict\['weight_hh_l0'\] has "
                       "dtype complex128: Complex data not supported"):
        est.from_torch_state_dict({**sd, "weight_hh_l0":
                                   sd["weight_hh_l0"].astype(complex)})
    with pytest.raises(TypeError, match=r"state_dict\['out.bias'\] cannot be "
                       "read as a NumPy array"):
        est.from_torch_state_dict({**sd, "out.bias": [[1.0], [1.0, 2.0]]})
    with pytest.raises(ValueError, match=r"unexpected keys \[0\]"):
        est.from_torch_state_dict({**sd, 0: np.zeros(1)})
    np.testing.assert_array_equal(est._params, params)


def test_state_dict_round_trip_without_torch(rng):
    for cell in CELLS:
        X = rng.standard_normal((6, 5, 2))
        est = quiet(small(RNNRegressor, cell=cell, hidden_layer_sizes=(3, 4))
                    .fit, X, np.zeros(6))
        sd = est.to_torch_state_dict()
        assert sd["bias_hh_l1"].shape == sd["bias_ih_l1"].shape
        assert not sd["bias_hh_l0"].any()
        params = est._params.copy()
        sd["bias_hh_l0"] = sd["bias_hh_l0"] + 0.5      # moved between biases
        sd["bias_ih_l0"] = sd["bias_ih_l0"] - 0.5
        est.from_torch_state_dict(sd)
        np.testing.assert_allclose(est._params, params, atol=1e-15)
    with pytest.raises(ValueError, match="missing keys"):
        est.from_torch_state_dict({})
    with pytest.raises(ValueError, match="has shape"):
        est.from_torch_state_dict({**sd, "out.bias": np.zeros(3)})
    with pytest.raises(ValueError, match="NaN"):
        est.from_torch_state_dict({**sd, "out.bias": np.full(1, np.nan)})
    with pytest.raises(ValueError, match="identity"):       # cec: W_hh = I
        est.from_torch_state_dict({**sd, "weight_hh_l0": np.ones((3, 3))})
    lstm97 = quiet(small(RNNRegressor, cell="lstm1997").fit, X, np.zeros(6))
    sd = lstm97.to_torch_state_dict()
    assert sd["weight_ih_l0"].shape == (24, 2)              # nn.LSTM layout
    sd["bias_ih_l0"][6:12] = 0.0                             # forget gate shut
    with pytest.raises(ValueError, match="no forget gate"):
        lstm97.from_torch_state_dict(sd)
