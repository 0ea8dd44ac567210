"""SequenceScaler: per-feature standardisation over all steps, NaN padding
and ragged lists respected, inverse_transform, a Pipeline before the
estimators, and scikit-learn's estimator checks."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import cbptt
from cbptt import RNNClassifier, RNNRegressor, SequenceScaler


@parametrize_with_checks([SequenceScaler(), SequenceScaler(with_mean=False),
                          SequenceScaler(with_std=False)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_exported():
    assert "SequenceScaler" in cbptt.__all__
    assert cbptt.SequenceScaler is cbptt.preprocessing.SequenceScaler


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_feature_over_all_steps(rng, dtype):
    X = rng.normal([10.0, -3.0, 0.5], [5.0, 0.1, 2.0], (30, 12, 3)).astype(dtype)
    sc = SequenceScaler().fit(X)
    flat = X.reshape(-1, 3).astype(np.float64)
    ref = StandardScaler().fit(flat)
    np.testing.assert_allclose(sc.mean_, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(sc.var_, ref.var_, rtol=1e-12)
    np.testing.assert_allclose(sc.scale_, ref.scale_, rtol=1e-12)
    assert sc.n_steps_seen_ == 360 and sc.n_features_in_ == 3
    Xs = sc.transform(X)
    assert Xs.shape == X.shape and Xs.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(Xs.reshape(-1, 3), ref.transform(flat),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(sc.inverse_transform(Xs), X, rtol=tol, atol=tol)


def test_nan_padding_adds_nothing_and_stays_nan(rng):
    lengths = [5, 9, 2, 9, 7]
    seqs = [rng.normal(3.0, 2.0, (t, 2)) for t in lengths]
    padded = np.full((5, 9, 2), np.nan)
    for i, s in enumerate(seqs):
        padded[i, :len(s)] = s
    before = padded.copy()
    sc = SequenceScaler().fit(padded)
    allsteps = np.concatenate(seqs)
    np.testing.assert_allclose(sc.mean_, allsteps.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sc.scale_, allsteps.std(axis=0), rtol=1e-12)
    assert sc.n_steps_seen_ == sum(lengths)
    out = sc.transform(padded)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(padded))
    np.testing.assert_array_equal(padded, before)            # not written
    # the ragged list gives the same statistics and the same numbers
    sl = SequenceScaler().fit(seqs)
    np.testing.assert_array_equal(sl.mean_, sc.mean_)
    np.testing.assert_array_equal(sl.scale_, sc.scale_)
    out_list = sl.transform(seqs)
    assert [o.shape for o in out_list] == [s.shape for s in seqs]
    for i, o in enumerate(out_list):
        np.testing.assert_allclose(o, out[i, :lengths[i]], rtol=1e-12)
    back = sl.inverse_transform(out_list)
    for b, s in zip(back, seqs):
        np.testing.assert_allclose(b, s, rtol=1e-12)


def test_univariate_layouts(rng):
    X2 = rng.normal(4.0, 3.0, (20, 15))                # (n_samples, n_timesteps)
    sc = SequenceScaler().fit(X2)
    assert sc.mean_.shape == (1,) and sc.n_features_in_ == 15
    assert sc.mean_[0] == pytest.approx(X2.mean()) and \
        sc.scale_[0] == pytest.approx(X2.std())
    out = sc.transform(X2)
    assert out.shape == X2.shape
    np.testing.assert_allclose(out, (X2 - X2.mean()) / X2.std(), rtol=1e-12)
    ragged = [rng.normal(size=t) for t in (3, 8, 5)]   # 1-D items stay 1-D
    out = SequenceScaler().fit_transform(ragged)
    assert [o.shape for o in out] == [(3,), (8,), (5,)]


def test_options_and_constant_features(rng):
    X = rng.normal(2.0, 3.0, (10, 6, 2))
    X[..., 1] = 7.0                                    # constant feature
    sc = SequenceScaler().fit(X)
    assert sc.scale_[1] == 1.0
    np.testing.assert_allclose(sc.transform(X)[..., 1], 0.0)
    no_mean = SequenceScaler(with_mean=False).fit(X)
    assert no_mean.mean_ is None
    np.testing.assert_allclose(no_mean.transform(X), X / no_mean.scale_)
    no_std = SequenceScaler(with_std=False).fit(X)
    assert no_std.scale_ is None and no_std.var_ is None
    np.testing.assert_allclose(no_std.transform(X), X - no_std.mean_)


def test_errors_say_the_layout(rng):
    sc = SequenceScaler().fit(rng.normal(size=(10, 100, 6)))
    with pytest.raises(ValueError, match=r"X\.transpose\(0, 2, 1\)"):
        sc.transform(rng.normal(size=(4, 6, 100)))
    with pytest.raises(ValueError, match="expected a 3-D array"):
        sc.transform(rng.normal(size=6))
    with pytest.raises(ValueError, match="NaN"):
        bad = rng.normal(size=(4, 5, 6))
        bad[0, 0, 0] = np.nan
        sc.transform(bad)


def test_in_a_pipeline_before_the_estimators(rng):
    """Features on very different scales: the scaled pipeline learns, and
    it is the estimator fitted on the scaled sequences."""
    X = rng.standard_normal((120, 10, 2)) * [1000.0, 0.001] + [5e3, -2.0]
    signal = (X[..., 1] + 2.0) * 1000.0
    y = signal.mean(axis=1)
    kw = dict(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=40,
              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_pipeline(SequenceScaler(), RNNRegressor(**kw)).fit(X, y)
        direct = RNNRegressor(**kw).fit(SequenceScaler().fit_transform(X), y)
        clf = make_pipeline(SequenceScaler(), RNNClassifier(**kw)).fit(
            X, np.where(y > np.median(y), "hi", "lo"))
    np.testing.assert_array_equal(pipe.predict(X), direct.predict(
        SequenceScaler().fit(X).transform(X)))
    assert pipe.score(X, y) > 0.5
    assert clf.score(X, np.where(y > np.median(y), "hi", "lo")) > 0.8
