"""The estimators' BPTT diagnostics methods: error_signals, error_flow, generate."""
import warnings

import numpy as np
import pytest

from cbptt import RNNClassifier, RNNRegressor, diagnostics
from cbptt.datasets import load_text


@pytest.mark.parametrize("cell", ["elman", "lstm", "cec"])
def test_methods_match_diagnostics(cell):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 6, 2))
    y = X.sum(axis=(1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = RNNRegressor(cell=cell, hidden_layer_sizes=(3,), max_iter=3,
                           random_state=0).fit(X, y)
    sig = est.error_signals(X, y)
    ref = diagnostics.estimator_error_signals(est, X, y)
    np.testing.assert_array_equal(sig[0].delta, ref[0].delta)
    flow = est.error_flow(X)
    assert flow.ratio.shape == (6,) and flow.ratio[0] == pytest.approx(1.0)
    if cell == "cec":
        np.testing.assert_allclose(flow.ratio, 1.0, rtol=1e-12)


def test_unfitted_methods_raise():
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        RNNRegressor().error_flow(np.zeros((2, 3, 1)))


def test_generate_from_char_model():
    text, codec = load_text()
    text = text[:3000]
    X, y = codec.sequences(text, 20, max_sequences=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = RNNClassifier(cell="lstm", hidden_layer_sizes=(16,), output="sequence",
                            max_iter=1, random_state=0).fit(X, y)
    out = clf.generate("The ", n_chars=30, temperature=0.8, codec=codec, random_state=0)
    assert isinstance(out, str) and len(out) >= 30
