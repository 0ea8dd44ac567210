"""The estimators' optimizers: state vectors plus one compiled update per step.

Contract: an :class:`Optimizer` owns its state vectors (the layout of the
flat parameter vector) and the step count; :meth:`Optimizer.step` makes
exactly one call to :func:`cbptt._train.optimizer_step` (L2 term, global-norm
clipping, non-finite check, update; see that module) and raises
:class:`cbptt._network.NonFiniteError` without touching the parameters when
the gradient is not finite. The state can be snapshotted and restored (for
rolling back to the last finite weights).
"""
import math

import numpy as np

from cbptt import _train
from cbptt._network import NonFiniteError

SOLVERS = {"sgd": _train.SGD, "adam": _train.ADAM, "rmsprop": _train.RMSPROP}


class Optimizer:
    """SGD (with momentum or Nesterov's), Adam or RMSprop over a flat vector.

    Parameters
    ----------
    solver : {"sgd", "adam", "rmsprop"}
    size : int
        Length of the parameter vector.
    dtype : numpy dtype
    n_decay : int
        Leading entries under L2.
    alpha : float
        L2 strength; the per-batch coefficient is ``alpha / batch_size``.
    clip_norm : float or None
        Global gradient-norm threshold; None for no clipping.
    learning_rate_init, beta_1, beta_2, epsilon, momentum, nesterovs_momentum,
    rho :
        The solvers' hyperparameters (``rho`` is RMSprop's decay).
    """

    def __init__(self, solver, size, dtype, n_decay, alpha, clip_norm,
                 learning_rate_init, beta_1, beta_2, epsilon, momentum,
                 nesterovs_momentum, rho):
        self.solver = solver
        self._code = SOLVERS[solver]
        self.n_decay = n_decay
        self.alpha = float(alpha)
        self.clip_norm = 0.0 if clip_norm is None else float(clip_norm)
        self.lr = float(learning_rate_init)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(rho if solver == "rmsprop" else beta_2)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterovs_momentum) and self.momentum > 0
        self.s1 = np.zeros(size, dtype)
        self.s2 = np.zeros(size if solver == "adam" else 1, dtype)
        if solver != "adam":
            self.s2 = self.s1           # not read by sgd/rmsprop
        self.t = 0
        self._decay = 0.0
        self.weight_sq = 0.0

    def begin_batch(self, batch_size):
        """Set the L2 coefficient for a mini-batch of ``batch_size`` sequences
        (with sample weights: their summed weight)."""
        self._decay = self.alpha / batch_size

    def step(self, params, grads):
        """One update of ``params`` from ``grads`` (which gains the L2 term)."""
        norm, wsq = _train.optimizer_step(
            params, grads, self.s1, self.s2, self.n_decay, self._decay,
            self.clip_norm, self._code, self.lr, self.beta_1, self.beta_2,
            self.epsilon, self.momentum, self.nesterov, self.t + 1)
        if not math.isfinite(norm):
            raise NonFiniteError("gradient")
        self.t += 1
        self.weight_sq = wsq

    def snapshot(self):
        """A copy of the state (for :meth:`restore`)."""
        return self.s1.copy(), (None if self.s2 is self.s1 else self.s2.copy()), self.t

    def restore(self, snap):
        s1, s2, t = snap
        np.copyto(self.s1, s1)
        if s2 is not None:
            np.copyto(self.s2, s2)
        self.t = t

    def copy(self):
        """An independent copy (the estimator keeps its old state until a fit succeeds)."""
        new = object.__new__(Optimizer)
        new.__dict__.update(self.__dict__)
        new.s1 = self.s1.copy()
        new.s2 = new.s1 if self.s2 is self.s1 else self.s2.copy()
        return new
