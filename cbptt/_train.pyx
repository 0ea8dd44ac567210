"""Compiled parts of the estimators' training loop: one fused parameter update.

Design contract
---------------
* Every trainable number of a network lives in ONE flat C-contiguous vector
  ``params`` (per-layer arrays are views of it); the gradient of the
  mini-batch loss lives in a flat vector ``grads`` of the same layout. The
  first ``n_decay`` entries are the weight matrices (L2-penalised), the rest
  are biases (not penalised), as in scikit-learn's MLP.
* :func:`optimizer_step` is the only call the estimators make per mini-batch
  after BPTT. In one pass over the vectors, with the GIL released, it

  1. adds the L2 gradient: ``g[:n_decay] += decay * w[:n_decay]`` and measures
     ``||w[:n_decay]||^2`` (for the reported penalty);
  2. measures the global gradient norm ``||g||`` (accumulated in double);
  3. if ``||g||`` is not finite, stops and changes nothing (the caller warns
     and restores the last finite weights);
  4. clips globally (Pascanu et al., 2013): ``g <- g * min(1, c / ||g||)``;
  5. applies the solver's update to ``params`` and its state vectors.

  Solvers (the state vectors ``s1``, ``s2`` have the layout of ``params``)::

      sgd       v <- mu v - lr g;  w <- w + v          (s1 = v)
      nesterov  v <- mu v - lr g;  w <- w + mu v - lr g
      adam      m <- b1 m + (1-b1) g;  u <- b2 u + (1-b2) g^2       (s1 = m, s2 = u)
                w <- w - lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(u) + eps)
      rmsprop   u <- rho u + (1-rho) g^2;  w <- w - lr g / (sqrt(u) + eps)   (s1 = u)

  which are the update rules of scikit-learn's ``SGDOptimizer`` and
  ``AdamOptimizer`` and of Tieleman & Hinton's RMSprop.
* One fused source serves float32 and float64; scalar hyperparameters and all
  reductions are double.
"""
from cython cimport floating
from libc.math cimport sqrt, isfinite

from cbptt._kernels cimport cbptt_ftz_enter, cbptt_ftz_leave

cdef enum:
    SOLVER_SGD = 0
    SOLVER_ADAM = 1
    SOLVER_RMSPROP = 2

# Solver codes for cbptt/_optim.py.
SGD = SOLVER_SGD
ADAM = SOLVER_ADAM
RMSPROP = SOLVER_RMSPROP


cdef double add_weight_decay(floating *w,       # IN  (n_decay,)
                             floating *g,       # IN/OUT (n_decay,)
                             Py_ssize_t n_decay, double decay) noexcept nogil:
    """g += decay * w over the weights; returns ||w||^2."""
    cdef Py_ssize_t i
    cdef double wi, wsq = 0.0
    for i in range(n_decay):
        wi = w[i]
        wsq += wi * wi
        g[i] = <floating> (g[i] + decay * wi)
    return wsq


cdef double squared_norm(const floating *g, Py_ssize_t n) noexcept nogil:
    """sum_i g_i^2, accumulated in double."""
    cdef Py_ssize_t i
    cdef double s = 0.0
    for i in range(n):
        s += <double> g[i] * g[i]
    return s


cdef void sgd_update(floating *w,          # IN/OUT (n,)
                     const floating *g,    # IN (n,)
                     floating *v,          # IN/OUT (n,) velocity
                     Py_ssize_t n, double scale, double lr, double mu,
                     bint nesterov) noexcept nogil:
    cdef Py_ssize_t i
    cdef double gi, vi
    for i in range(n):
        gi = scale * g[i]
        vi = mu * v[i] - lr * gi
        v[i] = <floating> vi
        if nesterov:
            w[i] = <floating> (w[i] + mu * vi - lr * gi)
        else:
            w[i] = <floating> (w[i] + vi)


cdef void adam_update(floating *w,         # IN/OUT (n,)
                      const floating *g,   # IN (n,)
                      floating *m,         # IN/OUT (n,) first moment
                      floating *u,         # IN/OUT (n,) second moment
                      Py_ssize_t n, double scale, double lr_t, double b1,
                      double b2, double eps) noexcept nogil:
    cdef Py_ssize_t i
    cdef double gi, mi, ui
    for i in range(n):
        gi = scale * g[i]
        mi = b1 * m[i] + (1.0 - b1) * gi
        ui = b2 * u[i] + (1.0 - b2) * gi * gi
        m[i] = <floating> mi
        u[i] = <floating> ui
        w[i] = <floating> (w[i] - lr_t * mi / (sqrt(ui) + eps))


cdef void rmsprop_update(floating *w,        # IN/OUT (n,)
                         const floating *g,  # IN (n,)
                         floating *u,        # IN/OUT (n,) mean square
                         Py_ssize_t n, double scale, double lr, double rho,
                         double eps) noexcept nogil:
    cdef Py_ssize_t i
    cdef double gi, ui
    for i in range(n):
        gi = scale * g[i]
        ui = rho * u[i] + (1.0 - rho) * gi * gi
        u[i] = <floating> ui
        w[i] = <floating> (w[i] - lr * gi / (sqrt(ui) + eps))


def optimizer_step(floating[::1] params, floating[::1] grads,
                   floating[::1] s1, floating[::1] s2,
                   Py_ssize_t n_decay, double decay, double clip_norm,
                   int solver, double lr, double beta_1, double beta_2,
                   double epsilon, double momentum, bint nesterov, long t):
    """One fused update of a flat parameter vector (see the module docstring).

    Parameters
    ----------
    params, grads : ndarray of shape (n,)
        Parameters (updated in place) and the mini-batch gradient (modified:
        the L2 term is added).
    s1, s2 : ndarray of shape (n,)
        Solver state (velocity; Adam's moments; RMSprop's mean square). ``s2``
        is only read by Adam.
    n_decay : int
        Number of leading entries under L2 (the weight matrices).
    decay : float
        L2 coefficient per mini-batch (``alpha / batch_size``).
    clip_norm : float
        Global-norm clipping threshold; 0 turns clipping off.
    solver : int
        ``SGD``, ``ADAM`` or ``RMSPROP``.
    lr, beta_1, beta_2, epsilon, momentum, nesterov :
        The solver's hyperparameters (``beta_2`` is RMSprop's ``rho``).
    t : int
        Adam's step count after this step (>= 1).

    Returns
    -------
    grad_norm : float
        ``||g||`` before clipping; not finite means no update was made.
    weight_sq : float
        ``||w[:n_decay]||^2`` before the update.
    """
    cdef Py_ssize_t n = params.shape[0]
    cdef double wsq, norm, scale = 1.0, lr_t
    cdef unsigned int fpenv
    if (grads.shape[0] != n or s1.shape[0] != n or s2.shape[0] != n
            or not 0 <= n_decay <= n or not 0 <= solver <= 2
            or (solver == SOLVER_ADAM and t < 1)):
        raise ValueError("optimizer_step: inconsistent arguments")
    if n == 0:
        return 0.0, 0.0
    with nogil:
        fpenv = cbptt_ftz_enter()
        wsq = add_weight_decay(&params[0], &grads[0], n_decay, decay)
        norm = sqrt(squared_norm(&grads[0], n))
        if isfinite(norm):
            if clip_norm > 0.0 and norm > clip_norm:
                scale = clip_norm / norm
            if solver == SOLVER_SGD:
                sgd_update(&params[0], &grads[0], &s1[0], n, scale, lr,
                           momentum, nesterov)
            elif solver == SOLVER_ADAM:
                lr_t = lr * sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t)
                adam_update(&params[0], &grads[0], &s1[0], &s2[0], n, scale,
                            lr_t, beta_1, beta_2, epsilon)
            else:
                rmsprop_update(&params[0], &grads[0], &s1[0], n, scale, lr,
                               beta_2, epsilon)
        cbptt_ftz_leave(fpenv)
    return norm, wsq
