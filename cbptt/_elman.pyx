"""Compiled Elman (simple recurrent) layer: the cell, its checks and its
one-call paths; the layer runs in the one layer driver (``_layer.pxd``).

Equations (``f`` the activation, ``W_ih (H, I)``, ``W_hh (H, H)``)::

    net(t)   = W_ih x(t) + W_hh h(t-1) + b,     h(t) = f(net(t))
    delta(t) = f'(net(t)) * (grad_h(t) + W_hh^T delta(t+1))
    dW_ih = sum_t delta(t)^T x(t),  dW_hh = sum_t delta(t)^T h(t-1),
    db = sum_t delta(t),  dh0 = W_hh^T delta(0),  dx(t) = W_ih^T delta(t)

``f'`` is taken from the stored outputs ``h`` (no ``net`` is kept). Truncation
``k``: windows ``[0, k), [k, 2k), ...``; at a window start ``t0 > 0`` the
carried error ``W_hh^T delta(t0)`` is dropped (what ``h.detach()`` does),
while ``delta(t0) h(t0-1)^T`` still counts in ``dW_hh``. Every per-step array
is time-major and C-contiguous, ``(T, B, .)``; the public API
(``cbptt.functional``) is batch-first and converts at the boundary. The
``def`` wrappers check shapes before the driver runs without the GIL.
"""
from cython cimport floating

import numpy as np

from cbptt._scan import (aligned_empty, all_finite_arrays, forward_inputs,
                         grad_input)
from cbptt._validation import check_kernel_sizes, colmax_abs

from cbptt._kernels cimport (CBPTT_LOGISTIC, CBPTT_TANH, CBPTT_N_ACTIVATIONS,
                             cbptt_activation_names)
from cbptt._layer cimport (CELL_ELMAN, Layer, layer_backward_run,
                           layer_forward_run, make_layer)
from cbptt._scan cimport data_if, data_of, preact_in_range, result_inputs
from cbptt._simd cimport (cbptt_isa, cbptt_isa_limit, cbptt_bias_act_rows_f,
                          cbptt_bias_act_rows_d)


cdef inline Layer elman_layer(int T, int B, int I, int H, int act) noexcept nogil:
    return make_layer(CELL_ELMAN, act, 0, T, B, I, H)


cdef int forward_run(int T, int B, int I, int H, int act,
                     const floating *x, const floating *w_ih,
                     const floating *w_hh, const floating *bias,
                     const floating *h0, floating *h) except -1:
    """The driver's forward pass on checked arrays: h is the cache."""
    cdef Layer L = elman_layer(T, B, I, H, act)
    return layer_forward_run(&L, x, w_ih, w_hh, bias, <floating *> NULL, h0,
                             <floating *> NULL, h, <floating *> NULL, h, True)


cdef int backward_run(int T, int B, int I, int H, int act, int truncate,
                      const floating *x, const floating *w_ih,
                      const floating *w_hh, const floating *h0,
                      const floating *h, const floating *grad_h,
                      floating *delta, floating *d_w_ih, floating *d_w_hh,
                      floating *d_bias, floating *d_h0,
                      floating *d_x) except -1:
    """The driver's backward pass on checked arrays."""
    cdef Layer L = elman_layer(T, B, I, H, act)
    return layer_backward_run(&L, truncate, x, w_ih, w_hh, h0,
                              <floating *> NULL, <floating *> NULL,
                              <floating *> NULL, h, grad_h,
                              <floating *> NULL, delta, <floating *> NULL,
                              <floating *> NULL, d_w_ih, d_w_hh, d_bias,
                              <floating *> NULL, d_h0, <floating *> NULL, d_x)


cdef object setflags = np.ndarray.setflags   # (a, False): read-only


def forward_call(x, w_ih, w_hh, bias, h0, bint batch_first, int act):
    """``rnn_forward`` in one compiled call, or None: its only path.

    Every valid call computes here: the arrays are ``forward_inputs``'
    (``cbptt._scan``) common case, which every valid input is once
    converted (float32 or float64 ndarrays of one dtype, consistent shapes,
    finite values); ``h0`` may be None (zeros). Then the kernel runs and the
    pre-activations' bound is checked as ``check_preactivation_range``
    checks it (raising its ValueError): with h ranging over the states that
    enter a step, h0 .. h(T-2), and ``|h| <= 1`` after h0 for a saturating
    activation (no pass over h needed). Returns ``(x_tm, w_ih, w_hh, bias,
    h0, h)``: private read-only copies (zeros for an h0 given as None) and
    the read-only time-major outputs. Anything else: None, nothing is
    raised, and the caller's checks give the precise error (or convert the
    arrays for a second call).
    """
    fast = forward_inputs(x, batch_first, 1, w_ih, w_hh, bias, h0, None)
    if fast is None:
        return None
    x_tm, x_max, w, u, b, h0k = fast[0], fast[1], fast[2], fast[3], fast[4], \
        fast[5]
    cdef int T = x_tm.shape[0], B = x_tm.shape[1], I = x_tm.shape[2]
    cdef int H = b.shape[0]
    cdef bint bounded = act == CBPTT_LOGISTIC or act == CBPTT_TANH
    dtype = x_tm.dtype
    if h0k is None:
        h0k = np.zeros((B, H), dtype)
        setflags(h0k, False)
    h = aligned_empty((T, B, H), dtype)
    cdef void *p[6]
    for k, a in enumerate((x_tm, w, u, b, h0k, h)):
        p[k] = data_of(a)
    if dtype.itemsize == 4:
        forward_run[float](T, B, I, H, act, <float *> p[0], <float *> p[1],
                           <float *> p[2], <float *> p[3], <float *> p[4],
                           <float *> p[5])
    else:
        forward_run[double](T, B, I, H, act, <double *> p[0], <double *> p[1],
                            <double *> p[2], <double *> p[3],
                            <double *> p[4], <double *> p[5])
    setflags(h, False)
    # No overflow hidden by a saturating activation: bound |W x + W h + b|
    if h0 is None and T > 1 and bounded:
        h_in = np.ones(H)
    else:
        h_in = colmax_abs(h0k)
        if T > 1:
            h_in = np.maximum(h_in, 1.0 if bounded else colmax_abs(h[:T - 1]))
    preact_in_range("rnn_forward", dtype, b, w, x_max, u, h_in)
    return x_tm, w, u, b, h0k, h


def backward_call(x_tm, w_ih, w_hh, h0, h_tm, g, bint batch_first, int act,
                  int truncate, bint input_grad, bint checked):
    """``rnn_backward`` in one compiled call, or None: its only path.

    ``x_tm`` .. ``h_tm`` are a forward result's private arrays; ``g`` as
    ``grad_input``'s common case (``cbptt._scan``), whose values are not
    scanned first unless ``checked`` (the caller checked them): a
    non-finite one makes ``delta`` and then ``db`` (the sum of every
    ``delta``) non-finite. Returns ``(delta, d_w_ih, d_w_hh, d_b, d_h0,
    d_x)`` (time-major, ``d_x`` None unless ``input_grad``); unless
    ``checked``, only when every gradient is finite (else None, and the
    caller's check of ``grad_h`` names the culprit; after it, a non-finite
    gradient is an overflow the caller reports). Arrays that disagree
    (a result built by hand): None, nothing is raised.
    """
    cdef int d[4]
    cdef void *p[12]
    cdef int s = result_inputs(x_tm, h_tm, w_ih, 1, d, p)
    if s == 0:
        return None
    cdef int T = d[0], B = d[1], H = d[2], I = d[3]
    dtype = h_tm.dtype
    p[2] = data_if(w_hh, s, H, H)
    p[3] = data_if(h0, s, B, H)
    p[4] = data_if(h_tm, s, T, B, H)
    if p[2] == NULL or p[3] == NULL or p[4] == NULL:
        return None
    g_tm = grad_input(g, batch_first, T, B, H, s, False)
    if g_tm is None:
        return None
    delta = aligned_empty((T, B, H), dtype)
    d_w_ih = np.empty((H, I), dtype)
    d_w_hh = np.empty((H, H), dtype)
    d_b = np.empty(H, dtype)
    d_h0 = np.empty((B, H), dtype)
    d_x = aligned_empty((T, B, I), dtype) if input_grad else None
    for k, a in enumerate((g_tm, delta, d_w_ih, d_w_hh, d_b, d_h0)):
        p[5 + k] = data_of(a)
    p[11] = data_of(d_x) if input_grad else NULL
    if dtype.itemsize == 4:
        backward_run[float](
            T, B, I, H, act, truncate, <float *> p[0], <float *> p[1],
            <float *> p[2], <float *> p[3], <float *> p[4], <float *> p[5],
            <float *> p[6], <float *> p[7], <float *> p[8], <float *> p[9],
            <float *> p[10], <float *> p[11])
    else:
        backward_run[double](
            T, B, I, H, act, truncate, <double *> p[0], <double *> p[1],
            <double *> p[2], <double *> p[3], <double *> p[4],
            <double *> p[5], <double *> p[6], <double *> p[7],
            <double *> p[8], <double *> p[9], <double *> p[10],
            <double *> p[11])
    if not checked and not all_finite_arrays((d_b, d_w_ih, d_w_hh, d_h0,
                                              d_x)):
        return None
    return delta, d_w_ih, d_w_hh, d_b, d_h0, d_x


def activation_codes():
    """The activations the kernels compute, ``{name: code}``, from the C
    table of ``src/cbptt_math.h`` (the one list of activations)."""
    return {cbptt_activation_names[k].decode("ascii"): k
            for k in range(CBPTT_N_ACTIVATIONS)}


cdef inline bint known_activation(int act) noexcept nogil:
    return 0 <= act < CBPTT_N_ACTIVATIONS


def simd_level():
    """The instruction set the kernels use: 2 AVX-512, 1 AVX2+FMA, 0 baseline."""
    return cbptt_isa()


def _activate(floating[::1] z, int act):
    """Test twin of the vectorised activations: z = f(z) in place, through
    the same dispatched row loop as the forward kernel (zero bias)."""
    cdef floating[::1] zero = np.zeros(z.shape[0], np.asarray(z).dtype)
    if z.shape[0] == 0 or not known_activation(act):
        raise ValueError("_activate: empty array or unknown activation code")
    with nogil:
        if floating is float:
            cbptt_bias_act_rows_f(act, 1, <int> z.shape[0], &z[0],
                                  z.shape[0], &zero[0])
        else:
            cbptt_bias_act_rows_d(act, 1, <int> z.shape[0], &z[0],
                                  z.shape[0], &zero[0])


def _limit_simd_level(int level):
    """Test twin: run the kernels at most at ``level``; returns the level used."""
    return cbptt_isa_limit(level)


def elman_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                  const floating[:, ::1] w_hh, const floating[::1] bias,
                  const floating[:, ::1] h0, int act,
                  floating[:, :, ::1] h):
    """Run the forward kernel on validated, time-major arrays (in place on h)."""
    check_kernel_sizes("elman_forward", x.shape[0], x.shape[1], x.shape[2],
                       w_ih.shape[0], w_ih.shape[0])
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_ih.shape[0]
    if (T < 1 or B < 1 or I < 1 or H < 1 or w_ih.shape[1] != I
            or w_hh.shape[0] != H or w_hh.shape[1] != H or bias.shape[0] != H
            or h0.shape[0] != B or h0.shape[1] != H or h.shape[0] != T
            or h.shape[1] != B or h.shape[2] != H or not known_activation(act)):
        raise ValueError("elman_forward: inconsistent shapes")
    forward_run(T, B, I, H, act, &x[0, 0, 0], &w_ih[0, 0], &w_hh[0, 0],
                &bias[0], &h0[0, 0], &h[0, 0, 0])


def elman_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                   const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                   const floating[:, :, ::1] h,
                   const floating[:, :, ::1] grad_h, int act, int truncate,
                   floating[:, :, ::1] delta, floating[:, ::1] d_w_ih,
                   floating[:, ::1] d_w_hh, floating[::1] d_bias,
                   floating[:, ::1] d_h0, floating[:, :, ::1] d_x):
    """Run the backward kernel on validated, time-major arrays (fills the OUTs).

    ``d_x`` may be None: dL/dx is then not computed (a first layer's input
    is data).
    """
    check_kernel_sizes("elman_backward", x.shape[0], x.shape[1], x.shape[2],
                       w_ih.shape[0], w_ih.shape[0])
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_ih.shape[0]
    if (T < 1 or B < 1 or I < 1 or H < 1 or w_ih.shape[1] != I
            or w_hh.shape[0] != H or w_hh.shape[1] != H
            or h0.shape[0] != B or h0.shape[1] != H
            or h.shape[0] != T or h.shape[1] != B or h.shape[2] != H
            or grad_h.shape[0] != T or grad_h.shape[1] != B or grad_h.shape[2] != H
            or delta.shape[0] != T or delta.shape[1] != B or delta.shape[2] != H
            or d_w_ih.shape[0] != H or d_w_ih.shape[1] != I
            or d_w_hh.shape[0] != H or d_w_hh.shape[1] != H
            or d_bias.shape[0] != H or d_h0.shape[0] != B or d_h0.shape[1] != H
            or (d_x is not None and (d_x.shape[0] != T or d_x.shape[1] != B
                                     or d_x.shape[2] != I))
            or not known_activation(act) or truncate < 0):
        raise ValueError("elman_backward: inconsistent shapes")
    cdef floating *p_d_x = NULL
    if d_x is not None:
        p_d_x = &d_x[0, 0, 0]
    backward_run(T, B, I, H, act, truncate, &x[0, 0, 0], &w_ih[0, 0],
                 &w_hh[0, 0], &h0[0, 0], &h[0, 0, 0], &grad_h[0, 0, 0],
                 &delta[0, 0, 0], &d_w_ih[0, 0], &d_w_hh[0, 0], &d_bias[0],
                 &d_h0[0, 0], p_d_x)

