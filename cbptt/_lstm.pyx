"""Compiled constant error carousel (CEC) and LSTM layers: forward and exact BPTT.

Design contract
---------------
* Layout, as in ``_elman``: every per-step array is time-major and
  C-contiguous, ``(T, B, .)``; the input projection of all steps is one GEMM
  over ``T*B`` rows before the time loop, each step then does one GEMM for the
  recurrent product, and the weight gradients are GEMMs over all steps after
  the backward loop. ``cbptt.functional`` is batch-first and converts at the
  boundary.
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
* One step of a cell is ONE fused loop over its ``B x H`` units: the forward
  loop applies the gate nonlinearities and the cell update, the backward loop
  computes all ``G`` gate deltas and the carried cell error.
* Truncation ``k``: windows ``[0, k), [k, 2k), ...``; at a window start
  ``t0 > 0`` both carried errors (through ``h`` and through ``c``) are
  dropped, what ``h.detach(); c.detach()`` every k steps does. ``dh0`` and
  ``dc0`` come from step 0.
* Kernels are ``noexcept nogil``, allocate nothing, and run with
  flush-to-zero/denormals-are-zero set (restored on exit).

Kernel-level ``def`` wrappers (stable; called directly by the estimators)
--------------------------------------------------------------------------
All arrays are C-contiguous, of one dtype (float32 or float64), time-major.
The wrappers check every shape (``ValueError`` naming the wrapper and the
argument), then release the GIL; they allocate nothing and overwrite the
``OUT`` arrays. An output that shares memory with any other argument is
refused (``ValueError``); inputs may share memory with each other (e.g.
``h0`` and ``c0`` one zero array). ``x`` may be any caller buffer of shape
``(T, B, I)``, e.g. the ``h`` of a layer below.

``lstm_forward(x, w_ih, w_hh, bias, h0, c0, forget_gate, gates, c, h)``
    IN ``x (T,B,I)``, ``w_ih (G*H,I)``, ``w_hh (G*H,H)``, ``bias (G*H,)``,
    ``h0 (B,H)``, ``c0 (B,H)``, ``forget_gate`` (bool: ``G = 4`` or ``3``);
    OUT ``gates (T,B,G*H)`` (activated), ``c (T,B,H)``, ``h (T,B,H)``.
``lstm_backward(x, w_ih, w_hh, h0, c0, gates, c, h, grad_h, grad_c,
forget_gate, truncate, delta, delta_c, d_w_ih, d_w_hh, d_bias, d_h0, d_c0,
d_x)``
    IN the forward's inputs and outputs, ``grad_h (T,B,H)``, ``grad_c
    (T,B,H)`` or None, ``truncate`` (0 = full BPTT, k > 0 windows);
    OUT ``delta (T,B,G*H)``, ``delta_c (T,B,H)``, ``d_w_ih``, ``d_w_hh``,
    ``d_bias``, ``d_h0 (B,H)``, ``d_c0 (B,H)``, ``d_x (T,B,I)`` or None (to
    skip that GEMM, e.g. for a first layer). ``d_h0`` and ``d_c0`` double as
    the carried errors during the loop, so no work buffer is needed.
``cec_forward(x, w_ih, bias, h0, h)``
    IN ``x (T,B,I)``, ``w_ih (H,I)``, ``bias (H,)``, ``h0 (B,H)``;
    OUT ``h (T,B,H)``.
``cec_backward(x, w_ih, grad_h, truncate, delta, d_w_ih, d_bias, d_h0, d_x)``
    IN ``x``, ``w_ih``, ``grad_h (T,B,H)``, ``truncate``; OUT ``delta
    (T,B,H)``, ``d_w_ih (H,I)``, ``d_bias (H,)``, ``d_h0 (B,H)``, ``d_x
    (T,B,I)`` or None.
"""
from cython cimport floating

from cbptt._blas cimport gemm
from cbptt._kernels cimport (cbptt_logistic_f, cbptt_logistic_d,
                             cbptt_tanh_f, cbptt_tanh_d,
                             cbptt_column_sums_f, cbptt_column_sums_d,
                             cbptt_ftz_enter, cbptt_ftz_leave)


cdef inline floating logistic(floating z) noexcept nogil:
    if floating is float:
        return cbptt_logistic_f(z)
    else:
        return cbptt_logistic_d(z)


cdef inline floating tanh_(floating z) noexcept nogil:
    if floating is float:
        return cbptt_tanh_f(z)
    else:
        return cbptt_tanh_d(z)


cdef inline void column_sums(floating *out, const floating *a, long rows,
                             long cols) noexcept nogil:
    if floating is float:
        cbptt_column_sums_f(out, a, rows, cols)
    else:
        cbptt_column_sums_d(out, a, rows, cols)


cdef inline bint carries_into(int t, int truncate) noexcept nogil:
    """Whether the error at step t flows on to step t-1 (no window start at t)."""
    return t > 0 and (truncate <= 0 or t % truncate != 0)


cdef void input_side_grads(
        int TB, int I, int N,
        const floating *x,        # IN  (T*B, I)
        const floating *w_ih,     # IN  (N, I)
        const floating *delta,    # IN  (T*B, N) dL/dz for every step
        floating *d_w_ih,         # OUT (N, I)
        floating *d_bias,         # OUT (N,)
        floating *d_x,            # OUT (T*B, I), or NULL to skip
) noexcept nogil:
    """The gradients of z = W_ih x + b over all steps at once (N = G*H)."""
    # dW_ih = delta^T x:  (N x I) = (N x T*B)(T*B x I)
    gemm(True, False, N, I, TB, <floating> 1.0, delta, N, x, I,
         <floating> 0.0, d_w_ih, I)
    if d_x != NULL:
        # dx = delta W_ih:  (T*B x I) = (T*B x N)(N x I)
        gemm(False, False, TB, I, N, <floating> 1.0, delta, N, w_ih, I,
             <floating> 0.0, d_x, I)
    # db = sum over all T*B rows of delta
    column_sums(d_bias, delta, TB, N)


# ---------------------------------------------------------------------------
# LSTM: cell step (one fused pointwise loop) and layer (the loop over time)
# ---------------------------------------------------------------------------

cdef void lstm_cell_forward(
        int B, int H, bint forget_gate,
        floating *gates,          # IN/OUT (B, G*H) z(t) - b in, i f g o out
        const floating *bias,     # IN  (G*H,)
        const floating *c_prev,   # IN  (B, H) c(t-1)
        floating *c,              # OUT (B, H) c(t)
        floating *h,              # OUT (B, H) h(t)
) noexcept nogil:
    """i, f, g, o = gates(z + b); c = f c_prev + i g; h = o tanh(c): one pass."""
    cdef int b, j
    cdef int G = 4 if forget_gate else 3
    cdef long GH = <long> G * H
    cdef long og = (2 if forget_gate else 1) * H   # offset of g
    cdef long oo = og + H                          # offset of o
    cdef floating *z
    cdef const floating *cp
    cdef floating *cb
    cdef floating *hb
    cdef floating gi, gf, gg, go, cc
    for b in range(B):
        z = gates + b * GH
        cp = c_prev + <long> b * H
        cb = c + <long> b * H
        hb = h + <long> b * H
        for j in range(H):
            gi = logistic(z[j] + bias[j])
            gg = tanh_(z[og + j] + bias[og + j])
            go = logistic(z[oo + j] + bias[oo + j])
            if forget_gate:
                gf = logistic(z[H + j] + bias[H + j])
                z[H + j] = gf
                cc = gf * cp[j] + gi * gg
            else:
                cc = cp[j] + gi * gg                # the CEC, gated on input
            z[j] = gi
            z[og + j] = gg
            z[oo + j] = go
            cb[j] = cc
            hb[j] = go * tanh_(cc)


cdef void lstm_cell_backward(
        int B, int H, bint forget_gate, bint carry,
        const floating *gates,    # IN  (B, G*H) activated i f g o of step t
        const floating *c,        # IN  (B, H) c(t)
        const floating *c_prev,   # IN  (B, H) c(t-1)
        const floating *h,        # IN  (B, H) h(t) = o tanh(c(t))
        const floating *grad_h,   # IN  (B, H) e_h(t)
        const floating *grad_c,   # IN  (B, H) e_c(t), or NULL
        const floating *carry_h,  # IN  (B, H) W_hh^T delta(t+1) (if carry)
        floating *carry_c,        # IN/OUT (B, H) f(t+1) delta_c(t+1) in
                                  #   (if carry), f(t) delta_c(t) out
        floating *delta,          # OUT (B, G*H) dL/dz(t)
        floating *delta_c,        # OUT (B, H) dL/dc(t)
) noexcept nogil:
    """All G gate deltas and the carried cell error of one step: one pass."""
    cdef int b, j
    cdef int G = 4 if forget_gate else 3
    cdef long GH = <long> G * H
    cdef long og = (2 if forget_gate else 1) * H
    cdef long oo = og + H
    cdef long r
    cdef const floating *a
    cdef floating *d
    cdef floating gi, gf, gg, go, tc, dh, dc
    cdef floating TINY_GATE = 1e-20
    for b in range(B):
        a = gates + b * GH
        d = delta + b * GH
        r = <long> b * H
        for j in range(H):
            gi = a[j]
            gg = a[og + j]
            go = a[oo + j]
            # tanh(c(t)) = h(t) / o(t), within an ulp, unless o is tiny
            tc = h[r + j] / go if go > TINY_GATE else tanh_(c[r + j])
            dh = grad_h[r + j]
            dc = 0
            if carry:
                dh = dh + carry_h[r + j]
                dc = carry_c[r + j]
            if grad_c != NULL:
                dc = dc + grad_c[r + j]
            dc = dc + dh * go * (1 - tc * tc)
            delta_c[r + j] = dc
            d[j] = dc * gg * gi * (1 - gi)
            d[og + j] = dc * gi * (1 - gg * gg)
            d[oo + j] = dh * tc * go * (1 - go)
            if forget_gate:
                gf = a[H + j]
                d[H + j] = dc * c_prev[r + j] * gf * (1 - gf)
                carry_c[r + j] = dc * gf
            else:
                carry_c[r + j] = dc                 # the carousel: unchanged


cdef void lstm_layer_forward(
        int T, int B, int I, int H, bint forget_gate,
        const floating *x,        # IN  (T, B, I)
        const floating *w_ih,     # IN  (G*H, I)
        const floating *w_hh,     # IN  (G*H, H)
        const floating *bias,     # IN  (G*H,)
        const floating *h0,       # IN  (B, H)
        const floating *c0,       # IN  (B, H)
        floating *gates,          # OUT (T, B, G*H) activated gates
        floating *c,              # OUT (T, B, H)
        floating *h,              # OUT (T, B, H)
) noexcept nogil:
    """The LSTM layer forward over t = 0..T-1."""
    cdef int t
    cdef int GH = (4 if forget_gate else 3) * H
    cdef long BH = <long> B * H
    cdef long BGH = <long> B * GH
    cdef const floating *h_prev = h0
    cdef const floating *c_prev = c0
    # z_x = x W_ih^T for every step at once:  (T*B x G*H) = (T*B x I)(I x G*H)
    gemm(False, True, T * B, GH, I, <floating> 1.0, x, I, w_ih, I,
         <floating> 0.0, gates, GH)
    for t in range(T):
        # z(t) += h(t-1) W_hh^T:  (B x G*H) = (B x H)(H x G*H)
        gemm(False, True, B, GH, H, <floating> 1.0, h_prev, H, w_hh, H,
             <floating> 1.0, gates + t * BGH, GH)
        lstm_cell_forward(B, H, forget_gate, gates + t * BGH, bias, c_prev,
                          c + t * BH, h + t * BH)
        h_prev = h + t * BH
        c_prev = c + t * BH


cdef void lstm_layer_backward(
        int T, int B, int I, int H, bint forget_gate, int truncate,
        const floating *x,        # IN  (T, B, I)
        const floating *w_ih,     # IN  (G*H, I)
        const floating *w_hh,     # IN  (G*H, H)
        const floating *h0,       # IN  (B, H)
        const floating *c0,       # IN  (B, H)
        const floating *gates,    # IN  (T, B, G*H) activated gates
        const floating *c,        # IN  (T, B, H)
        const floating *h,        # IN  (T, B, H)
        const floating *grad_h,   # IN  (T, B, H) e_h(t)
        const floating *grad_c,   # IN  (T, B, H) e_c(t), or NULL
        floating *delta,          # OUT (T, B, G*H) dL/dz(t)
        floating *delta_c,        # OUT (T, B, H) dL/dc(t)
        floating *d_w_ih,         # OUT (G*H, I)
        floating *d_w_hh,         # OUT (G*H, H)
        floating *d_bias,         # OUT (G*H,)
        floating *d_h0,           # OUT (B, H) (the h carry during the loop)
        floating *d_c0,           # OUT (B, H) (the c carry during the loop)
        floating *d_x,            # OUT (T, B, I), or NULL to skip
) noexcept nogil:
    """Exact (optionally windowed) BPTT through the LSTM layer."""
    cdef int t
    cdef int GH = (4 if forget_gate else 3) * H
    cdef long BH = <long> B * H
    cdef long BGH = <long> B * GH
    cdef bint carry = False
    for t in range(T - 1, -1, -1):
        lstm_cell_backward(B, H, forget_gate, carry, gates + t * BGH,
                           c + t * BH, c + (t - 1) * BH if t > 0 else c0,
                           h + t * BH, grad_h + t * BH,
                           grad_c + t * BH if grad_c != NULL else NULL,
                           d_h0, d_c0, delta + t * BGH, delta_c + t * BH)
        carry = carries_into(t, truncate)
        if carry or t == 0:
            # carry_h = delta(t) W_hh (dh0 at t = 0):  (B x H) = (B x G*H)(G*H x H)
            gemm(False, False, B, H, GH, <floating> 1.0, delta + t * BGH, GH,
                 w_hh, H, <floating> 0.0, d_h0, H)
    input_side_grads(T * B, I, GH, x, w_ih, delta, d_w_ih, d_bias, d_x)
    # dW_hh = delta(0)^T h0 + delta(1:)^T h(:-1):  (G*H x H) = (G*H x B)(B x H) + ...
    gemm(True, False, GH, H, B, <floating> 1.0, delta, GH, h0, H,
         <floating> 0.0, d_w_hh, H)
    if T > 1:
        # ... + (G*H x (T-1)B)((T-1)B x H)
        gemm(True, False, GH, H, (T - 1) * B, <floating> 1.0, delta + BGH, GH,
             h, H, <floating> 1.0, d_w_hh, H)


# ---------------------------------------------------------------------------
# CEC: s(t) = s(t-1) + W_ih x(t) + b
# ---------------------------------------------------------------------------

cdef void cec_layer_forward(
        int T, int B, int I, int H,
        const floating *x,        # IN  (T, B, I)
        const floating *w_ih,     # IN  (H, I)
        const floating *bias,     # IN  (H,)
        const floating *h0,       # IN  (B, H) s(-1)
        floating *h,              # OUT (T, B, H) s(t)
) noexcept nogil:
    """s(t) = s(t-1) + W_ih x(t) + b for t = 0..T-1."""
    cdef int t, b, j
    cdef long BH = <long> B * H
    cdef const floating *s_prev = h0
    cdef floating *s
    # W_ih x for every step at once:  (T*B x H) = (T*B x I)(I x H)
    gemm(False, True, T * B, H, I, <floating> 1.0, x, I, w_ih, I,
         <floating> 0.0, h, H)
    for t in range(T):
        s = h + t * BH
        for b in range(B):
            for j in range(H):
                s[<long> b * H + j] += s_prev[<long> b * H + j] + bias[j]
        s_prev = s


cdef void cec_layer_backward(
        int T, int B, int I, int H, int truncate,
        const floating *x,        # IN  (T, B, I)
        const floating *w_ih,     # IN  (H, I)
        const floating *grad_h,   # IN  (T, B, H) e(t)
        floating *delta,          # OUT (T, B, H) dL/ds(t)
        floating *d_w_ih,         # OUT (H, I)
        floating *d_bias,         # OUT (H,)
        floating *d_h0,           # OUT (B, H)
        floating *d_x,            # OUT (T, B, I), or NULL to skip
) noexcept nogil:
    """delta(t) = e(t) + delta(t+1): the carousel, windowed by truncate."""
    cdef int t
    cdef long k, BH = <long> B * H
    cdef floating *d
    cdef const floating *g
    for t in range(T - 1, -1, -1):
        d = delta + t * BH
        g = grad_h + t * BH
        if t < T - 1 and carries_into(t + 1, truncate):
            for k in range(BH):
                d[k] = g[k] + d[k + BH]
        else:
            for k in range(BH):
                d[k] = g[k]
    # ds(-1) = delta(0): the self-weight is 1
    for k in range(BH):
        d_h0[k] = delta[k]
    input_side_grads(T * B, I, H, x, w_ih, delta, d_w_ih, d_bias, d_x)


# ---------------------------------------------------------------------------
# def wrappers: check every shape, then run the kernel without the GIL
# ---------------------------------------------------------------------------

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


def lstm_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[::1] bias,
                 const floating[:, ::1] h0, const floating[:, ::1] c0,
                 bint forget_gate, floating[:, :, ::1] gates,
                 floating[:, :, ::1] c, floating[:, :, ::1] h):
    """Run the LSTM forward kernel on time-major arrays (fills gates, c, h)."""
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    cdef int GH = (4 if forget_gate else 3) * H
    cdef Py_ssize_t TB = <Py_ssize_t> T * B, n = sizeof(floating)
    cdef Span s[9]          # outputs first, then inputs
    cdef unsigned int fpenv
    w = "lstm_forward"
    _check_sizes(w, T, B, I, H, 0)
    _expect(w, "w_ih", w_ih.shape, 2, GH, I)
    _expect(w, "w_hh", w_hh.shape, 2, GH, H)
    _expect(w, "bias", bias.shape, 1, GH)
    _expect(w, "h0", h0.shape, 2, B, H)
    _expect(w, "c0", c0.shape, 2, B, H)
    _expect(w, "gates", gates.shape, 3, T, B, GH)
    _expect(w, "c", c.shape, 3, T, B, H)
    _expect(w, "h", h.shape, 3, T, B, H)
    s[0] = _span(&gates[0, 0, 0], TB * GH * n)
    s[1] = _span(&c[0, 0, 0], TB * H * n)
    s[2] = _span(&h[0, 0, 0], TB * H * n)
    s[3] = _span(&x[0, 0, 0], TB * I * n)
    s[4] = _span(&w_ih[0, 0], GH * I * n)
    s[5] = _span(&w_hh[0, 0], GH * H * n)
    s[6] = _span(&bias[0], GH * n)
    s[7] = _span(&h0[0, 0], B * H * n)
    s[8] = _span(&c0[0, 0], B * H * n)
    _check_disjoint(w, ("gates", "c", "h", "x", "w_ih", "w_hh", "bias", "h0",
                        "c0"), s, 3, 9)
    with nogil:
        fpenv = cbptt_ftz_enter()
        lstm_layer_forward(T, B, I, H, forget_gate, &x[0, 0, 0], &w_ih[0, 0],
                           &w_hh[0, 0], &bias[0], &h0[0, 0], &c0[0, 0],
                           &gates[0, 0, 0], &c[0, 0, 0], &h[0, 0, 0])
        cbptt_ftz_leave(fpenv)


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
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    cdef int GH = (4 if forget_gate else 3) * H
    cdef Py_ssize_t TB = <Py_ssize_t> T * B, n = sizeof(floating)
    cdef Span s[18]          # outputs first, then inputs
    cdef unsigned int fpenv
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
    s[2] = _span(&d_w_ih[0, 0], GH * I * n)
    s[3] = _span(&d_w_hh[0, 0], GH * H * n)
    s[4] = _span(&d_bias[0], GH * n)
    s[5] = _span(&d_h0[0, 0], B * H * n)
    s[6] = _span(&d_c0[0, 0], B * H * n)
    s[7] = _span(p_d_x, TB * I * n)
    s[8] = _span(&x[0, 0, 0], TB * I * n)
    s[9] = _span(&w_ih[0, 0], GH * I * n)
    s[10] = _span(&w_hh[0, 0], GH * H * n)
    s[11] = _span(&h0[0, 0], B * H * n)
    s[12] = _span(&c0[0, 0], B * H * n)
    s[13] = _span(&gates[0, 0, 0], TB * GH * n)
    s[14] = _span(&c[0, 0, 0], TB * H * n)
    s[15] = _span(&h[0, 0, 0], TB * H * n)
    s[16] = _span(&grad_h[0, 0, 0], TB * H * n)
    s[17] = _span(p_grad_c, TB * H * n)
    _check_disjoint(w, ("delta", "delta_c", "d_w_ih", "d_w_hh", "d_bias",
                        "d_h0", "d_c0", "d_x", "x", "w_ih", "w_hh", "h0", "c0",
                        "gates", "c", "h", "grad_h", "grad_c"), s, 8, 18)
    with nogil:
        fpenv = cbptt_ftz_enter()
        lstm_layer_backward(T, B, I, H, forget_gate, truncate, &x[0, 0, 0],
                            &w_ih[0, 0], &w_hh[0, 0], &h0[0, 0], &c0[0, 0],
                            &gates[0, 0, 0], &c[0, 0, 0], &h[0, 0, 0],
                            &grad_h[0, 0, 0], p_grad_c, &delta[0, 0, 0],
                            &delta_c[0, 0, 0], &d_w_ih[0, 0], &d_w_hh[0, 0],
                            &d_bias[0], &d_h0[0, 0], &d_c0[0, 0], p_d_x)
        cbptt_ftz_leave(fpenv)


def cec_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                const floating[::1] bias, const floating[:, ::1] h0,
                floating[:, :, ::1] h):
    """Run the CEC forward kernel on time-major arrays (fills h)."""
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_ih.shape[0]
    cdef Py_ssize_t TB = <Py_ssize_t> T * B, n = sizeof(floating)
    cdef Span s[5]          # outputs first, then inputs
    cdef unsigned int fpenv
    w = "cec_forward"
    _check_sizes(w, T, B, I, H, 0)
    _expect(w, "w_ih", w_ih.shape, 2, H, I)
    _expect(w, "bias", bias.shape, 1, H)
    _expect(w, "h0", h0.shape, 2, B, H)
    _expect(w, "h", h.shape, 3, T, B, H)
    s[0] = _span(&h[0, 0, 0], TB * H * n)
    s[1] = _span(&x[0, 0, 0], TB * I * n)
    s[2] = _span(&w_ih[0, 0], H * I * n)
    s[3] = _span(&bias[0], H * n)
    s[4] = _span(&h0[0, 0], B * H * n)
    _check_disjoint(w, ("h", "x", "w_ih", "bias", "h0"), s, 1, 5)
    with nogil:
        fpenv = cbptt_ftz_enter()
        cec_layer_forward(T, B, I, H, &x[0, 0, 0], &w_ih[0, 0], &bias[0],
                          &h0[0, 0], &h[0, 0, 0])
        cbptt_ftz_leave(fpenv)


def cec_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, :, ::1] grad_h, int truncate,
                 floating[:, :, ::1] delta, floating[:, ::1] d_w_ih,
                 floating[::1] d_bias, floating[:, ::1] d_h0,
                 floating[:, :, ::1] d_x):
    """Run the CEC backward kernel on time-major arrays (fills the OUTs).

    ``d_x`` may be None (skip dL/dx).
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_ih.shape[0]
    cdef Py_ssize_t TB = <Py_ssize_t> T * B, n = sizeof(floating)
    cdef Span s[8]          # outputs first, then inputs
    cdef unsigned int fpenv
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
    s[1] = _span(&d_w_ih[0, 0], H * I * n)
    s[2] = _span(&d_bias[0], H * n)
    s[3] = _span(&d_h0[0, 0], B * H * n)
    s[4] = _span(p_d_x, TB * I * n)
    s[5] = _span(&x[0, 0, 0], TB * I * n)
    s[6] = _span(&w_ih[0, 0], H * I * n)
    s[7] = _span(&grad_h[0, 0, 0], TB * H * n)
    _check_disjoint(w, ("delta", "d_w_ih", "d_bias", "d_h0", "d_x", "x",
                        "w_ih", "grad_h"), s, 5, 8)
    with nogil:
        fpenv = cbptt_ftz_enter()
        cec_layer_backward(T, B, I, H, truncate, &x[0, 0, 0], &w_ih[0, 0],
                           &grad_h[0, 0, 0], &delta[0, 0, 0], &d_w_ih[0, 0],
                           &d_bias[0], &d_h0[0, 0], p_d_x)
        cbptt_ftz_leave(fpenv)
