"""Data layouts that cannot be silently mistaken: cbptt is channels-last;
errors about ranks, feature counts and step counts name the argument, say
how it was read and which shapes are accepted, and point at the conversion
from aeon's and sktime's channels-first layout when the data looks like it.
"""
import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import cbptt
from cbptt import RNNClassifier, RNNRegressor

ACCEPTED = ("expected a 3-D array (n_samples, n_timesteps, n_features), a 2-D "
            "array (n_samples, n_timesteps) of univariate series, or a list")


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def fitted(cls, X, **kw):
    y = X.reshape(len(X), -1).sum(axis=1) if not isinstance(X, list) else \
        np.array([x.sum() for x in X])
    if cls is RNNClassifier:
        y = y > np.median(y)
    return cls(hidden_layer_sizes=(4,), max_iter=1, random_state=0, **kw).fit(X, y)


@pytest.mark.parametrize("cls", [RNNRegressor, RNNClassifier])
def test_two_d_columns_are_time_steps(rng, cls):
    est = fitted(cls, rng.standard_normal((20, 30)))
    with pytest.raises(ValueError) as info:
        est.predict(rng.standard_normal((5, 40)))
    msg = str(info.value)
    # scikit-learn's words first (its checks match them), then the layout
    assert msg.startswith(f"X has 40 features, but {cls.__name__} is "
                          "expecting 30 features as input.")
    assert "(n_samples, n_timesteps) univariate series" in msg
    assert "fitted on 2-D X of 30 time steps" in msg
    assert "X[:, :, None]" in msg
    # ... which works: any number of steps as 3-D univariate series
    assert len(est.predict(rng.standard_normal((5, 40))[:, :, None])) == 5


@pytest.mark.parametrize("cls", [RNNRegressor, RNNClassifier])
def test_channels_first_3d_data_is_named(rng, cls):
    """aeon's BasicMotions is (40, 6, 100): 6 channels, 100 time points."""
    est = fitted(cls, rng.standard_normal((20, 100, 6)))
    aeon_like = rng.standard_normal((5, 6, 100))
    for method in ("predict", "score", "partial_fit"):
        args = (aeon_like,) if method == "predict" else (
            aeon_like, est.predict(aeon_like.transpose(0, 2, 1)))
        with pytest.raises(ValueError) as info:
            getattr(est, method)(*args)
        msg = str(info.value)
        assert msg.startswith("X has 100 features per time step, but "
                              f"{cls.__name__} is expecting 6 features")
        assert "read channels-last, (n_samples, n_timesteps, n_features) = " \
               "(5, 6, 100)" in msg
        assert "looks like channels-first" in msg
        assert "X.transpose(0, 2, 1)" in msg
    other = rng.standard_normal((5, 8, 3))             # not a transpose
    with pytest.raises(ValueError, match=re.escape("converts with X.transpose")):
        est.predict(other)


def test_fitted_on_2d_predicting_multivariate_3d(rng):
    est = fitted(RNNRegressor, rng.standard_normal((20, 30)))
    with pytest.raises(ValueError, match="fitted on 2-D X, which is "
                       r"\(n_samples, n_timesteps\) univariate series"):
        est.predict(rng.standard_normal((5, 30, 3)))


def test_unequal_length_aeon_list(rng):
    """aeon's unequal-length collections are lists of (n_channels,
    n_timepoints_i) arrays."""
    aeon_list = [rng.standard_normal((6, 50 + i)) for i in range(8)]
    with pytest.raises(ValueError) as info:
        RNNRegressor(max_iter=1).fit(aeon_list, np.zeros(8))
    msg = str(info.value)
    assert "different numbers of features [50, 51, 52, 53, 54, ...]" in msg
    assert "(n_timesteps_i, n_features) arrays, time steps in rows" in msg
    assert "Every array has 6 rows" in msg and "[x.T for x in X]" in msg
    # the conversion the message gives works
    est = RNNRegressor(hidden_layer_sizes=(4,), max_iter=1).fit(
        [x.T for x in aeon_list], np.zeros(8))
    assert est.n_features_in_ == 6
    # a ragged list that is not channels-first gets no such advice
    with pytest.raises(ValueError) as info:
        est.fit([rng.standard_normal((5, 2)), rng.standard_normal((7, 3))],
                np.zeros(2))
    assert "channels-first" not in str(info.value)
    # a list with the wrong number of features (channels-last) is read so
    with pytest.raises(ValueError, match=re.escape("[x.T for x in X]")):
        est.predict([rng.standard_normal((9, 5)), rng.standard_normal((4, 5))])


BAD_RANKS = [
    ("1-D", lambda X: X[:, 0, 0], "X has 1 dimension with shape (24,)"),
    ("4-D", lambda X: X[..., None], "X has 4 dimensions with shape (24, 6, 3, 1)"),
    ("scalar", lambda X: 1.5, "X has 0 dimensions with shape ()"),
    ("None", lambda X: None, "X is None"),
]


@pytest.mark.parametrize("cls", [RNNRegressor, RNNClassifier])
@pytest.mark.parametrize("label,make,words", BAD_RANKS)
def test_rank_errors_name_x_and_the_accepted_shapes(rng, cls, label, make,
                                                    words):
    X = rng.standard_normal((24, 6, 3))
    est = fitted(cls, X)
    y = est.predict(X)
    for method in ("fit", "partial_fit", "predict", "score"):
        args = (make(X),) if method == "predict" else (make(X), y)
        with pytest.raises(ValueError) as info:
            getattr(est, method)(*args)
        msg = str(info.value)
        assert words in msg and ACCEPTED in msg, (method, msg)
        assert "while dim <= 2" not in msg and "Expected 2D array" not in msg
    if label == "1-D":            # scikit-learn's check_fit2d_predict1d wants it
        with pytest.raises(ValueError, match="Reshape your data"):
            est.predict(make(X))


@pytest.mark.parametrize("y,words", [
    (np.zeros((24, 2, 2)), "y has 3 dimensions with shape (24, 2, 2); "
     "expected with output='last' (n_samples,) or (n_samples, n_outputs)"),
    (1.0, "y has 0 dimensions with shape (); expected with output='last'"),
    ([[1.0, 2.0], [3.0]], "y is a nested sequence of unequal lengths; "
     "expected with output='last'"),
])
def test_regressor_target_rank_errors(rng, y, words):
    X = rng.standard_normal((24, 6, 3))
    for method in ("fit", "partial_fit"):
        with pytest.raises(ValueError, match=re.escape(words)):
            getattr(RNNRegressor(max_iter=1), method)(X, y)


@pytest.mark.parametrize("y,words", [
    (np.zeros((24, 2)), "y has shape (24, 2); with output='last' expected "
     "(n_samples,): one label per sequence"),
    (np.zeros((24, 2, 2)), "y has 3 dimensions with shape (24, 2, 2); "
     "expected with output='last' (n_samples,)"),
    ("a", "y has 0 dimensions with shape ()"),
])
def test_classifier_target_rank_errors(rng, y, words):
    X = rng.standard_normal((24, 6, 3))
    with pytest.raises(ValueError, match=re.escape(words)):
        RNNClassifier(max_iter=1).fit(X, y)


def test_docstrings_state_the_layout():
    for obj in (RNNRegressor, RNNClassifier, RNNRegressor.fit,
                RNNClassifier.fit, cbptt.SequenceScaler):
        doc = " ".join(obj.__doc__.split())
        assert "channels-first" in doc and "X.transpose(0, 2, 1)" in doc, obj
    for cls in (RNNRegressor, RNNClassifier):
        doc = " ".join(cls.__doc__.split())
        assert "channels-last" in doc and "[x.T for x in X]" in doc
        assert "convention of tslearn and aeon" not in doc
