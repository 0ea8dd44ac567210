"""cbptt: exact, fast backpropagation through time for recurrent networks.

Public API: the functional layer API (``rnn_forward``/``rnn_backward`` and
friends), the scikit-learn estimators, the instruction-set control
(``get_isa``/``set_isa``), the thread cap (``get_num_threads``/
``set_num_threads``) and the report of both (``show_config``).
"""
from cbptt._source_tree import check_compiled

check_compiled()
del check_compiled
from cbptt.functional import (RNNForwardResult, RNNGradients, release_buffers,
                              rnn_backward, rnn_forward)

__version__ = "0.1.0"

__all__ = ["RNNForwardResult", "RNNGradients", "release_buffers",
           "rnn_backward", "rnn_forward", "__version__"]

from cbptt.functional import (CECForwardResult, CECGradients,  # noqa: E402
                              GRUForwardResult, GRUGradients,
                              LSTMForwardResult, LSTMGradients, cec_backward,
                              cec_forward, gru_backward, gru_forward,
                              lstm_backward, lstm_forward)

__all__ += ["CECForwardResult", "CECGradients", "GRUForwardResult",
            "GRUGradients", "LSTMForwardResult", "LSTMGradients",
            "cec_backward", "cec_forward", "gru_backward", "gru_forward",
            "lstm_backward", "lstm_forward"]

from cbptt._estimators import RNNClassifier, RNNRegressor  # noqa: E402

__all__ += ["RNNClassifier", "RNNRegressor"]
from cbptt.preprocessing import SequenceScaler  # noqa: E402

__all__ += ["SequenceScaler"]
# Safe persistence (issue 6): est.save(path) writes, cbptt.load(path) reads.
from cbptt._persistence import load  # noqa: E402

__all__ += ["load"]
# The kernels' instruction set (issue 21): query it, force a level.
from cbptt._isa import check_environment as _check_isa_environment  # noqa: E402
from cbptt._isa import get_isa, set_isa  # noqa: E402

_check_isa_environment()
__all__ += ["get_isa", "set_isa"]
# The thread policy (issue 21): see it, cap it.
from cbptt._threads import (check_environment as  # noqa: E402
                            _check_threads_environment)
from cbptt._threads import (get_num_threads, set_num_threads,  # noqa: E402
                            show_config)

_check_threads_environment()
__all__ += ["get_num_threads", "set_num_threads", "show_config"]
