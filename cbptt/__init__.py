"""cbptt: exact, fast backpropagation through time for recurrent networks.

Public API: the functional layer API (``rnn_forward``/``rnn_backward`` and
friends) and the scikit-learn estimators.
"""
from cbptt.functional import (RNNForwardResult, RNNGradients, rnn_backward,
                              rnn_forward)

from cbptt._estimators import RNNClassifier, RNNRegressor

__version__ = "0.1.0"

__all__ = ["RNNForwardResult", "RNNGradients", "rnn_backward", "rnn_forward",
           "__version__"]
__all__ += ["RNNClassifier", "RNNRegressor"]
