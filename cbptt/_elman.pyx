"""Compiled Elman (simple recurrent) layer: forward pass and exact BPTT.

Design contract
---------------
* Layout. Every per-step array is time-major and C-contiguous, ``(T, B, .)``:
  step ``t`` of a mini-batch is one contiguous ``(B x .)`` block, so the
  per-step products are plain GEMMs and the all-steps products are one GEMM
  over ``T*B`` rows. The public API (``cbptt.functional``) is batch-first and
  converts at the boundary.
* Equations (``f`` the activation, ``W_ih (H, I)``, ``W_hh (H, H)``)::

      net(t)   = W_ih x(t) + W_hh h(t-1) + b,     h(t) = f(net(t))
      delta(t) = f'(net(t)) * (grad_h(t) + W_hh^T delta(t+1))
      dW_ih = sum_t delta(t)^T x(t),  dW_hh = sum_t delta(t)^T h(t-1),
      db = sum_t delta(t),  dh0 = W_hh^T delta(0),  dx(t) = W_ih^T delta(t)

  ``f'`` is taken from the stored outputs ``h`` (no ``net`` is kept).
* Truncation ``k``: windows ``[0, k), [k, 2k), ...``; at a window start
  ``t0 > 0`` the carried error ``W_hh^T delta(t0)`` is dropped (what
  ``h.detach()`` does), while ``delta(t0) h(t0-1)^T`` still counts in ``dW_hh``.
* Kernels are ``noexcept nogil``, allocate nothing, and run with
  flush-to-zero/denormals-are-zero set (restored on exit). Shapes are checked
  by the ``def`` wrappers before the GIL is released.
"""
from cython cimport floating
from libc.string cimport memset

from cbptt._blas cimport gemm
from cbptt._kernels cimport (cbptt_bias_activate_f, cbptt_bias_activate_d,
                             cbptt_delta_f, cbptt_delta_d,
                             cbptt_ftz_enter, cbptt_ftz_leave)


cdef inline void bias_activate(int act, floating *z, const floating *b,
                               long n) noexcept nogil:
    if floating is float:
        cbptt_bias_activate_f(act, z, b, n)
    else:
        cbptt_bias_activate_d(act, z, b, n)


cdef inline void step_delta(int act, floating *d, const floating *y,
                            const floating *g, const floating *c,
                            long n) noexcept nogil:
    if floating is float:
        cbptt_delta_f(act, d, y, g, c, n)
    else:
        cbptt_delta_d(act, d, y, g, c, n)


cdef void elman_layer_forward(
        int T, int B, int I, int H, int act,
        const floating *x,       # IN  (T, B, I)
        const floating *w_ih,    # IN  (H, I)
        const floating *w_hh,    # IN  (H, H)
        const floating *bias,    # IN  (H,)
        const floating *h0,      # IN  (B, H)
        floating *h,             # OUT (T, B, H)
) noexcept nogil:
    """h(t) = f(W_ih x(t) + W_hh h(t-1) + b) for t = 0..T-1."""
    cdef int t, b
    cdef long BH = <long> B * H
    cdef const floating *h_prev = h0
    cdef floating *h_t
    # net_x = x W_ih^T for every step at once:  (T*B x H) = (T*B x I)(I x H)
    gemm(False, True, T * B, H, I, <floating> 1.0, x, I, w_ih, I,
         <floating> 0.0, h, H)
    for t in range(T):
        h_t = h + t * BH
        # net(t) += h(t-1) W_hh^T:  (B x H) = (B x H)(H x H)
        gemm(False, True, B, H, H, <floating> 1.0, h_prev, H, w_hh, H,
             <floating> 1.0, h_t, H)
        for b in range(B):
            bias_activate(act, h_t + <long> b * H, bias, H)
        h_prev = h_t


cdef void elman_layer_backward(
        int T, int B, int I, int H, int act, int truncate,
        const floating *x,       # IN  (T, B, I)
        const floating *w_ih,    # IN  (H, I)
        const floating *w_hh,    # IN  (H, H)
        const floating *h0,      # IN  (B, H)
        const floating *h,       # IN  (T, B, H) forward outputs
        const floating *grad_h,  # IN  (T, B, H) dL/dh(t) from the loss
        floating *delta,         # OUT (T, B, H) dL/dnet(t)
        floating *d_w_ih,        # OUT (H, I)
        floating *d_w_hh,        # OUT (H, H)
        floating *d_bias,        # OUT (H,)
        floating *d_h0,          # OUT (B, H)
        floating *d_x,           # OUT (T, B, I)
        floating *carry,         # WORK (B, H) W_hh^T delta(t+1)
) noexcept nogil:
    """Exact (optionally windowed) BPTT through the Elman layer."""
    cdef int t, j
    cdef long r, BH = <long> B * H
    cdef bint has_carry = False
    for t in range(T - 1, -1, -1):
        # delta(t) = f'(net(t)) * (grad_h(t) + carry)
        step_delta(act, delta + t * BH, h + t * BH, grad_h + t * BH,
                   carry if has_carry else NULL, BH)
        if t > 0 and (truncate <= 0 or t % truncate != 0):
            # carry = delta(t) W_hh:  (B x H) = (B x H)(H x H)
            gemm(False, False, B, H, H, <floating> 1.0, delta + t * BH, H,
                 w_hh, H, <floating> 0.0, carry, H)
            has_carry = True
        else:
            has_carry = False      # window start: the error stops here
    # dh0 = delta(0) W_hh:  (B x H) = (B x H)(H x H)
    gemm(False, False, B, H, H, <floating> 1.0, delta, H, w_hh, H,
         <floating> 0.0, d_h0, H)
    # dW_ih = delta^T x:  (H x I) = (H x T*B)(T*B x I)
    gemm(True, False, H, I, T * B, <floating> 1.0, delta, H, x, I,
         <floating> 0.0, d_w_ih, I)
    # dW_hh = delta(1:)^T h(:-1) + delta(0)^T h0:  (H x H) = (H x (T-1)B)((T-1)B x H)
    gemm(True, False, H, H, B, <floating> 1.0, delta, H, h0, H,
         <floating> 0.0, d_w_hh, H)
    if T > 1:
        gemm(True, False, H, H, (T - 1) * B, <floating> 1.0, delta + BH, H,
             h, H, <floating> 1.0, d_w_hh, H)
    # dx = delta W_ih:  (T*B x I) = (T*B x H)(H x I)
    gemm(False, False, T * B, I, H, <floating> 1.0, delta, H, w_ih, I,
         <floating> 0.0, d_x, I)
    # db = sum over all T*B rows of delta
    memset(d_bias, 0, H * sizeof(floating))
    for r in range(<long> T * B):
        for j in range(H):
            d_bias[j] += delta[r * H + j]


def elman_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                  const floating[:, ::1] w_hh, const floating[::1] bias,
                  const floating[:, ::1] h0, int act,
                  floating[:, :, ::1] h):
    """Run the forward kernel on validated, time-major arrays (in place on h)."""
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_ih.shape[0]
    cdef unsigned int fpenv
    if (T < 1 or B < 1 or I < 1 or H < 1 or w_ih.shape[1] != I
            or w_hh.shape[0] != H or w_hh.shape[1] != H or bias.shape[0] != H
            or h0.shape[0] != B or h0.shape[1] != H or h.shape[0] != T
            or h.shape[1] != B or h.shape[2] != H or not 0 <= act <= 3):
        raise ValueError("elman_forward: inconsistent shapes")
    with nogil:
        fpenv = cbptt_ftz_enter()
        elman_layer_forward(T, B, I, H, act, &x[0, 0, 0], &w_ih[0, 0],
                            &w_hh[0, 0], &bias[0], &h0[0, 0], &h[0, 0, 0])
        cbptt_ftz_leave(fpenv)


def elman_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                   const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                   const floating[:, :, ::1] h,
                   const floating[:, :, ::1] grad_h, int act, int truncate,
                   floating[:, :, ::1] delta, floating[:, ::1] d_w_ih,
                   floating[:, ::1] d_w_hh, floating[::1] d_bias,
                   floating[:, ::1] d_h0, floating[:, :, ::1] d_x,
                   floating[:, ::1] carry):
    """Run the backward kernel on validated, time-major arrays (fills the OUTs)."""
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_ih.shape[0]
    cdef unsigned int fpenv
    if (T < 1 or B < 1 or I < 1 or H < 1 or w_ih.shape[1] != I
            or w_hh.shape[0] != H or w_hh.shape[1] != H
            or h0.shape[0] != B or h0.shape[1] != H
            or h.shape[0] != T or h.shape[1] != B or h.shape[2] != H
            or grad_h.shape[0] != T or grad_h.shape[1] != B or grad_h.shape[2] != H
            or delta.shape[0] != T or delta.shape[1] != B or delta.shape[2] != H
            or d_w_ih.shape[0] != H or d_w_ih.shape[1] != I
            or d_w_hh.shape[0] != H or d_w_hh.shape[1] != H
            or d_bias.shape[0] != H or d_h0.shape[0] != B or d_h0.shape[1] != H
            or d_x.shape[0] != T or d_x.shape[1] != B or d_x.shape[2] != I
            or carry.shape[0] != B or carry.shape[1] != H
            or not 0 <= act <= 3 or truncate < 0):
        raise ValueError("elman_backward: inconsistent shapes")
    with nogil:
        fpenv = cbptt_ftz_enter()
        elman_layer_backward(T, B, I, H, act, truncate, &x[0, 0, 0],
                             &w_ih[0, 0], &w_hh[0, 0], &h0[0, 0], &h[0, 0, 0],
                             &grad_h[0, 0, 0], &delta[0, 0, 0], &d_w_ih[0, 0],
                             &d_w_hh[0, 0], &d_bias[0], &d_h0[0, 0],
                             &d_x[0, 0, 0], &carry[0, 0])
        cbptt_ftz_leave(fpenv)
