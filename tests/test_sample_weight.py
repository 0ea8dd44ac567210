"""sample_weight in fit and partial_fit: the weighted loss is the loss of
repeated sequences (integer weights) or of fewer sequences (zero weights),
in the compiled head, in one mini-batch's gradient and in whole fits; early
stopping scores the validation set with its weights; bad weights are refused
by name and lose nothing."""
import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.utils import check_random_state

from cbptt import RNNClassifier, RNNRegressor, _train
from cbptt._cells import make_cell
from cbptt._estimators import _BaseRNN
from cbptt._network import (Network, SoftmaxCrossEntropy, SquaredError,
                            Trainer, Workspace)

from conftest import rel_err


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", "batch_size=", UserWarning)
        yield


# -- the compiled head --------------------------------------------------------
def numpy_weighted_head(h, w, b, y, codes, valid, weight):
    z = h @ w.T + b
    ok = (np.ones(len(h), bool) if valid is None else valid.astype(bool))
    ok &= weight != 0
    if codes is None:
        dz = z - y
        per_row = 0.5 * np.sum(dz ** 2, axis=1)
    else:
        m = z.max(axis=1, keepdims=True)
        p = np.exp(z - m) / np.exp(z - m).sum(axis=1, keepdims=True)
        per_row = -np.log(p[np.arange(len(h)), codes])
        dz = p
        dz[np.arange(len(h)), codes] -= 1.0
    dz = dz * weight[:, None]
    dz[~ok] = 0.0
    total_w = weight[ok].sum()
    dz /= total_w
    return (np.sum(weight[ok] * per_row[ok]), total_w, dz.T @ h, dz.sum(axis=0),
            dz @ w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classify", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_weighted_dense_head_matches_numpy(rng, dtype, classify, masked):
    n, H, k = 9, 5, 3
    h = rng.standard_normal((n, H)).astype(dtype)
    w = rng.standard_normal((k, H)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    y = None if classify else rng.standard_normal((n, k)).astype(dtype)
    codes = rng.integers(0, k, n).astype(np.int32) if classify else None
    valid = (rng.random(n) > 0.3).astype(np.uint8) if masked else None
    weight = rng.uniform(0.1, 3.0, n).astype(dtype)
    weight[[1, 4]] = 0.0                       # zero weight: as if padded
    h[1] = 1e30                                # ... so it never leaks
    z = np.empty((n, k), dtype)
    dw, db, dh = np.empty((k, H), dtype), np.empty(k, dtype), np.empty((n, H), dtype)
    code = _train.SOFTMAX_CROSS_ENTROPY if classify else _train.SQUARED_ERROR
    loss, total_w = _train.dense_head_weighted(h, w, b, y, codes, valid, code,
                                               z, dw, db, dh, weight)
    h64 = np.where(np.abs(h) < 1e29, h, 0).astype(np.float64)
    ref = numpy_weighted_head(h64, w.astype(np.float64), b.astype(np.float64),
                              None if y is None else y.astype(np.float64),
                              codes, valid, weight.astype(np.float64))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert isinstance(total_w, float) and total_w == pytest.approx(ref[1], rel=tol)
    assert loss == pytest.approx(ref[0], rel=tol)
    for got, want in zip((dw, db, dh), ref[2:]):
        assert rel_err(got, want) < tol
    assert (dh[1] == 0).all() and (dh[4] == 0).all()


def test_unit_weights_give_the_unweighted_bits(rng):
    n, H, k = 7, 4, 2
    h, y = rng.standard_normal((n, H)), rng.standard_normal((n, k))
    w, b = rng.standard_normal((k, H)), rng.standard_normal(k)
    outs = []
    for weight in (None, np.ones(n)):
        z, dw, db, dh = (np.empty((n, k)), np.empty((k, H)), np.empty(k),
                         np.empty((n, H)))
        args = (h, w, b, y, None, None, _train.SQUARED_ERROR, z, dw, db, dh)
        s, c = (_train.dense_head(*args) if weight is None
                else _train.dense_head_weighted(*args, weight))
        outs.append((s, c, dw, db, dh))
    assert outs[0][0] == outs[1][0] and outs[0][1] == outs[1][1] == n
    for a, b_ in zip(outs[0][2:], outs[1][2:]):
        np.testing.assert_array_equal(a, b_)


def test_dense_head_refuses_a_weight_of_another_length():
    h, w, b = np.zeros((3, 2)), np.zeros((2, 2)), np.zeros(2)
    z, dw, db, dh = np.empty((3, 2)), np.empty((2, 2)), np.empty(2), np.empty((3, 2))
    with pytest.raises(ValueError, match="inconsistent"):
        _train.dense_head_weighted(h, w, b, np.zeros((3, 2)), None, None,
                                   _train.SQUARED_ERROR, z, dw, db, dh,
                                   np.ones(2))
    with pytest.raises(ValueError, match="weight is None"):
        _train.dense_head_weighted(h, w, b, np.zeros((3, 2)), None, None,
                                   _train.SQUARED_ERROR, z, dw, db, dh, None)


# -- one mini-batch's gradient: weighted == repeated -------------------------
class Capture:
    """An optimizer that records the gradient and the L2 batch size."""

    def begin_batch(self, batch_size):
        self.size = batch_size

    def step(self, params, grads):
        self.grads = grads.copy()


def batch_gradient(net, params, loss, output, x, lengths, target, weight=None,
                   size=None):
    T, B = x.shape[:2]
    cap = Capture()
    tr = Trainer(net, params, loss, output, None, cap,
                 Workspace(net, T, B, np.float64))
    s, n = tr.batch(x, lengths, target, weight, size)
    return s, n, cap.grads, cap.size


@pytest.mark.parametrize("cell", ["lstm", "elman", "cec"])
@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("classify", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_weighted_batch_gradient_is_the_repeated_batch_gradient(
        rng, cell, output, classify, padded):
    T, B, F, k = 6, 4, 2, 3
    net = Network(make_cell(cell, "tanh"), F, (4,), k)
    params = net.init_params(check_random_state(0), np.float64, 0.5)
    params += 0.3 * rng.standard_normal(params.shape)
    x = rng.standard_normal((T, B, F))
    lengths = np.array([T, 2, 5, 1], np.intp) if padded else None
    if padded:
        x[np.arange(T)[:, None] >= lengths[None, :]] = 0.0
    if output == "last":
        target = (rng.integers(0, k, B).astype(np.int32) if classify
                  else rng.standard_normal((B, k)))
    else:
        target = (rng.integers(0, k, (T, B, 1)).astype(np.int32) if classify
                  else rng.standard_normal((T, B, k)))
    counts = np.array([2, 0, 3, 1])
    rep = np.repeat(np.arange(B), counts)
    loss = SoftmaxCrossEntropy() if classify else SquaredError()
    weight = counts.astype(np.float64)
    if output == "sequence":
        weight = np.broadcast_to(weight, (T, B)).copy()
        if padded:
            weight[np.arange(T)[:, None] >= lengths[None, :]] = 0.0
        weight = weight[:, :, None]
    s_w, n_w, g_w, size_w = batch_gradient(net, params.copy(), loss, output, x,
                                           lengths, target, weight,
                                           float(counts.sum()))
    s_r, n_r, g_r, size_r = batch_gradient(
        net, params.copy(), loss, output, np.ascontiguousarray(x[:, rep]),
        None if lengths is None else lengths[rep],
        np.ascontiguousarray(target[rep] if output == "last" else target[:, rep]))
    assert size_w == size_r == counts.sum()
    assert n_w == pytest.approx(n_r, rel=1e-15)
    assert s_w == pytest.approx(s_r, rel=1e-12)
    assert rel_err(g_w, g_r) < 1e-12


# -- whole fits ----------------------------------------------------------------
def data(rng, n=12, T=7, F=2, output="last", classify=False):
    X = rng.standard_normal((n, T, F))
    if output == "last":
        y = X.sum(axis=(1, 2))
    else:
        y = np.cumsum(X[..., 0], axis=1)
    if classify:
        y = np.where(y > 0, "pos", "neg")
    return X, y


def deterministic(cls, **kw):
    """One mini-batch of every sequence, no shuffling: a fit is a function of
    the (multi)set of sequences."""
    params = dict(hidden_layer_sizes=(5,), max_iter=4, batch_size=200,
                  shuffle=False, random_state=0, alpha=0.01,
                  learning_rate_init=0.01)
    params.update(kw)
    return cls(**params)


CASES = [(RNNRegressor, "last", {}), (RNNRegressor, "sequence", {}),
         (RNNClassifier, "last", {}), (RNNClassifier, "sequence", {}),
         (RNNRegressor, "last", dict(solver="sgd", cell="elman")),
         (RNNRegressor, "sequence", dict(solver="rmsprop", cell="lstm1997",
                                         bptt_truncate=3))]


@pytest.mark.parametrize("cls,output,kw", CASES)
def test_integer_weights_fit_as_repeated_sequences(rng, cls, output, kw):
    X, y = data(rng, output=output, classify=cls is RNNClassifier)
    counts = rng.integers(1, 4, len(X))
    weighted = deterministic(cls, output=output, **kw).fit(
        X, y, sample_weight=counts)
    repeated = deterministic(cls, output=output, **kw).fit(
        np.repeat(X, counts, axis=0), np.repeat(y, counts, axis=0))
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_,
                               rtol=1e-10)
    np.testing.assert_allclose(weighted._params, repeated._params, rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("cls,output,kw", CASES)
def test_zero_weights_fit_as_dropped_sequences(rng, cls, output, kw):
    X, y = data(rng, output=output, classify=cls is RNNClassifier)
    w = np.ones(len(X))
    w[[0, 3, 4]] = 0.0
    keep = w > 0
    weighted = deterministic(cls, output=output, **kw).fit(
        X, y, sample_weight=w)
    dropped = deterministic(cls, output=output, **kw).fit(X[keep], y[keep])
    np.testing.assert_allclose(weighted.loss_curve_, dropped.loss_curve_,
                               rtol=1e-10)
    np.testing.assert_allclose(weighted._params, dropped._params, rtol=1e-9,
                               atol=1e-12)


def test_unit_weights_are_no_weights_bit_for_bit(rng):
    X, y = data(rng, n=40)
    a = RNNRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    b = RNNRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    a.fit(X, y)
    b.fit(X, y, sample_weight=np.ones(len(X)))
    np.testing.assert_array_equal(a._params, b._params)
    assert a.loss_curve_ == b.loss_curve_


def test_weights_change_the_fit(rng):
    X, y = data(rng, n=40)
    w = np.linspace(0.1, 3.0, len(X))
    a = RNNRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    b = RNNRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    assert not np.allclose(a.fit(X, y)._params,
                           b.fit(X, y, sample_weight=w)._params)


@pytest.mark.parametrize("cls", [RNNRegressor, RNNClassifier])
def test_partial_fit_weights_as_repeated_sequences(rng, cls):
    X, y = data(rng, classify=cls is RNNClassifier)
    counts = rng.integers(0, 3, len(X))
    counts[0] = 1
    extra = {} if cls is RNNRegressor else {"classes": np.unique(y)}
    weighted = deterministic(cls)
    repeated = deterministic(cls)
    Xr, yr = np.repeat(X, counts, axis=0), np.repeat(y, counts, axis=0)
    for _ in range(3):
        weighted.partial_fit(X, y, sample_weight=counts, **extra)
        repeated.partial_fit(Xr, yr, **extra)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_,
                               rtol=1e-10)
    np.testing.assert_allclose(weighted._params, repeated._params, rtol=1e-9,
                               atol=1e-12)


def test_per_step_weights(rng):
    """With output="sequence": (n_samples, n_timesteps) weights that are
    zero after step k fit as the sequences cut at k (alpha=0: the L2 divisor
    is the only other place weights enter); a weight per sequence is its
    steps' weight; a list of per-step weights serves list X."""
    X, y = data(rng, output="sequence")
    k = 4
    w = np.zeros(y.shape)
    w[:, :k] = 1.0
    kw = dict(output="sequence", alpha=0.0)
    steps = deterministic(RNNRegressor, **kw).fit(X, y, sample_weight=w)
    cut = deterministic(RNNRegressor, **kw).fit(X[:, :k], y[:, :k])
    np.testing.assert_allclose(steps._params, cut._params, rtol=1e-9,
                               atol=1e-12)
    sw = rng.uniform(0.5, 2.0, len(X))
    per_seq = deterministic(RNNRegressor, **kw).fit(X, y, sample_weight=sw)
    broad = deterministic(RNNRegressor, **kw).fit(
        X, y, sample_weight=np.repeat(sw[:, None], y.shape[1], axis=1))
    np.testing.assert_allclose(per_seq._params, broad._params, rtol=1e-12)
    lengths = [7, 3, 5, 7, 2, 6, 7, 4, 7, 7, 1, 5]
    Xl = [X[i, :t] for i, t in enumerate(lengths)]
    yl = [y[i, :t] for i, t in enumerate(lengths)]
    wl = [np.r_[np.ones(min(t, k)), np.zeros(t - min(t, k))]
          for t in lengths]
    a = deterministic(RNNRegressor, **kw).fit(Xl, yl, sample_weight=wl)
    b = deterministic(RNNRegressor, **kw).fit(
        [x[:k] for x in Xl], [t[:k] for t in yl])
    np.testing.assert_allclose(a._params, b._params, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cls,output", [(RNNRegressor, "last"),
                                        (RNNRegressor, "sequence"),
                                        (RNNClassifier, "last")])
def test_early_stopping_weights_the_validation_score(rng, cls, output,
                                                     monkeypatch):
    """The validation score is the weighted score of the held-out sequences
    (as scikit-learn's MLP computes it); with one epoch the weights kept are
    those scored."""
    X, y = data(rng, n=30, output=output, classify=cls is RNNClassifier)
    w = rng.uniform(0.0, 3.0, len(X))
    val = np.arange(20, 30)
    monkeypatch.setattr(_BaseRNN, "_split",
                        lambda self, idx, targets, rng_: (idx[:20], idx[20:]))
    est = cls(hidden_layer_sizes=(5,), max_iter=1, early_stopping=True,
              output=output, random_state=0).fit(X, y, sample_weight=w)
    weighted = est.score(X[val], y[val], sample_weight=w[val])
    plain = est.score(X[val], y[val])
    assert est.validation_scores_[0] == pytest.approx(weighted, rel=1e-6)
    assert weighted != pytest.approx(plain, rel=1e-6)
    if cls is RNNRegressor and output == "last":
        assert weighted == pytest.approx(
            r2_score(y[val], est.predict(X[val]), sample_weight=w[val]))


def test_early_stopping_refuses_an_all_zero_validation_set(rng, monkeypatch):
    X, y = data(rng, n=20)
    w = np.ones(len(X))
    w[15:] = 0.0
    monkeypatch.setattr(_BaseRNN, "_split",
                        lambda self, idx, targets, rng_: (idx[:15], idx[15:]))
    with pytest.raises(ValueError, match="zero for every validation sequence"):
        RNNRegressor(hidden_layer_sizes=(4,), early_stopping=True,
                     max_iter=2).fit(X, y, sample_weight=w)


BAD_WEIGHTS = [
    ("negative", lambda n: np.r_[-1.0, np.ones(n - 1)], "negative values"),
    ("short", lambda n: np.ones(n - 1), "shape (11,) for X of 12 samples"),
    ("long", lambda n: np.ones(n + 3), "shape (15,) for X of 12 samples"),
    ("2-D", lambda n: np.ones((n, 2)), "expected a scalar or an array of shape"),
    ("nan", lambda n: np.r_[np.nan, np.ones(n - 1)], "NaN or infinity"),
    ("inf", lambda n: np.r_[np.inf, np.ones(n - 1)], "NaN or infinity"),
    ("zeros", lambda n: np.zeros(n), "zero everywhere"),
    ("strings", lambda n: np.array(["1"] * n), "sample_weight has dtype <U1"),
]


@pytest.mark.parametrize("cls", [RNNRegressor, RNNClassifier])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("label,make,words", BAD_WEIGHTS)
def test_bad_weights_are_refused_and_lose_nothing(rng, cls, method, label,
                                                  make, words):
    X, y = data(rng, classify=cls is RNNClassifier)
    est = deterministic(cls).fit(X, y)
    before = est._params.copy(), list(est.loss_curve_)
    with pytest.raises((ValueError, TypeError), match=re.escape(words)) as info:
        getattr(est, method)(X, y, sample_weight=make(len(X)))
    assert "sample_weight" in str(info.value)
    np.testing.assert_array_equal(est._params, before[0])
    assert est.loss_curve_ == before[1]


def test_bad_per_step_weights_are_refused(rng):
    X, y = data(rng, output="sequence")
    est = deterministic(RNNRegressor, output="sequence")
    with pytest.raises(ValueError, match=re.escape("(n_samples, n_timesteps)")):
        est.fit(X, y, sample_weight=np.ones((len(X), 3)))
    w = np.ones(y.shape)
    w[2, 3] = -1.0
    with pytest.raises(ValueError, match="negative"):
        est.fit(X, y, sample_weight=w)
    Xl = [X[0], X[1, :3]]
    with pytest.raises(ValueError, match=re.escape("sample_weight[1]")):
        est.fit(Xl, [y[0], y[1, :3]], sample_weight=[np.ones(7), np.ones(4)])
    # weights beyond a NaN-padded sequence's end are ignored, even NaN ones
    Xp = X.copy()
    Xp[0, 5:] = np.nan
    w = np.ones(y.shape)
    w[0, 5:] = np.nan
    est.fit(Xp, y, sample_weight=w)


@pytest.mark.parametrize("weighted", [False, True])
def test_early_stopping_on_variable_length_step_targets(rng, weighted):
    """output="sequence" with early stopping on a list whose longest
    sequence is in the training part: the validation sequences are trimmed
    to their own longest, and so are their targets and weights (an
    IndexError before)."""
    X = [rng.standard_normal((t, 2)) for t in rng.integers(3, 12, 30)]
    X[0] = rng.standard_normal((40, 2))
    y = [np.cumsum(x[:, 0]) for x in X]
    w = rng.uniform(0.5, 2.0, len(X)) if weighted else None
    for seed in range(4):
        est = RNNRegressor(output="sequence", early_stopping=True, max_iter=2,
                           hidden_layer_sizes=(4,), random_state=seed)
        est.fit(X, y, sample_weight=w)
        assert len(est.validation_scores_) == 2


@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("cls", [RNNRegressor, RNNClassifier])
def test_score_checks_sample_weight_as_fit_does(rng, cls, output):
    """score(sample_weight=) accepts and refuses what fit does: a scalar
    is every sequence's weight; negative, NaN, boolean, all-zero or
    wrongly shaped weights are refused by name (score took negative and
    boolean weights, and refused a scalar with r2_score's own error)."""
    X, y = data(rng, classify=cls is RNNClassifier, output=output)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = cls(hidden_layer_sizes=(4,), output=output, max_iter=2,
                  random_state=0).fit(X, y)
    n = len(X)
    assert est.score(X, y, sample_weight=2.0) == pytest.approx(
        est.score(X, y), rel=1e-12)
    assert est.score(X, y, sample_weight=np.ones(n)) == est.score(X, y)
    bad = [(-np.ones(n), ValueError, "negative"),
           (np.full(n, np.nan), ValueError, "NaN"),
           (np.zeros(n), ValueError, "zero everywhere"),
           (np.ones(n + 1), ValueError, "shape"),
           (np.ones(n, bool), TypeError, "bool")]
    for sw, exc, what in bad:
        for call in (lambda: est.score(X, y, sample_weight=sw),
                     lambda: cls(hidden_layer_sizes=(4,), output=output,
                                 max_iter=1).fit(X, y, sample_weight=sw)):
            with pytest.raises(exc, match="sample_weight") as info:
                call()
            assert what in str(info.value)
