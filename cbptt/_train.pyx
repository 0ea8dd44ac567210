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
* :func:`dense_head` is the output layer and the loss of a mini-batch in one
  call: ``z = h W^T + b`` over the rows that carry a target, the loss, and
  its gradients ``dW``, ``db`` and ``dL/dh`` (the top layer's ``grad_h``).
  Rows flagged invalid (padded steps) add no loss and get exactly zero
  ``dL/dz`` (assigned, never computed as ``0 * z``), hence zero ``dL/dh``
  and no contribution to ``dW`` and ``db`` (their states must be finite,
  which a mini-batch trimmed to its longest sequence ensures unless that
  sequence itself overflows). :func:`dense_head_weighted` is the same with
  row weights ``w_r`` (the sample weights): the loss is the weighted mean
  ``sum_r w_r l_r / sum_r w_r``, and a row of weight 0 is treated as
  padded. Both run one computation (:func:`head_run`); the unweighted
  rows keep their own loops (no weight arithmetic, measured), and unit
  weights give their bits (``1 * x`` is exact).
* :func:`gather_batch_first` copies a shuffled mini-batch, time-major,
  straight out of the batch-first ``(N, T, F)`` data set the estimators
  validated (no time-major copy of the whole data set per fit), writing
  zeros beyond each sequence's length (where that data set holds its NaN
  padding).
* One fused source serves float32 and float64; scalar hyperparameters and all
  reductions are double.
"""
from cython cimport floating
from libc.math cimport sqrt, isfinite, exp, expf, log

from cbptt._blas cimport gemm
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


ctypedef fused gathered:
    float
    double
    int


def gather_batch_first(const gathered[:, :, ::1] src,
                       const Py_ssize_t[::1] rows,
                       const Py_ssize_t[::1] lengths,
                       gathered[:, :, ::1] out):
    """out[t, b, :] = src[rows[b], t, :] for t < lengths[b], 0 beyond.

    ``src (N, T, F)`` is the batch-first data set (its values beyond a
    sequence's length, e.g. NaN padding, are never read), ``rows (B,)`` the
    batch's sequences, ``lengths (B,)`` their lengths (None: every sequence
    has ``T`` steps), ``out (T_b, B, F)`` with ``T_b <= T`` the time-major
    batch. Steps ``t >= lengths[b]`` of ``out`` are set to zero. Used for
    inputs (float) and targets (float values, int32 class codes).
    """
    cdef Py_ssize_t T = out.shape[0], B = out.shape[1], F = out.shape[2]
    cdef Py_ssize_t N = src.shape[0], t, b, f
    cdef const gathered *s
    cdef gathered *o
    cdef const Py_ssize_t *pl = NULL
    if (T > src.shape[1] or rows.shape[0] != B or src.shape[2] != F
            or (lengths is not None and lengths.shape[0] != B)):
        raise ValueError("gather_batch_first: inconsistent shapes")
    for b in range(B):
        if not 0 <= rows[b] < N:
            raise ValueError(f"gather_batch_first: row {rows[b]} out of "
                             f"range [0, {N})")
        if lengths is not None and lengths[b] < 0:
            raise ValueError(f"gather_batch_first: negative length "
                             f"{lengths[b]}")
    if T == 0 or B == 0 or F == 0:
        return
    if lengths is not None:
        pl = &lengths[0]
    o = &out[0, 0, 0]
    with nogil:
        # Step-major: the writes are contiguous, each read is one step's F
        # values of one sequence (measured faster than sequence-major).
        for t in range(T):
            for b in range(B):
                if pl != NULL and t >= pl[b]:
                    for f in range(F):
                        o[f] = 0
                else:
                    s = &src[rows[b], t, 0]
                    for f in range(F):
                        o[f] = s[f]
                o += F


cdef enum:
    LOSS_SQUARED = 0
    LOSS_SOFTMAX_CE = 1

# Loss codes for cbptt/_network.py.
SQUARED_ERROR = LOSS_SQUARED
SOFTMAX_CROSS_ENTROPY = LOSS_SOFTMAX_CE


cdef inline floating exp_(floating v) noexcept nogil:
    if floating is float:
        return expf(v)
    else:
        return exp(v)


cdef double squared_error_rows(floating *z,            # IN/OUT (n, k)
                               const floating *y,      # IN (n, k)
                               const unsigned char *valid,  # IN (n,) or NULL
                               Py_ssize_t n, Py_ssize_t k,
                               Py_ssize_t *count) noexcept nogil:
    """z <- z - y on valid rows (0 elsewhere); returns sum 1/2 ||z - y||^2."""
    cdef Py_ssize_t r, j
    cdef double loss = 0.0, d
    count[0] = 0
    for r in range(n):
        if valid != NULL and not valid[r]:
            for j in range(k):
                z[r * k + j] = 0.0
            continue
        count[0] += 1
        for j in range(k):
            d = <double> z[r * k + j] - y[r * k + j]
            z[r * k + j] = <floating> d
            loss += 0.5 * d * d
    return loss


cdef double softmax_ce_rows(floating *z,               # IN/OUT (n, C)
                            const int *codes,          # IN (n,)
                            const unsigned char *valid,  # IN (n,) or NULL
                            Py_ssize_t n, Py_ssize_t C,
                            Py_ssize_t *count) noexcept nogil:
    """z <- softmax(z) - onehot(code) on valid rows (0 elsewhere).

    Returns sum -log softmax(z)[code] = log sum exp(z - m) + m - z[code].
    """
    cdef Py_ssize_t r, j
    cdef floating m
    cdef double s, loss = 0.0
    cdef floating *zr
    count[0] = 0
    for r in range(n):
        zr = z + r * C
        if valid != NULL and not valid[r]:
            for j in range(C):
                zr[j] = 0.0
            continue
        count[0] += 1
        m = zr[0]
        for j in range(1, C):
            if zr[j] > m:
                m = zr[j]
        loss += m - zr[codes[r]]
        s = 0.0
        for j in range(C):
            zr[j] = exp_(<floating> (zr[j] - m))
            s += zr[j]
        loss += log(s)
        for j in range(C):
            zr[j] = <floating> (zr[j] / s)
        zr[codes[r]] -= 1.0
    return loss


cdef double squared_error_rows_weighted(floating *z,          # IN/OUT (n, k)
                                        const floating *y,    # IN (n, k)
                                        const unsigned char *valid,  # IN or NULL
                                        const floating *weight,  # IN (n,)
                                        Py_ssize_t n, Py_ssize_t k,
                                        Py_ssize_t *count,
                                        double *weight_sum) noexcept nogil:
    """:func:`squared_error_rows` with row weights ``w_r = weight[r]``:
    z <- w_r (z - y) on rows that carry a target (0 elsewhere); returns
    sum_r w_r 1/2 ||z_r - y_r||^2. A row carries a target when ``valid[r]``
    and ``w_r != 0``; ``count`` gets their number, ``weight_sum`` their
    summed ``w_r``. With every ``w_r = 1`` the arithmetic is the unweighted
    one bit for bit (``1 * x`` is exact).
    """
    cdef Py_ssize_t r, j
    cdef double loss = 0.0, d, wr, half_wr
    count[0] = 0
    weight_sum[0] = 0.0
    for r in range(n):
        wr = weight[r]
        half_wr = 0.5 * wr
        if (valid != NULL and not valid[r]) or wr == 0.0:
            for j in range(k):
                z[r * k + j] = 0.0
            continue
        count[0] += 1
        weight_sum[0] += wr
        for j in range(k):
            d = <double> z[r * k + j] - y[r * k + j]
            z[r * k + j] = <floating> (wr * d)
            loss += half_wr * d * d
    return loss


cdef double softmax_ce_rows_weighted(floating *z,             # IN/OUT (n, C)
                                     const int *codes,        # IN (n,)
                                     const unsigned char *valid,  # IN or NULL
                                     const floating *weight,  # IN (n,)
                                     Py_ssize_t n, Py_ssize_t C,
                                     Py_ssize_t *count,
                                     double *weight_sum) noexcept nogil:
    """:func:`softmax_ce_rows` with row weights: z <- w_r (softmax(z) -
    onehot(code)) on rows that carry a target (0 elsewhere; rows, ``w_r``,
    ``count`` and ``weight_sum`` as in :func:`squared_error_rows_weighted`).

    Returns sum w_r (-log softmax(z)[code]) = w_r (log sum exp(z - m) + m
    - z[code]).
    """
    cdef Py_ssize_t r, j
    cdef floating m
    cdef double s, loss = 0.0, wr
    cdef floating *zr
    count[0] = 0
    weight_sum[0] = 0.0
    for r in range(n):
        zr = z + r * C
        wr = weight[r]
        if (valid != NULL and not valid[r]) or wr == 0.0:
            for j in range(C):
                zr[j] = 0.0
            continue
        count[0] += 1
        weight_sum[0] += wr
        m = zr[0]
        for j in range(1, C):
            if zr[j] > m:
                m = zr[j]
        loss += wr * (m - zr[codes[r]])
        s = 0.0
        for j in range(C):
            zr[j] = exp_(<floating> (zr[j] - m))
            s += zr[j]
        loss += wr * log(s)
        for j in range(C):
            zr[j] = <floating> (wr * zr[j] / s)
        zr[codes[r]] -= wr
    return loss


cdef int check_head(const floating[:, ::1] h, const floating[:, ::1] w,
                    const floating[::1] b, const floating[:, ::1] y,
                    const int[::1] codes, const unsigned char[::1] valid,
                    int loss, floating[:, ::1] z, floating[:, ::1] d_w,
                    floating[::1] d_b, floating[:, ::1] d_h,
                    Py_ssize_t n_weight, const floating **py, const int **pc,
                    const unsigned char **pv) except -1:
    """The shape, loss and class-code checks of the head's arguments
    (``n_weight``: the weights' length, -1 without weights); sets the
    pointers to ``y``, ``codes`` and ``valid`` that the loss reads (NULL
    for the others)."""
    cdef Py_ssize_t n = h.shape[0], H = h.shape[1], k = w.shape[0], r
    if (w.shape[1] != H or b.shape[0] != k or z.shape[0] != n
            or z.shape[1] != k or d_w.shape[0] != k or d_w.shape[1] != H
            or d_b.shape[0] != k or d_h.shape[0] != n or d_h.shape[1] != H
            or (valid is not None and valid.shape[0] != n)
            or (n_weight >= 0 and n_weight != n)
            or n < 1 or H < 1 or k < 1):
        raise ValueError("dense_head: inconsistent shapes")
    if loss == LOSS_SQUARED:
        if y is None or y.shape[0] != n or y.shape[1] != k:
            raise ValueError("dense_head: y must have shape (n, k)")
    elif loss == LOSS_SOFTMAX_CE:
        if codes is None or codes.shape[0] != n:
            raise ValueError("dense_head: codes must have shape (n,)")
        for r in range(n):
            if not 0 <= codes[r] < k:
                raise ValueError(f"dense_head: class code {codes[r]} out of "
                                 f"range [0, {k})")
    else:
        raise ValueError(f"dense_head: unknown loss {loss}")
    py[0] = &y[0, 0] if loss == LOSS_SQUARED else NULL
    pc[0] = &codes[0] if loss == LOSS_SOFTMAX_CE else NULL
    pv[0] = &valid[0] if valid is not None else NULL
    return 0


cdef double head_run(const floating *h,            # IN (n, H)
                     const floating *w,            # IN (k, H)
                     const floating *b,            # IN (k,)
                     const floating *y,            # IN (n, k) or NULL
                     const int *codes,             # IN (n,) or NULL
                     const unsigned char *valid,   # IN (n,) or NULL
                     const floating *weight,       # IN (n,) or NULL
                     int loss, Py_ssize_t n, Py_ssize_t H, Py_ssize_t k,
                     floating *z,                  # WORK (n, k)
                     floating *d_w,                # OUT (k, H)
                     floating *d_b,                # OUT (k,)
                     floating *d_h,                # OUT (n, H)
                     Py_ssize_t *count, double *weight_sum) noexcept nogil:
    """The head's computation (arguments checked); returns the loss sum."""
    cdef Py_ssize_t r, j
    cdef double total
    cdef floating inv
    cdef unsigned int fpenv = cbptt_ftz_enter()
    # z = h W^T:  (n x k) = (n x H)(H x k), then + b
    gemm(False, True, n, k, H, <floating> 1.0, h, H, w, H, <floating> 0.0, z,
         k)
    for r in range(n):
        for j in range(k):
            z[r * k + j] += b[j]
    if weight == NULL:
        if loss == LOSS_SQUARED:
            total = squared_error_rows(z, y, valid, n, k, count)
        else:
            total = softmax_ce_rows(z, codes, valid, n, k, count)
    elif loss == LOSS_SQUARED:
        total = squared_error_rows_weighted(z, y, valid, weight, n, k, count,
                                            weight_sum)
    else:
        total = softmax_ce_rows_weighted(z, codes, valid, weight, n, k, count,
                                         weight_sum)
    # dL/dz = w_r (dl_r/dz) / sum_r w_r  (without weights: 1 / count)
    if count[0] > 0:
        inv = <floating> (1.0 / (weight_sum[0] if weight != NULL
                                 else count[0]))
        for r in range(n * k):
            z[r] *= inv
    # dW = dz^T h:  (k x H) = (k x n)(n x H)
    gemm(True, False, k, H, n, <floating> 1.0, z, k, h, H, <floating> 0.0,
         d_w, H)
    for j in range(k):
        d_b[j] = 0.0
    for r in range(n):
        for j in range(k):
            d_b[j] += z[r * k + j]
    # dL/dh = dz W:  (n x H) = (n x k)(k x H)
    gemm(False, False, n, H, k, <floating> 1.0, z, k, w, H, <floating> 0.0,
         d_h, H)
    cbptt_ftz_leave(fpenv)
    return total


def dense_head(const floating[:, ::1] h, const floating[:, ::1] w,
               const floating[::1] b, const floating[:, ::1] y,
               const int[::1] codes, const unsigned char[::1] valid,
               int loss, floating[:, ::1] z, floating[:, ::1] d_w,
               floating[::1] d_b, floating[:, ::1] d_h):
    """Output layer, loss and gradients of one mini-batch (see the module docstring).

    Parameters
    ----------
    h : ndarray (n, H)
        IN: the top layer's states at the rows that may carry a target.
    w, b : ndarray (k, H), (k,)
        IN: the output layer.
    y : ndarray (n, k) or None
        IN: regression targets (``loss=SQUARED_ERROR``).
    codes : int32 ndarray (n,) or None
        IN: class codes in ``[0, k)`` (``loss=SOFTMAX_CROSS_ENTROPY``).
    valid : uint8 ndarray (n,) or None
        IN: 0 marks a padded row (no loss, zero gradient); None: all valid.
    z : ndarray (n, k)
        WORK: ends as dL/dz.
    d_w, d_b, d_h : ndarray (k, H), (k,), (n, H)
        OUT: gradients of the mean loss over the valid rows.

    Returns
    -------
    loss_sum : float
        Sum of the valid rows' losses (not divided by their number).
    count : int
        Number of valid rows; 0 leaves every OUT zero.
    """
    cdef Py_ssize_t count = 0
    cdef double total, weight_sum = 0.0
    cdef const floating *py = NULL
    cdef const int *pc = NULL
    cdef const unsigned char *pv = NULL
    check_head(h, w, b, y, codes, valid, loss, z, d_w, d_b, d_h, -1, &py,
               &pc, &pv)
    with nogil:
        total = head_run(&h[0, 0], &w[0, 0], &b[0], py, pc, pv, NULL, loss,
                         h.shape[0], h.shape[1], w.shape[0], &z[0, 0],
                         &d_w[0, 0], &d_b[0], &d_h[0, 0], &count, &weight_sum)
    return total, count


def dense_head_weighted(const floating[:, ::1] h, const floating[:, ::1] w,
                        const floating[::1] b, const floating[:, ::1] y,
                        const int[::1] codes, const unsigned char[::1] valid,
                        int loss, floating[:, ::1] z, floating[:, ::1] d_w,
                        floating[::1] d_b, floating[:, ::1] d_h,
                        const floating[::1] weight):
    """:func:`dense_head` with row weights (the sample weights).

    ``weight (n,)``: finite, non-negative ``w_r``. The loss becomes the
    weighted mean ``sum_r w_r l_r / sum_r w_r`` over the valid rows, and a
    row of weight 0 is treated as padded. Other arguments as for
    :func:`dense_head`.

    Returns
    -------
    loss_sum : float
        Sum of the valid rows' weighted losses ``w_r l_r``.
    weight_sum : float
        Their summed weight; 0 leaves every OUT zero.
    """
    cdef Py_ssize_t count = 0
    cdef double total, weight_sum = 0.0
    cdef const floating *py = NULL
    cdef const int *pc = NULL
    cdef const unsigned char *pv = NULL
    if weight is None:
        raise ValueError("dense_head_weighted: weight is None")
    check_head(h, w, b, y, codes, valid, loss, z, d_w, d_b, d_h,
               weight.shape[0], &py, &pc, &pv)
    with nogil:
        total = head_run(&h[0, 0], &w[0, 0], &b[0], py, pc, pv, &weight[0],
                         loss, h.shape[0], h.shape[1], w.shape[0], &z[0, 0],
                         &d_w[0, 0], &d_b[0], &d_h[0, 0], &count, &weight_sum)
    return total, weight_sum
