"""scikit-learn's estimator checks over both estimators and several cells."""
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from cbptt import RNNClassifier, RNNRegressor

# Small, fast instances: the checks fit dozens of times on tiny data sets.
COMMON = dict(hidden_layer_sizes=(8,), learning_rate_init=0.02, max_iter=60,
              batch_size=16)
ESTIMATORS = [
    RNNRegressor(cell="elman", **COMMON),
    RNNClassifier(cell="elman", **COMMON),
    RNNRegressor(cell="elman", activation="relu", hidden_layer_sizes=(6, 5),
                 learning_rate_init=0.02, max_iter=60, batch_size=16),
    RNNClassifier(cell="elman", solver="sgd", hidden_layer_sizes=(8,),
                  learning_rate_init=0.1, max_iter=60, batch_size=16),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
