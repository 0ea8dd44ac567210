"""scikit-learn's estimator checks over both estimators and every cell.

The checks fit dozens of times on tiny tabular data sets (a 2-D X is read as
univariate series), so the instances are small and quick; they must still
learn well enough for check_classifiers_train (accuracy > 0.83) and
check_regressors_train (R^2 > 0.5); the CEC, which only sees the sum of the
steps, carries scikit-learn's ``poor_score`` tag for those two. No check is
expected to fail.
"""
from sklearn.utils.estimator_checks import parametrize_with_checks

from cbptt import RNNClassifier, RNNRegressor
from cbptt._cells import CELLS

FAST = dict(hidden_layer_sizes=(8,), learning_rate_init=0.02, max_iter=60)
ESTIMATORS = [
    # Both estimators with every cell of the registry.
    *(est(cell=cell, **FAST) for cell in CELLS
      for est in (RNNRegressor, RNNClassifier)),
    # Stacked layers, another activation, the other solvers.
    RNNRegressor(cell="elman", activation="relu", hidden_layer_sizes=(6, 5),
                 learning_rate_init=0.01, max_iter=60),
    RNNClassifier(cell="elman", solver="sgd", learning_rate_init=0.1,
                  hidden_layer_sizes=(8,), max_iter=60),
    RNNClassifier(cell="lstm", solver="rmsprop", learning_rate_init=0.01,
                  hidden_layer_sizes=(8,), max_iter=60),
    # Recording the error flow every epoch changes nothing the checks see.
    RNNRegressor(cell="elman", record_error_flow="epoch", **FAST),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
