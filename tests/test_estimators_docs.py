"""The docstring examples run: the estimators' and the functional API's.
(README.md's and the user guide's code blocks: tests/test_readme.py.)"""
import doctest
import warnings

from sklearn.exceptions import ConvergenceWarning

import cbptt._estimators


def test_docstring_examples():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = doctest.testmod(cbptt._estimators, verbose=False)
    assert result.attempted >= 10 and result.failed == 0


def test_functional_docstring_examples():
    import cbptt.functional
    result = doctest.testmod(cbptt.functional, verbose=False)
    assert result.attempted >= 40 and result.failed == 0
