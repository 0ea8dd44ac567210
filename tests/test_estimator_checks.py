"""scikit-learn's estimator checks over both estimators and every cell.

The checks fit dozens of times on tiny tabular data sets (a 2-D X is read as
univariate series), so the instances are small and quick; they must still
learn well enough for check_classifiers_train (accuracy > 0.83) and
check_regressors_train (R^2 > 0.5); the CEC, which only sees the sum of the
steps, carries scikit-learn's ``poor_score`` tag for those two.

One check is expected to fail on three instances:
check_sample_weight_equivalence_on_dense_data fits integer weights and the
repeated rows and compares predictions to rtol=1e-7. Both fits are one
mini-batch of the same multiset of sequences, so their gradients agree to
rounding (tests/test_sample_weight.py: 1e-12), but these Elman layers' large
steps (learning_rate_init 0.02 with Adam, 0.1 with SGD) make 60 epochs
amplify that rounding past 1e-7. The same check runs on those instances with
stable step sizes below, and passes on every other instance.
"""
import pytest
from sklearn.utils.estimator_checks import (
    check_sample_weight_equivalence_on_dense_data, parametrize_with_checks)

from cbptt import RNNClassifier, RNNRegressor
from cbptt._cells import CELLS

FAST = dict(hidden_layer_sizes=(8,), learning_rate_init=0.02, max_iter=60)
SGD_ELMAN = RNNClassifier(cell="elman", solver="sgd", learning_rate_init=0.1,
                          hidden_layer_sizes=(8,), max_iter=60)
# Recording the error flow every epoch changes nothing the checks see.
RECORDING = RNNRegressor(cell="elman", record_error_flow="epoch", **FAST)
ESTIMATORS = [
    # Both estimators with every cell of the registry.
    *(est(cell=cell, **FAST) for cell in CELLS
      for est in (RNNRegressor, RNNClassifier)),
    # Stacked layers, another activation, the other solvers.
    RNNRegressor(cell="elman", activation="relu", hidden_layer_sizes=(6, 5),
                 learning_rate_init=0.01, max_iter=60),
    SGD_ELMAN,
    RNNClassifier(cell="lstm", solver="rmsprop", learning_rate_init=0.01,
                  hidden_layer_sizes=(8,), max_iter=60),
    RECORDING,
]
# see the module docstring
CHAOTIC = [next(e for e in ESTIMATORS if isinstance(e, RNNRegressor)
                and e.get_params() == RNNRegressor(cell="elman",
                                                   **FAST).get_params()),
           SGD_ELMAN, RECORDING]


def expected_failed_checks(estimator):
    if any(estimator is e for e in CHAOTIC):
        return {"check_sample_weight_equivalence_on_dense_data":
                "rounding amplified by large steps; rerun with stable steps "
                "in test_sample_weight_equivalence_with_stable_steps"}
    return {}


@parametrize_with_checks(ESTIMATORS,
                         expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", [
    RNNRegressor(cell="elman", hidden_layer_sizes=(8,),
                 learning_rate_init=0.005, max_iter=60),
    RNNClassifier(cell="elman", solver="sgd", learning_rate_init=0.005,
                  hidden_layer_sizes=(8,), max_iter=60),
    RNNRegressor(cell="elman", hidden_layer_sizes=(8,),
                 learning_rate_init=0.005, max_iter=60,
                 record_error_flow="epoch"),
], ids=repr)
def test_sample_weight_equivalence_with_stable_steps(estimator):
    check_sample_weight_equivalence_on_dense_data(type(estimator).__name__,
                                                  estimator)
