"""Compiled constant error carousel (CEC), LSTM and GRU layers: forward and exact BPTT.

Design contract
---------------
* The layers run in the one layer driver (``_layer.pxd``: the time loop,
  the products, the threads, the weight gradients); this module holds the
  cells' parameters, the checks of the kernel-level wrappers and the
  one-call paths of ``cbptt.functional``. Every per-step array is
  time-major and C-contiguous, ``(T, B, .)``; ``cbptt.functional`` is
  batch-first and converts at the boundary.
* Gates are packed in PyTorch's order: ``i, f, g, o`` for the forget-gate
  form (``G = 4``), ``i, g, o`` for the 1997 form (``G = 3``); ``W_ih
  (G*H, I)``, ``W_hh (G*H, H)``, one ``bias (G*H,)``. ``sigma`` is the
  logistic function; the 1997 form is the forget-gate form with ``f = 1``::

      z(t) = W_ih x(t) + W_hh h(t-1) + b                (pre-activations)
      i, f, o = sigma(z_i), sigma(z_f), sigma(z_o);  g = tanh(z_g)
      c(t) = f c(t-1) + i g,        h(t) = o tanh(c(t))

  Backward, with ``e_h(t)``, ``e_c(t)`` the loss's own gradients (``e_c``
  optional) and ``delta(t) = dL/dz(t)``::

      dh(t)      = e_h(t) + W_hh^T delta(t+1)
      delta_c(t) = dh(t) o (1 - tanh^2 c(t)) + e_c(t) + f(t+1) delta_c(t+1)
      delta_i = delta_c g i (1 - i),   delta_f = delta_c c(t-1) f (1 - f)
      delta_g = delta_c i (1 - g^2),   delta_o = dh tanh(c(t)) o (1 - o)
      dW_ih = sum_t delta(t)^T x(t),   dW_hh = sum_t delta(t)^T h(t-1),
      db = sum_t delta(t),   dx(t) = W_ih^T delta(t),
      dh0 = W_hh^T delta(0),   dc0 = f(0) delta_c(0)

  ``f (1 - f)`` and the others come from the stored activated gates.
  ``tanh(c(t))`` is not cached: the backward loop takes it as ``h(t) / o(t)``
  (a division instead of a ``tanh``, exact to about an ulp; ``tanh(c(t))``
  is recomputed only where ``o(t) <= 1e-20``), so no ``(T, B, H)`` array
  more is stored.
* The CEC: ``s(t) = s(t-1) + W_ih x(t) + b`` (identity unit, self-weight
  fixed at 1). Its error signal is ``delta(t) = e(t) + delta(t+1)``: with the
  loss at the last step only, it is the same at every step.
* One step of a cell is ONE fused loop over its ``B x H`` units
  (``src/cbptt_lstm.h``, vectorised, tanh and the logistic included): the
  forward loop applies the gate nonlinearities and the cell update, the
  backward loop computes all ``G`` gate deltas and the carried cell error.
* Truncation ``k``: windows ``[0, k), [k, 2k), ...``; at a window start
  ``t0 > 0`` both carried errors (through ``h`` and through ``c``) are
  dropped, what ``h.detach(); c.detach()`` every k steps does. ``dh0`` and
  ``dc0`` come from step 0.

Kernel-level ``def`` wrappers (stable; called directly by the estimators)
--------------------------------------------------------------------------
All arrays are C-contiguous, of one dtype (float32 or float64), time-major.
The wrappers check every shape (``ValueError`` naming the wrapper and the
argument), allocate the packed-weight workspace, then release the GIL; they
overwrite the ``OUT`` arrays. An output that shares memory with any other argument is
refused (``ValueError``); inputs may share memory with each other (e.g.
``h0`` and ``c0`` one zero array). ``x`` may be any caller buffer of shape
``(T, B, I)``, e.g. the ``h`` of a layer below.

``lstm_forward(x, w_ih, w_hh, bias, h0, c0, forget_gate, gates, c, h)``
    IN ``x (T,B,I)``, ``w_ih (G*H,I)``, ``w_hh (G*H,H)``, ``bias (G*H,)``,
    ``h0 (B,H)``, ``c0 (B,H)``, ``forget_gate`` (bool: ``G = 4`` or ``3``);
    OUT ``gates (T,B,G*H)`` (activated), ``c (T,B,H)``, ``h (T,B,H)``.
    For a forward that will not be differentiated (T >= 2): ``gates
    (1,B,G*H)`` and ``c (2,B,H)``; then c(t) goes to slot ``t % 2`` and
    every step's gates to the one slot, so nothing of size T is written but
    ``h`` (what ``torch.no_grad()`` saves).
``lstm_backward(x, w_ih, w_hh, h0, c0, gates, c, h, grad_h, grad_c,
forget_gate, truncate, delta, delta_c, d_w_ih, d_w_hh, d_bias, d_h0, d_c0,
d_x)``
    IN the forward's inputs and outputs, ``grad_h (T,B,H)``, ``grad_c
    (T,B,H)`` or None, ``truncate`` (0 = full BPTT, k > 0 windows);
    OUT ``delta (T,B,G*H)``, ``delta_c (T,B,H)``, ``d_w_ih``, ``d_w_hh``,
    ``d_bias``, ``d_h0 (B,H)``, ``d_c0 (B,H)``, ``d_x (T,B,I)`` or None (to
    skip that GEMM, e.g. for a first layer). ``d_h0`` and ``d_c0`` double as
    the carried errors during a one-thread loop; with threads each chunk of
    rows carries them in its own pages of the work buffer (two threads
    updating one page every step slow each other down) and copies them out
    at the end.
``cec_forward(x, w_ih, bias, h0, h)``
    IN ``x (T,B,I)``, ``w_ih (H,I)``, ``bias (H,)``, ``h0 (B,H)``;
    OUT ``h (T,B,H)``.
``cec_backward(x, w_ih, grad_h, truncate, delta, d_w_ih, d_bias, d_h0, d_x)``
    IN ``x``, ``w_ih``, ``grad_h (T,B,H)``, ``truncate``; OUT ``delta
    (T,B,H)``, ``d_w_ih (H,I)``, ``d_bias (H,)``, ``d_h0 (B,H)``, ``d_x
    (T,B,I)`` or None.
``gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0, gates, hn, h)``
    PyTorch's GRU (gates ``r, z, n``, ``G = 3``; the equations are in
    ``src/cbptt_gru.h``): IN ``x (T,B,I)``, ``w_ih (3H,I)``, ``w_hh
    (3H,H)``, ``b_ih (3H,)``, ``b_hh (3H,)``, ``h0 (B,H)``; OUT ``gates
    (T,B,3H)`` (activated r, z, n), ``hn (T,B,H)`` (``W_hn h(t-1) +
    b_hn``), ``h (T,B,H)``. ``gates (1,B,3H)`` with ``hn (2,B,H)`` (T >= 2)
    asks for a forward that will not be differentiated, as for the LSTM.
``gru_backward(x, w_ih, w_hh, h0, gates, hn, h, grad_h, truncate, delta,
delta_hn, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_h0, d_x)``
    IN the forward's inputs and outputs, ``grad_h (T,B,H)``, ``truncate``;
    OUT ``delta (T,B,3H)`` (dL/d(W_ih x + b_ih)), ``d_w_ih``, ``d_w_hh``,
    ``d_b_ih``, ``d_b_hh``, ``d_h0 (B,H)``, ``d_x (T,B,I)`` or None; WORK
    ``delta_hn (T,B,H)``: the n block of dL/d(W_hh h + b_hh), ``r
    delta_n`` (its r and z blocks are delta's), which the driver fills
    when it sums the weight gradients after the time loop. At a window start (truncation) the error through h(t-1), by
    ``W_hh`` and by the direct path ``z h(t-1)``, is dropped.
"""
from cython cimport floating

import numpy as np

from cbptt._scan import (aligned_empty, all_finite_arrays, forward_inputs,
                         grad_input)
from cbptt._validation import (check_kernel_sizes, check_outputs_finite,
                               colmax_abs)

from cbptt._layer cimport (CELL_CEC, CELL_GRU, CELL_LSTM, Layer,
                           layer_backward_run, layer_forward_run, make_layer)
from cbptt._scan cimport (data_if, data_of, owned_if, preact_in_range,
                          result_inputs)
from cbptt._simd cimport cbptt_isa, cbptt_isa_limit


cdef inline Layer lstm_layer(int T, int B, int I, int H,
                             bint forget_gate) noexcept nogil:
    return make_layer(CELL_LSTM, 0, forget_gate, T, B, I, H)


cdef inline Layer cec_layer(int T, int B, int I, int H) noexcept nogil:
    return make_layer(CELL_CEC, 0, 0, T, B, I, H)


cdef int _check_sizes(str where, int T, int B, int I, int H,
                      int truncate) except -1:
    """Raise ValueError on an empty axis or a negative ``truncate``."""
    if T < 1 or B < 1 or I < 1 or H < 1:
        raise ValueError(f"{where}: empty sizes T={T}, B={B}, I={I}, H={H}; "
                         "expected all >= 1")
    if truncate < 0:
        raise ValueError(f"{where}: truncate={truncate}; expected >= 0")
    return 0


cdef int _expect(str where, str name, Py_ssize_t *shape, int ndim,
                 Py_ssize_t e0, Py_ssize_t e1=0, Py_ssize_t e2=0) except -1:
    """Raise ValueError unless a memoryview's ``shape`` is ``(e0, e1, e2)[:ndim]``."""
    cdef Py_ssize_t *e = [e0, e1, e2]
    cdef int k
    for k in range(ndim):
        if shape[k] != e[k]:
            raise ValueError(f"{where}: {name} has shape "
                             f"{tuple([shape[i] for i in range(ndim)])}; "
                             f"expected {tuple([e[i] for i in range(ndim)])}")
    return 0


cdef struct Span:               # the bytes [lo, hi) of a contiguous buffer
    size_t lo
    size_t hi


cdef inline Span _span(const void *p, Py_ssize_t nbytes) noexcept:
    cdef Span s
    s.lo = <size_t> p
    s.hi = s.lo + <size_t> nbytes if p != NULL else s.lo
    return s


cdef int _check_disjoint(str where, tuple names, const Span *s, int n_out,
                         int n) except -1:
    """Raise ValueError if one of the first ``n_out`` buffers (the outputs)
    shares memory with any other of the ``n``; names[k] names s[k]."""
    cdef int k, m
    for k in range(n_out):
        for m in range(k + 1, n):
            if s[k].lo < s[m].hi and s[m].lo < s[k].hi:
                raise ValueError(f"{where}: {names[k]} shares memory with "
                                 f"{names[m]}; every output needs its own "
                                 "buffer")
    return 0


def _limit_simd_level(int level):
    """Test twin: run the LSTM kernels at most at SIMD ``level`` (2 AVX-512,
    1 AVX2+FMA, 0 baseline); 99 restores the best. Returns the level used."""
    return cbptt_isa_limit(level)


def simd_level():
    """The instruction set the LSTM kernels use: 2 AVX-512, 1 AVX2+FMA, 0
    baseline."""
    return cbptt_isa()


cdef int lstm_forward_run(int T, int B, int I, int H, bint forget_gate,
                          bint keep, const floating *x,
                          const floating *w_ih, const floating *w_hh,
                          const floating *bias, const floating *h0,
                          const floating *c0, floating *gates, floating *c,
                          floating *h) except -1:
    """The driver's forward pass on checked arrays: the gates are the cache."""
    cdef Layer L = lstm_layer(T, B, I, H, forget_gate)
    return layer_forward_run(&L, x, w_ih, w_hh, bias, <floating *> NULL, h0,
                             c0, gates, c, h, keep)


cdef int lstm_backward_run(
        int T, int B, int I, int H, bint forget_gate, int truncate,
        const floating *x, const floating *w_ih, const floating *w_hh,
        const floating *h0, const floating *c0, const floating *gates,
        const floating *c, const floating *h, const floating *grad_h,
        const floating *grad_c, floating *delta, floating *delta_c,
        floating *d_w_ih, floating *d_w_hh, floating *d_bias,
        floating *d_h0, floating *d_c0, floating *d_x) except -1:
    """The driver's backward pass on checked arrays (``grad_c`` and ``d_x``
    may be NULL)."""
    cdef Layer L = lstm_layer(T, B, I, H, forget_gate)
    return layer_backward_run(&L, truncate, x, w_ih, w_hh, h0, c0, gates, c,
                              h, grad_h, grad_c, delta, <floating *> NULL, delta_c,
                              d_w_ih, d_w_hh, d_bias, <floating *> NULL, d_h0,
                              d_c0, d_x)


def lstm_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[::1] bias,
                 const floating[:, ::1] h0, const floating[:, ::1] c0,
                 bint forget_gate, floating[:, :, ::1] gates,
                 floating[:, :, ::1] c, floating[:, :, ::1] h):
    """Run the LSTM forward kernel on time-major arrays (fills gates, c, h).

    ``gates (1, B, G*H)`` with ``c (2, B, H)`` (T >= 2) asks for a forward
    that will not be differentiated: only the last step's gates are kept,
    and c(t) in slot t % 2 (so c(T-1) in slot (T-1) % 2)."""
    check_kernel_sizes("lstm_forward", x.shape[0], x.shape[1], x.shape[2],
                       (4 if forget_gate else 3) * w_hh.shape[1],
                       w_hh.shape[1])
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    cdef int GH = (4 if forget_gate else 3) * H
    cdef Py_ssize_t TB = <Py_ssize_t> T * B, n = sizeof(floating)
    cdef Span s[9]          # outputs first, then inputs
    w = "lstm_forward"
    _check_sizes(w, T, B, I, H, 0)
    cdef bint keep = not (T >= 2 and gates.shape[0] == 1 and c.shape[0] == 2)
    cdef int Tk = T if keep else 1
    _expect(w, "w_ih", w_ih.shape, 2, GH, I)
    _expect(w, "w_hh", w_hh.shape, 2, GH, H)
    _expect(w, "bias", bias.shape, 1, GH)
    _expect(w, "h0", h0.shape, 2, B, H)
    _expect(w, "c0", c0.shape, 2, B, H)
    _expect(w, "gates", gates.shape, 3, Tk, B, GH)
    _expect(w, "c", c.shape, 3, T if keep else 2, B, H)
    _expect(w, "h", h.shape, 3, T, B, H)
    s[0] = _span(&gates[0, 0, 0], <Py_ssize_t> Tk * B * GH * n)
    s[1] = _span(&c[0, 0, 0], c.shape[0] * B * H * n)
    s[2] = _span(&h[0, 0, 0], TB * H * n)
    s[3] = _span(&x[0, 0, 0], TB * I * n)
    s[4] = _span(&w_ih[0, 0], <Py_ssize_t> GH * I * n)
    s[5] = _span(&w_hh[0, 0], <Py_ssize_t> GH * H * n)
    s[6] = _span(&bias[0], GH * n)
    s[7] = _span(&h0[0, 0], <Py_ssize_t> B * H * n)
    s[8] = _span(&c0[0, 0], <Py_ssize_t> B * H * n)
    _check_disjoint(w, ("gates", "c", "h", "x", "w_ih", "w_hh", "bias", "h0",
                        "c0"), s, 3, 9)
    lstm_forward_run(T, B, I, H, forget_gate, keep, &x[0, 0, 0], &w_ih[0, 0],
                     &w_hh[0, 0], &bias[0], &h0[0, 0], &c0[0, 0],
                     &gates[0, 0, 0], &c[0, 0, 0], &h[0, 0, 0])


def lstm_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                  const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                  const floating[:, ::1] c0, const floating[:, :, ::1] gates,
                  const floating[:, :, ::1] c, const floating[:, :, ::1] h,
                  const floating[:, :, ::1] grad_h,
                  const floating[:, :, ::1] grad_c,
                  bint forget_gate, int truncate,
                  floating[:, :, ::1] delta, floating[:, :, ::1] delta_c,
                  floating[:, ::1] d_w_ih, floating[:, ::1] d_w_hh,
                  floating[::1] d_bias, floating[:, ::1] d_h0,
                  floating[:, ::1] d_c0, floating[:, :, ::1] d_x):
    """Run the LSTM backward kernel on time-major arrays (fills the OUTs).

    ``grad_c`` and ``d_x`` may be None (no cell-state loss; skip dL/dx).
    """
    check_kernel_sizes("lstm_backward", x.shape[0], x.shape[1], x.shape[2],
                       (4 if forget_gate else 3) * w_hh.shape[1],
                       w_hh.shape[1])
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    cdef int GH = (4 if forget_gate else 3) * H
    cdef Py_ssize_t TB = <Py_ssize_t> T * B, n = sizeof(floating)
    cdef Span s[18]          # outputs first, then inputs
    cdef const floating *p_grad_c = NULL
    cdef floating *p_d_x = NULL
    w = "lstm_backward"
    _check_sizes(w, T, B, I, H, truncate)
    _expect(w, "w_ih", w_ih.shape, 2, GH, I)
    _expect(w, "w_hh", w_hh.shape, 2, GH, H)
    _expect(w, "h0", h0.shape, 2, B, H)
    _expect(w, "c0", c0.shape, 2, B, H)
    _expect(w, "gates", gates.shape, 3, T, B, GH)
    _expect(w, "c", c.shape, 3, T, B, H)
    _expect(w, "h", h.shape, 3, T, B, H)
    _expect(w, "grad_h", grad_h.shape, 3, T, B, H)
    if grad_c is not None:
        _expect(w, "grad_c", grad_c.shape, 3, T, B, H)
        p_grad_c = &grad_c[0, 0, 0]
    _expect(w, "delta", delta.shape, 3, T, B, GH)
    _expect(w, "delta_c", delta_c.shape, 3, T, B, H)
    _expect(w, "d_w_ih", d_w_ih.shape, 2, GH, I)
    _expect(w, "d_w_hh", d_w_hh.shape, 2, GH, H)
    _expect(w, "d_bias", d_bias.shape, 1, GH)
    _expect(w, "d_h0", d_h0.shape, 2, B, H)
    _expect(w, "d_c0", d_c0.shape, 2, B, H)
    if d_x is not None:
        _expect(w, "d_x", d_x.shape, 3, T, B, I)
        p_d_x = &d_x[0, 0, 0]
    s[0] = _span(&delta[0, 0, 0], TB * GH * n)
    s[1] = _span(&delta_c[0, 0, 0], TB * H * n)
    s[2] = _span(&d_w_ih[0, 0], <Py_ssize_t> GH * I * n)
    s[3] = _span(&d_w_hh[0, 0], <Py_ssize_t> GH * H * n)
    s[4] = _span(&d_bias[0], GH * n)
    s[5] = _span(&d_h0[0, 0], <Py_ssize_t> B * H * n)
    s[6] = _span(&d_c0[0, 0], <Py_ssize_t> B * H * n)
    s[7] = _span(p_d_x, TB * I * n)
    s[8] = _span(&x[0, 0, 0], TB * I * n)
    s[9] = _span(&w_ih[0, 0], <Py_ssize_t> GH * I * n)
    s[10] = _span(&w_hh[0, 0], <Py_ssize_t> GH * H * n)
    s[11] = _span(&h0[0, 0], <Py_ssize_t> B * H * n)
    s[12] = _span(&c0[0, 0], <Py_ssize_t> B * H * n)
    s[13] = _span(&gates[0, 0, 0], TB * GH * n)
    s[14] = _span(&c[0, 0, 0], TB * H * n)
    s[15] = _span(&h[0, 0, 0], TB * H * n)
    s[16] = _span(&grad_h[0, 0, 0], TB * H * n)
    s[17] = _span(p_grad_c, TB * H * n)
    _check_disjoint(w, ("delta", "delta_c", "d_w_ih", "d_w_hh", "d_bias",
                        "d_h0", "d_c0", "d_x", "x", "w_ih", "w_hh", "h0", "c0",
                        "gates", "c", "h", "grad_h", "grad_c"), s, 8, 18)
    lstm_backward_run(T, B, I, H, forget_gate, truncate, &x[0, 0, 0],
                      &w_ih[0, 0], &w_hh[0, 0], &h0[0, 0], &c0[0, 0],
                      &gates[0, 0, 0], &c[0, 0, 0], &h[0, 0, 0],
                      &grad_h[0, 0, 0], p_grad_c, &delta[0, 0, 0],
                      &delta_c[0, 0, 0], &d_w_ih[0, 0], &d_w_hh[0, 0],
                      &d_bias[0], &d_h0[0, 0], &d_c0[0, 0], p_d_x)


cdef object setflags = np.ndarray.setflags   # (a, False): read-only


def forward_call(x, w_ih, w_hh, bias, h0, c0, bint batch_first,
                 bint forget_gate, bint cache):
    """``lstm_forward`` in one compiled call, or None: its only path.

    Every valid call computes here: the arrays are ``forward_inputs``'
    (``cbptt._scan``) common case, which every valid input is once
    converted; ``h0`` and ``c0`` may be None (zeros). Then the kernel runs,
    the gates' pre-activation bound is checked as
    ``check_preactivation_range`` checks it (``|h(t)| = |o tanh(c)| <= 1``
    after h0), and from a given c0 the cell states are scanned (|c(t)| <=
    |c0| + t + 1: from zero they cannot overflow; without the cache only
    c(T-1) is left, which suffices, as ``f c + i g`` with ``f >= 0`` and
    ``|i g| <= 1`` cannot make an overflowed c finite again); both raise
    their ValueError. Returns ``(x_tm, w_ih, w_hh, bias, h0, c0, gates, c,
    h)``: private read-only copies (zeros for a state given as None) and the
    read-only time-major outputs (without ``cache``, T >= 2: the last
    step's gates and c(T-1) only). Anything else: None, nothing is raised,
    and the caller's checks give the precise error (or convert the arrays
    for a second call).
    """
    cdef int G = 4 if forget_gate else 3
    fast = forward_inputs(x, batch_first, G, w_ih, w_hh, bias, h0, c0)
    if fast is None:
        return None
    x_tm, x_max, w, u, b, h0k, c0k = fast
    cdef int T = x_tm.shape[0], B = x_tm.shape[1], I = x_tm.shape[2]
    cdef int GH = b.shape[0]
    cdef int H = GH // G
    dtype = x_tm.dtype
    h0k = zeros_if_none(h0k, B, H, dtype)
    c0k = zeros_if_none(c0k, B, H, dtype)
    cdef bint keep = cache or T == 1
    gates = aligned_empty((T if keep else 1, B, GH), dtype)
    c = aligned_empty((T if keep else 2, B, H), dtype)
    h = aligned_empty((T, B, H), dtype)
    cdef void *p[9]
    for k, a in enumerate((x_tm, w, u, b, h0k, c0k, gates, c, h)):
        p[k] = data_of(a)
    if dtype.itemsize == 4:
        lstm_forward_run[float](
            T, B, I, H, forget_gate, keep, <float *> p[0], <float *> p[1],
            <float *> p[2], <float *> p[3], <float *> p[4], <float *> p[5],
            <float *> p[6], <float *> p[7], <float *> p[8])
    else:
        lstm_forward_run[double](
            T, B, I, H, forget_gate, keep, <double *> p[0], <double *> p[1],
            <double *> p[2], <double *> p[3], <double *> p[4],
            <double *> p[5], <double *> p[6], <double *> p[7],
            <double *> p[8])
    if not keep:                # c(T-1), as with the whole cache
        c = c[(T - 1) % 2:(T - 1) % 2 + 1]
    for a in (gates, c, h):
        setflags(a, False)
    preact_in_range("lstm_forward", dtype, b, w, x_max, u,
                    states_bound(h0, h0k, T, H))
    if c0 is not None:
        check_outputs_finite("lstm_forward", dtype, "Scale c0 down.", c=c)
    return x_tm, w, u, b, h0k, c0k, gates, c, h


cdef object zeros_if_none(object a, int B, int H, object dtype):
    """``a``, or read-only zeros (B, H) for an initial state given as None."""
    if a is not None:
        return a
    a = np.zeros((B, H), dtype)
    setflags(a, False)
    return a


cdef object states_bound(object given, object h0, int T, int H):
    """A bound on |h| per unit over the states entering a step of a gated
    cell (|h(t)| <= 1 after h0 for the LSTM; the GRU's h(t) is a convex
    combination of n in [-1, 1] and h(t-1)): ``colmax |h0|`` for one step,
    else 1 or, from a ``given`` h0, ``max(colmax |h0|, 1)``."""
    if T == 1:
        return colmax_abs(h0)
    if given is None:
        return np.ones(H)
    return np.maximum(colmax_abs(h0), 1.0)


def grad_arrays(int T, int B, int I, int H, int GH, dtype, bint input_grad):
    """The backward pass's fresh outputs ``(delta (T, B, G*H), delta_c (T, B,
    H), d_w_ih, d_w_hh, d_b, d_h0, d_c0, d_x (T, B, I) or None)``, the
    per-step ones on a cache line."""
    return (aligned_empty((T, B, GH), dtype), aligned_empty((T, B, H), dtype),
            np.empty((GH, I), dtype), np.empty((GH, H), dtype),
            np.empty(GH, dtype), np.empty((B, H), dtype),
            np.empty((B, H), dtype),
            aligned_empty((T, B, I), dtype) if input_grad else None)


def backward_call(x_tm, w_ih, w_hh, h0, c0, gates_tm, c_tm, h_tm, g, gc,
                  bint batch_first, bint forget_gate, int truncate,
                  bint input_grad, bint checked):
    """``lstm_backward`` in one compiled call, or None: its only path.

    ``x_tm`` .. ``h_tm`` are a forward result's private arrays (with the
    whole cache); ``g`` (and ``gc``, or None) as ``grad_input``'s common
    case (``cbptt._scan``). ``g``'s values are not scanned first unless
    ``checked`` (the caller checked them): a non-finite one makes its
    step's ``delta_o`` and so ``db`` (the sum of every ``delta``)
    non-finite; ``gc`` is scanned. Returns ``(delta, delta_c, d_w_ih,
    d_w_hh, d_b, d_h0, d_c0, d_x)`` (time-major, ``d_x`` None unless
    ``input_grad``); unless ``checked``, only when every gradient is finite
    (else None, and the caller's check of ``grad_h`` names the culprit;
    after it, a non-finite gradient is an overflow the caller reports).
    Arrays that disagree (a result built by hand): None, nothing is raised.
    """
    cdef int d[4]
    cdef void *p[18]
    cdef int G = 4 if forget_gate else 3
    cdef int s = result_inputs(x_tm, h_tm, w_ih, G, d, p)
    if s == 0:
        return None
    cdef int T = d[0], B = d[1], H = d[2], I = d[3]
    cdef int GH = G * H
    dtype = h_tm.dtype
    # the other inputs' pointers, checked
    p[2] = data_if(w_hh, s, GH, H)
    p[3] = data_if(h0, s, B, H)
    p[4] = data_if(c0, s, B, H)
    p[5] = data_if(gates_tm, s, T, B, GH)
    p[6] = data_if(c_tm, s, T, B, H)
    p[7] = data_if(h_tm, s, T, B, H)
    if (p[2] == NULL or p[3] == NULL or p[4] == NULL or p[5] == NULL
            or p[6] == NULL or p[7] == NULL):
        return None
    g_tm = grad_input(g, batch_first, T, B, H, s, False)
    if g_tm is None:
        return None
    gc_tm = None
    if gc is not None:
        gc_tm = grad_input(gc, batch_first, T, B, H, s, True)
        if gc_tm is None:
            return None
    delta, delta_c, d_w_ih, d_w_hh, d_b, d_h0, d_c0, d_x = grad_arrays(
        T, B, I, H, GH, dtype, input_grad)
    for k, a in enumerate((g_tm, delta, delta_c, d_w_ih, d_w_hh, d_b, d_h0,
                           d_c0)):
        p[8 + k] = data_of(a)
    p[16] = data_of(d_x) if input_grad else NULL
    p[17] = data_of(gc_tm) if gc is not None else NULL
    if s == 4:
        lstm_backward_run[float](
            T, B, I, H, forget_gate, truncate, <float *> p[0],
            <float *> p[1], <float *> p[2], <float *> p[3], <float *> p[4],
            <float *> p[5], <float *> p[6], <float *> p[7], <float *> p[8],
            <float *> p[17], <float *> p[9], <float *> p[10],
            <float *> p[11], <float *> p[12], <float *> p[13],
            <float *> p[14], <float *> p[15], <float *> p[16])
    else:
        lstm_backward_run[double](
            T, B, I, H, forget_gate, truncate, <double *> p[0],
            <double *> p[1], <double *> p[2], <double *> p[3],
            <double *> p[4], <double *> p[5], <double *> p[6],
            <double *> p[7], <double *> p[8], <double *> p[17],
            <double *> p[9], <double *> p[10], <double *> p[11],
            <double *> p[12], <double *> p[13], <double *> p[14],
            <double *> p[15], <double *> p[16])
    if not checked and not all_finite_arrays((d_b, d_w_ih, d_w_hh, d_h0,
                                              d_c0, d_x)):
        return None
    return delta, delta_c, d_w_ih, d_w_hh, d_b, d_h0, d_c0, d_x


cdef int cec_forward_run(int T, int B, int I, int H, const floating *x,
                         const floating *w_ih, const floating *bias,
                         const floating *h0, floating *h) except -1:
    """The driver's CEC forward pass on checked arrays: h is the cache (the
    carousel keeps no gates)."""
    cdef Layer L = cec_layer(T, B, I, H)
    return layer_forward_run(&L, x, w_ih, <floating *> NULL, bias,
                             <floating *> NULL, h0, <floating *> NULL, h,
                             <floating *> NULL, h, True)


cdef int cec_backward_run(int T, int B, int I, int H, int truncate,
                          const floating *x, const floating *w_ih,
                          const floating *grad_h, floating *delta,
                          floating *d_w_ih, floating *d_bias,
                          floating *d_h0, floating *d_x) except -1:
    """The driver's CEC backward pass on checked arrays (``d_x`` may be
    NULL): with no recurrent weight and the identity, the step needs
    neither the states nor h0."""
    cdef Layer L = cec_layer(T, B, I, H)
    return layer_backward_run(&L, truncate, x, w_ih, <floating *> NULL,
                              <floating *> NULL, <floating *> NULL,
                              <floating *> NULL, <floating *> NULL,
                              <floating *> NULL, grad_h, <floating *> NULL,
                              delta, <floating *> NULL, <floating *> NULL,
                              d_w_ih, <floating *> NULL, d_bias,
                              <floating *> NULL, d_h0, <floating *> NULL, d_x)


def cec_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                const floating[::1] bias, const floating[:, ::1] h0,
                floating[:, :, ::1] h):
    """Run the CEC forward kernel on time-major arrays (fills h)."""
    check_kernel_sizes("cec_forward", x.shape[0], x.shape[1], x.shape[2],
                       w_ih.shape[0], w_ih.shape[0])
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_ih.shape[0]
    cdef Py_ssize_t TB = <Py_ssize_t> T * B, n = sizeof(floating)
    cdef Span s[5]          # outputs first, then inputs
    w = "cec_forward"
    _check_sizes(w, T, B, I, H, 0)
    _expect(w, "w_ih", w_ih.shape, 2, H, I)
    _expect(w, "bias", bias.shape, 1, H)
    _expect(w, "h0", h0.shape, 2, B, H)
    _expect(w, "h", h.shape, 3, T, B, H)
    s[0] = _span(&h[0, 0, 0], TB * H * n)
    s[1] = _span(&x[0, 0, 0], TB * I * n)
    s[2] = _span(&w_ih[0, 0], <Py_ssize_t> H * I * n)
    s[3] = _span(&bias[0], H * n)
    s[4] = _span(&h0[0, 0], <Py_ssize_t> B * H * n)
    _check_disjoint(w, ("h", "x", "w_ih", "bias", "h0"), s, 1, 5)
    cec_forward_run(T, B, I, H, &x[0, 0, 0], &w_ih[0, 0], &bias[0],
                    &h0[0, 0], &h[0, 0, 0])


def cec_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, :, ::1] grad_h, int truncate,
                 floating[:, :, ::1] delta, floating[:, ::1] d_w_ih,
                 floating[::1] d_bias, floating[:, ::1] d_h0,
                 floating[:, :, ::1] d_x):
    """Run the CEC backward kernel on time-major arrays (fills the OUTs).

    ``d_x`` may be None (skip dL/dx).
    """
    check_kernel_sizes("cec_backward", x.shape[0], x.shape[1], x.shape[2],
                       w_ih.shape[0], w_ih.shape[0])
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_ih.shape[0]
    cdef Py_ssize_t TB = <Py_ssize_t> T * B, n = sizeof(floating)
    cdef Span s[8]          # outputs first, then inputs
    cdef floating *p_d_x = NULL
    w = "cec_backward"
    _check_sizes(w, T, B, I, H, truncate)
    _expect(w, "w_ih", w_ih.shape, 2, H, I)
    _expect(w, "grad_h", grad_h.shape, 3, T, B, H)
    _expect(w, "delta", delta.shape, 3, T, B, H)
    _expect(w, "d_w_ih", d_w_ih.shape, 2, H, I)
    _expect(w, "d_bias", d_bias.shape, 1, H)
    _expect(w, "d_h0", d_h0.shape, 2, B, H)
    if d_x is not None:
        _expect(w, "d_x", d_x.shape, 3, T, B, I)
        p_d_x = &d_x[0, 0, 0]
    s[0] = _span(&delta[0, 0, 0], TB * H * n)
    s[1] = _span(&d_w_ih[0, 0], <Py_ssize_t> H * I * n)
    s[2] = _span(&d_bias[0], H * n)
    s[3] = _span(&d_h0[0, 0], <Py_ssize_t> B * H * n)
    s[4] = _span(p_d_x, TB * I * n)
    s[5] = _span(&x[0, 0, 0], TB * I * n)
    s[6] = _span(&w_ih[0, 0], <Py_ssize_t> H * I * n)
    s[7] = _span(&grad_h[0, 0, 0], TB * H * n)
    _check_disjoint(w, ("delta", "d_w_ih", "d_bias", "d_h0", "d_x", "x",
                        "w_ih", "grad_h"), s, 5, 8)
    cec_backward_run(T, B, I, H, truncate, &x[0, 0, 0], &w_ih[0, 0],
                     &grad_h[0, 0, 0], &delta[0, 0, 0], &d_w_ih[0, 0],
                     &d_bias[0], &d_h0[0, 0], p_d_x)


#: The advice of ``cec_forward``'s overflow error.
CEC_OVERFLOW_ADVICE = ("The carousel sums its input over all T steps: scale "
                       "x, weight_ih, bias or h0 down.")


def cec_forward_call(x, w_ih, bias, h0, bint batch_first):
    """``cec_forward`` in one compiled call, or None: its only path.

    Every valid call computes here: the arrays are ``forward_inputs``'
    (``cbptt._scan``) common case with one gate and no ``w_hh`` (not
    ``recurrent``), which every valid input is once converted; ``h0`` may
    be None (zeros). Then
    the kernel runs and, as the carousel sums its input over the T steps
    (no activation bounds it, so no bound on one step's input would do),
    the states are checked finite as ``check_outputs_finite`` checks them
    (raising its ValueError). Returns ``(x_tm, w_ih, bias, h0, h)``:
    private read-only copies (zeros for an h0 given as None) and the
    read-only time-major states. Anything else: None, nothing is raised,
    and the caller's checks give the precise error (or convert the arrays
    for a second call).
    """
    fast = forward_inputs(x, batch_first, 1, w_ih, None, bias, h0, None,
                          False)
    if fast is None:
        return None
    x_tm, w, b, h0k = fast[0], fast[2], fast[4], fast[5]
    cdef int T = x_tm.shape[0], B = x_tm.shape[1], I = x_tm.shape[2]
    cdef int H = b.shape[0]
    dtype = x_tm.dtype
    h0k = zeros_if_none(h0k, B, H, dtype)
    h = aligned_empty((T, B, H), dtype)
    cdef void *p[5]
    for k, a in enumerate((x_tm, w, b, h0k, h)):
        p[k] = data_of(a)
    if dtype.itemsize == 4:
        cec_forward_run[float](T, B, I, H, <float *> p[0], <float *> p[1],
                               <float *> p[2], <float *> p[3],
                               <float *> p[4])
    else:
        cec_forward_run[double](T, B, I, H, <double *> p[0],
                                <double *> p[1], <double *> p[2],
                                <double *> p[3], <double *> p[4])
    setflags(h, False)
    check_outputs_finite("cec_forward", dtype, CEC_OVERFLOW_ADVICE, h=h)
    return x_tm, w, b, h0k, h


def cec_backward_call(x_tm, w_ih, h_tm, g, bint batch_first, int truncate,
                      bint input_grad, bint checked):
    """``cec_backward`` in one compiled call, or None: its only path.

    ``x_tm``, ``w_ih``, ``h_tm`` are a forward result's private arrays
    (``h_tm`` gives the sizes only); ``g`` as ``grad_input``'s common case
    (``cbptt._scan``), whose values are not scanned first unless
    ``checked``: as ``delta(t) = grad_h(t) + delta(t+1)``, a non-finite
    one makes ``delta`` and then ``d_b`` (the sum of every ``delta``)
    non-finite. Returns ``(delta, d_w_ih, d_b, d_h0, d_x)`` (time-major,
    ``d_x`` None unless ``input_grad``); unless ``checked``, only when
    every gradient is finite (else None, and the caller's check of
    ``grad_h`` names the culprit; after it, a non-finite gradient is an
    overflow the caller reports). Arrays that disagree (a result built by
    hand): None, nothing is raised.
    """
    cdef int d[4]
    cdef void *p[8]
    cdef int s = result_inputs(x_tm, h_tm, w_ih, 1, d, p)
    if s == 0:
        return None
    cdef int T = d[0], B = d[1], H = d[2], I = d[3]
    dtype = h_tm.dtype
    g_tm = grad_input(g, batch_first, T, B, H, s, False)
    if g_tm is None:
        return None
    delta = aligned_empty((T, B, H), dtype)
    d_w_ih = np.empty((H, I), dtype)
    d_b = np.empty(H, dtype)
    d_h0 = np.empty((B, H), dtype)
    d_x = aligned_empty((T, B, I), dtype) if input_grad else None
    for k, a in enumerate((g_tm, delta, d_w_ih, d_b, d_h0)):
        p[2 + k] = data_of(a)
    p[7] = data_of(d_x) if input_grad else NULL
    if s == 4:
        cec_backward_run[float](
            T, B, I, H, truncate, <float *> p[0], <float *> p[1],
            <float *> p[2], <float *> p[3], <float *> p[4], <float *> p[5],
            <float *> p[6], <float *> p[7])
    else:
        cec_backward_run[double](
            T, B, I, H, truncate, <double *> p[0], <double *> p[1],
            <double *> p[2], <double *> p[3], <double *> p[4],
            <double *> p[5], <double *> p[6], <double *> p[7])
    if not checked and not all_finite_arrays((d_b, d_w_ih, d_h0, d_x)):
        return None
    return delta, d_w_ih, d_b, d_h0, d_x


cdef int gru_forward_run(int T, int B, int I, int H, bint keep,
                         const floating *x, const floating *w_ih,
                         const floating *w_hh, const floating *b_ih,
                         const floating *b_hh, const floating *h0,
                         floating *gates, floating *hn,
                         floating *h) except -1:
    """The driver's GRU forward pass on checked arrays."""
    cdef Layer L = make_layer(CELL_GRU, 0, 0, T, B, I, H)
    return layer_forward_run(&L, x, w_ih, w_hh, b_ih, b_hh, h0,
                             <floating *> NULL, gates, hn, h, keep)


cdef int gru_backward_run(
        int T, int B, int I, int H, int truncate, const floating *x,
        const floating *w_ih, const floating *w_hh, const floating *h0,
        const floating *gates, const floating *hn, const floating *h,
        const floating *grad_h, floating *delta, floating *delta_hn,
        floating *d_w_ih, floating *d_w_hh, floating *d_b_ih,
        floating *d_b_hh, floating *d_h0, floating *d_x) except -1:
    """The driver's GRU backward pass on checked arrays (``d_x`` may be
    NULL)."""
    cdef Layer L = make_layer(CELL_GRU, 0, 0, T, B, I, H)
    return layer_backward_run(&L, truncate, x, w_ih, w_hh, h0,
                              <floating *> NULL, gates, hn, h, grad_h,
                              <floating *> NULL, delta, delta_hn,
                              <floating *> NULL, d_w_ih, d_w_hh,
                              d_b_ih, d_b_hh, d_h0, <floating *> NULL, d_x)


def gru_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                const floating[:, ::1] w_hh, const floating[::1] b_ih,
                const floating[::1] b_hh, const floating[:, ::1] h0,
                floating[:, :, ::1] gates, floating[:, :, ::1] hn,
                floating[:, :, ::1] h):
    """Run the GRU forward kernel on time-major arrays (fills gates, hn, h).

    ``gates (1, B, 3H)`` with ``hn (2, B, H)`` (T >= 2) asks for a forward
    that will not be differentiated (hn(t) in slot t % 2)."""
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    cdef int GH = 3 * H
    cdef Py_ssize_t TB = <Py_ssize_t> T * B, n = sizeof(floating)
    cdef Span s[9]          # outputs first, then inputs
    w = "gru_forward"
    _check_sizes(w, T, B, I, H, 0)
    cdef bint keep = not (T >= 2 and gates.shape[0] == 1 and hn.shape[0] == 2)
    cdef int Tk = T if keep else 1
    _expect(w, "w_ih", w_ih.shape, 2, GH, I)
    _expect(w, "w_hh", w_hh.shape, 2, GH, H)
    _expect(w, "b_ih", b_ih.shape, 1, GH)
    _expect(w, "b_hh", b_hh.shape, 1, GH)
    _expect(w, "h0", h0.shape, 2, B, H)
    _expect(w, "gates", gates.shape, 3, Tk, B, GH)
    _expect(w, "hn", hn.shape, 3, T if keep else 2, B, H)
    _expect(w, "h", h.shape, 3, T, B, H)
    s[0] = _span(&gates[0, 0, 0], <Py_ssize_t> Tk * B * GH * n)
    s[1] = _span(&hn[0, 0, 0], hn.shape[0] * B * H * n)
    s[2] = _span(&h[0, 0, 0], TB * H * n)
    s[3] = _span(&x[0, 0, 0], TB * I * n)
    s[4] = _span(&w_ih[0, 0], GH * I * n)
    s[5] = _span(&w_hh[0, 0], GH * H * n)
    s[6] = _span(&b_ih[0], GH * n)
    s[7] = _span(&b_hh[0], GH * n)
    s[8] = _span(&h0[0, 0], B * H * n)
    _check_disjoint(w, ("gates", "hn", "h", "x", "w_ih", "w_hh", "b_ih",
                        "b_hh", "h0"), s, 3, 9)
    gru_forward_run(T, B, I, H, keep, &x[0, 0, 0], &w_ih[0, 0], &w_hh[0, 0],
                    &b_ih[0], &b_hh[0], &h0[0, 0], &gates[0, 0, 0],
                    &hn[0, 0, 0], &h[0, 0, 0])


def gru_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                 const floating[:, :, ::1] gates,
                 const floating[:, :, ::1] hn, const floating[:, :, ::1] h,
                 const floating[:, :, ::1] grad_h, int truncate,
                 floating[:, :, ::1] delta, floating[:, :, ::1] delta_hn,
                 floating[:, ::1] d_w_ih, floating[:, ::1] d_w_hh,
                 floating[::1] d_b_ih, floating[::1] d_b_hh,
                 floating[:, ::1] d_h0, floating[:, :, ::1] d_x):
    """Run the GRU backward kernel on time-major arrays (fills the OUTs).

    ``d_x`` may be None (skip dL/dx).
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    cdef int GH = 3 * H
    cdef Py_ssize_t TB = <Py_ssize_t> T * B, n = sizeof(floating)
    cdef Span s[16]          # outputs first, then inputs
    cdef floating *p_d_x = NULL
    w = "gru_backward"
    _check_sizes(w, T, B, I, H, truncate)
    _expect(w, "w_ih", w_ih.shape, 2, GH, I)
    _expect(w, "w_hh", w_hh.shape, 2, GH, H)
    _expect(w, "h0", h0.shape, 2, B, H)
    _expect(w, "gates", gates.shape, 3, T, B, GH)
    _expect(w, "hn", hn.shape, 3, T, B, H)
    _expect(w, "h", h.shape, 3, T, B, H)
    _expect(w, "grad_h", grad_h.shape, 3, T, B, H)
    _expect(w, "delta", delta.shape, 3, T, B, GH)
    _expect(w, "delta_hn", delta_hn.shape, 3, T, B, H)
    _expect(w, "d_w_ih", d_w_ih.shape, 2, GH, I)
    _expect(w, "d_w_hh", d_w_hh.shape, 2, GH, H)
    _expect(w, "d_b_ih", d_b_ih.shape, 1, GH)
    _expect(w, "d_b_hh", d_b_hh.shape, 1, GH)
    _expect(w, "d_h0", d_h0.shape, 2, B, H)
    if d_x is not None:
        _expect(w, "d_x", d_x.shape, 3, T, B, I)
        p_d_x = &d_x[0, 0, 0]
    s[0] = _span(&delta[0, 0, 0], TB * GH * n)
    s[1] = _span(&delta_hn[0, 0, 0], TB * H * n)
    s[2] = _span(&d_w_ih[0, 0], GH * I * n)
    s[3] = _span(&d_w_hh[0, 0], GH * H * n)
    s[4] = _span(&d_b_ih[0], GH * n)
    s[5] = _span(&d_b_hh[0], GH * n)
    s[6] = _span(&d_h0[0, 0], B * H * n)
    s[7] = _span(p_d_x, TB * I * n)
    s[8] = _span(&x[0, 0, 0], TB * I * n)
    s[9] = _span(&w_ih[0, 0], GH * I * n)
    s[10] = _span(&w_hh[0, 0], GH * H * n)
    s[11] = _span(&h0[0, 0], B * H * n)
    s[12] = _span(&gates[0, 0, 0], TB * GH * n)
    s[13] = _span(&hn[0, 0, 0], TB * H * n)
    s[14] = _span(&h[0, 0, 0], TB * H * n)
    s[15] = _span(&grad_h[0, 0, 0], TB * H * n)
    _check_disjoint(w, ("delta", "delta_hn", "d_w_ih", "d_w_hh", "d_b_ih",
                        "d_b_hh", "d_h0", "d_x", "x", "w_ih", "w_hh", "h0",
                        "gates", "hn", "h", "grad_h"), s, 8, 16)
    gru_backward_run(T, B, I, H, truncate, &x[0, 0, 0], &w_ih[0, 0],
                     &w_hh[0, 0], &h0[0, 0], &gates[0, 0, 0], &hn[0, 0, 0],
                     &h[0, 0, 0], &grad_h[0, 0, 0], &delta[0, 0, 0],
                     &delta_hn[0, 0, 0], &d_w_ih[0, 0], &d_w_hh[0, 0],
                     &d_b_ih[0], &d_b_hh[0], &d_h0[0, 0], p_d_x)


def gru_forward_call(x, w_ih, w_hh, b_ih, b_hh, h0, bint batch_first,
                     bint cache):
    """``gru_forward`` in one compiled call, or None: its only path.

    Every valid call computes here: the arrays are ``forward_inputs``'
    (``cbptt._scan``) common case with ``b_hh`` of ``b_ih``'s dtype and
    shape, which every valid input is once converted; ``h0`` may be None
    (zeros). Then the kernel runs and the gates' pre-activation bound
    ``|W x + b_ih| + |W h + b_hh|`` is checked as
    ``check_preactivation_range`` checks it (raising its ValueError). Returns ``(x_tm, w_ih, w_hh, b_ih, b_hh, h0, gates, hn, h)``:
    private read-only copies (zeros for an h0 given as None) and the
    read-only time-major outputs; without ``cache`` (T >= 2) the kernel
    writes every step's gates and ``hn`` over the previous ones, and
    ``gates`` and ``hn`` are None. Anything else: None, nothing is raised,
    and the caller's checks give the precise error (or convert the arrays
    for a second call).
    """
    fast = forward_inputs(x, batch_first, 3, w_ih, w_hh, b_ih, h0, None)
    if fast is None:
        return None
    x_tm, x_max, w, u, bi, h0k = fast[0], fast[1], fast[2], fast[3], \
        fast[4], fast[5]
    cdef int T = x_tm.shape[0], B = x_tm.shape[1], I = x_tm.shape[2]
    cdef int GH = bi.shape[0]
    cdef int H = GH // 3
    dtype = x_tm.dtype
    bh = owned_if(b_hh, dtype.itemsize, GH)
    if bh is None:
        return None
    h0k = zeros_if_none(h0k, B, H, dtype)
    cdef bint keep = cache or T == 1
    gates = aligned_empty((T if keep else 1, B, GH), dtype)
    hn = aligned_empty((T if keep else 2, B, H), dtype)
    h = aligned_empty((T, B, H), dtype)
    cdef void *p[9]
    for k, a in enumerate((x_tm, w, u, bi, bh, h0k, gates, hn, h)):
        p[k] = data_of(a)
    if dtype.itemsize == 4:
        gru_forward_run[float](
            T, B, I, H, keep, <float *> p[0], <float *> p[1], <float *> p[2],
            <float *> p[3], <float *> p[4], <float *> p[5], <float *> p[6],
            <float *> p[7], <float *> p[8])
    else:
        gru_forward_run[double](
            T, B, I, H, keep, <double *> p[0], <double *> p[1],
            <double *> p[2], <double *> p[3], <double *> p[4],
            <double *> p[5], <double *> p[6], <double *> p[7],
            <double *> p[8])
    if cache:
        setflags(gates, False)
        setflags(hn, False)
    else:
        gates = hn = None
    setflags(h, False)
    with np.errstate(over="ignore"):
        b_abs = np.abs(bi) + np.abs(bh)
    preact_in_range("gru_forward", dtype, b_abs, w, x_max, u,
                    states_bound(h0, h0k, T, H))
    return x_tm, w, u, bi, bh, h0k, gates, hn, h


def gru_backward_call(x_tm, w_ih, w_hh, h0, gates_tm, hn_tm, h_tm, g,
                      bint batch_first, int truncate, bint input_grad,
                      bint checked):
    """``gru_backward`` in one compiled call, or None: its only path.

    ``x_tm`` .. ``h_tm`` are a forward result's private arrays (with the
    whole cache); ``g`` as ``grad_input``'s common case (``cbptt._scan``),
    whose values are not scanned first unless ``checked``: a non-finite one
    makes its step's ``delta_n`` and so ``d_b_ih`` (the sum of every
    ``delta``) non-finite. Returns ``(delta, d_w_ih, d_w_hh, d_b_ih,
    d_b_hh, d_h0, d_x)`` (time-major, ``d_x`` None unless ``input_grad``);
    unless ``checked``, only when every gradient is finite (else None, and
    the caller's check of ``grad_h`` names the culprit; after it, a
    non-finite gradient is an overflow the caller reports). Arrays that
    disagree (a result built by hand): None, nothing is raised.
    """
    cdef int d[4]
    cdef void *p[17]
    cdef int s = result_inputs(x_tm, h_tm, w_ih, 3, d, p)
    if s == 0:
        return None
    cdef int T = d[0], B = d[1], H = d[2], I = d[3]
    cdef int GH = 3 * H
    dtype = h_tm.dtype
    p[2] = data_if(w_hh, s, GH, H)
    p[3] = data_if(h0, s, B, H)
    p[4] = data_if(gates_tm, s, T, B, GH)
    p[5] = data_if(hn_tm, s, T, B, H)
    p[6] = data_if(h_tm, s, T, B, H)
    if (p[2] == NULL or p[3] == NULL or p[4] == NULL or p[5] == NULL
            or p[6] == NULL):
        return None
    g_tm = grad_input(g, batch_first, T, B, H, s, False)
    if g_tm is None:
        return None
    delta = aligned_empty((T, B, GH), dtype)
    delta_hn = aligned_empty((T, B, H), dtype)
    d_w_ih = np.empty((GH, I), dtype)
    d_w_hh = np.empty((GH, H), dtype)
    d_b_ih = np.empty(GH, dtype)
    d_b_hh = np.empty(GH, dtype)
    d_h0 = np.empty((B, H), dtype)
    d_x = aligned_empty((T, B, I), dtype) if input_grad else None
    for k, a in enumerate((g_tm, delta, delta_hn, d_w_ih, d_w_hh, d_b_ih,
                           d_b_hh, d_h0)):
        p[7 + k] = data_of(a)
    p[15] = data_of(d_x) if input_grad else NULL
    if s == 4:
        gru_backward_run[float](
            T, B, I, H, truncate, <float *> p[0], <float *> p[1],
            <float *> p[2], <float *> p[3], <float *> p[4], <float *> p[5],
            <float *> p[6], <float *> p[7], <float *> p[8], <float *> p[9],
            <float *> p[10], <float *> p[11], <float *> p[12],
            <float *> p[13], <float *> p[14], <float *> p[15])
    else:
        gru_backward_run[double](
            T, B, I, H, truncate, <double *> p[0], <double *> p[1],
            <double *> p[2], <double *> p[3], <double *> p[4],
            <double *> p[5], <double *> p[6], <double *> p[7],
            <double *> p[8], <double *> p[9], <double *> p[10],
            <double *> p[11], <double *> p[12], <double *> p[13],
            <double *> p[14], <double *> p[15])
    if not checked and not all_finite_arrays((d_b_ih, d_b_hh, d_w_ih, d_w_hh,
                                              d_h0, d_x)):
        return None
    return delta, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_h0, d_x

