"""The activations: one table, from the C codes to scikit-learn's names.

Contract
--------
The kernels know an activation by its code; ``src/cbptt_math.h`` defines the
codes and their names (``cbptt_activation_names``), and :data:`ACTIVATIONS`
is built from that C table, so a name and its code cannot drift apart. Each
entry adds what the Python side needs of the function ``f``:

* ``fprime_sup``: ``sup |f'|``, the factor of the error-flow bound
  ``|d delta(t-q) / d delta(t)| <= (sup|f'| ||W_hh||)^q`` (0.25 for the
  logistic: with ``|w| < 4`` the error always vanishes);
* ``bounded``: ``|f| <= 1``, so a state entering a step needs no scan to
  bound the next pre-activation;
* ``fprime(y)``: ``f'(net)`` from the output ``y = f(net)``, as the kernels
  take it (``1 - y^2`` for tanh, ``y (1 - y)`` for the logistic).
"""
from dataclasses import dataclass

import numpy as np

from cbptt import _elman


@dataclass(frozen=True)
class Activation:
    """One activation ``f`` of an Elman layer."""

    name: str
    code: int
    fprime_sup: float
    bounded: bool

    def fprime(self, y):
        """``f'(net)`` from the outputs ``y = f(net)`` (same shape and dtype)."""
        return _FPRIME[self.name](np.asarray(y))


# f'(net) from y = f(net), and sup|f'|, of each name the C table lists.
_FPRIME = {
    "identity": lambda y: np.ones_like(y),
    "logistic": lambda y: y * (1.0 - y),
    "tanh": lambda y: 1.0 - y * y,
    "relu": lambda y: (y > 0).astype(y.dtype),
}
_PROPERTIES = {             # (sup |f'|, |f| <= 1)
    "identity": (1.0, False),
    "logistic": (0.25, True),
    "tanh": (1.0, True),
    "relu": (1.0, False),
}

ACTIVATIONS = {name: Activation(name, code, *_PROPERTIES[name])
               for name, code in _elman.activation_codes().items()}


def get_activation(activation):
    """The :class:`Activation` named ``activation``; ValueError otherwise."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not supported; "
                         f"expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[activation]
