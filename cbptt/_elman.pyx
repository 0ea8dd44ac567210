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
from cython.parallel cimport parallel, threadid
from libc.string cimport memset

import numpy as np

from cbptt._blas cimport gemm
from cbptt._kernels cimport cbptt_ftz_enter, cbptt_ftz_leave
from cbptt._simd cimport (cbptt_isa, cbptt_max_threads,
                          cbptt_pack_f, cbptt_pack_d, cbptt_mm_f, cbptt_mm_d,
                          cbptt_bias_act_rows_f, cbptt_bias_act_rows_d,
                          cbptt_delta_rows_f, cbptt_delta_rows_d)

# Below this much per-step work (B * H * H multiply-adds) a second thread
# costs more in wake-up and cache traffic than it saves (measured; see
# BENCHMARKS.md).
cdef long PARALLEL_MIN_WORK = 32 * 48 * 48


cdef inline void pack(int n, int k, const floating *w, long rs, long cs,
                      floating *packed) noexcept nogil:
    if floating is float:
        cbptt_pack_f(n, k, w, rs, cs, packed)
    else:
        cbptt_pack_d(n, k, w, rs, cs, packed)


cdef inline void small_mm(int m, int n, int k, const floating *a, long lda,
                          const floating *packed, floating *c, long ldc,
                          bint accumulate) noexcept nogil:
    if floating is float:
        cbptt_mm_f(m, n, k, a, lda, packed, c, ldc, accumulate)
    else:
        cbptt_mm_d(m, n, k, a, lda, packed, c, ldc, accumulate)


cdef inline void bias_activate_rows(int act, int m, int n, floating *z,
                                    const floating *b) noexcept nogil:
    if floating is float:
        cbptt_bias_act_rows_f(act, m, n, z, n, b)
    else:
        cbptt_bias_act_rows_d(act, m, n, z, n, b)


cdef inline void delta_rows(int act, long length, floating *d,
                            const floating *y, const floating *g,
                            bint carry) noexcept nogil:
    if floating is float:
        cbptt_delta_rows_f(act, length, d, y, g, carry)
    else:
        cbptt_delta_rows_d(act, length, d, y, g, carry)


cdef int threads_for(int B, int H) noexcept nogil:
    """Threads for a layer of B sequences: 1, or the OpenMP limit when the
    per-step work pays for it and every thread gets at least 8 rows."""
    cdef int n = cbptt_max_threads()
    if <long> B * H * H < PARALLEL_MIN_WORK:
        return 1
    if n > B // 8:
        n = B // 8
    return n if n > 1 else 1


cdef inline void row_range(int B, int nthreads, int tid, int *lo,
                           int *hi) noexcept nogil:
    """Rows [lo, hi) of thread tid: blocks of a multiple of 4 rows."""
    cdef int chunk = (B + nthreads - 1) // nthreads
    chunk = (chunk + 3) // 4 * 4
    lo[0] = tid * chunk if tid * chunk < B else B
    hi[0] = lo[0] + chunk if lo[0] + chunk < B else B


cdef void elman_rows_forward(
        int lo, int hi, int T, int B, int H, int act,
        const floating *w_hh_p,  # IN  W_hh^T packed (cbptt_pack)
        const floating *bias,    # IN  (H,)
        const floating *h0,      # IN  (B, H)
        floating *h,             # IN/OUT (T, B, H): x W_ih^T in, h(t) out
) noexcept nogil:
    """The time loop for sequences [lo, hi): the cell step once per t."""
    cdef int t
    cdef long BH = <long> B * H
    cdef const floating *h_prev = h0 + <long> lo * H
    cdef floating *h_t
    for t in range(T):
        h_t = h + t * BH + <long> lo * H
        # net(t) += h(t-1) W_hh^T:  (m x H) = (m x H)(H x H), m = hi - lo
        small_mm(hi - lo, H, H, h_prev, H, w_hh_p, h_t, H, True)
        # h(t) = f(net(t) + b)
        bias_activate_rows(act, hi - lo, H, h_t, bias)
        h_prev = h_t


cdef void elman_layer_forward(
        int T, int B, int I, int H, int act, int nthreads,
        const floating *x,       # IN  (T, B, I)
        const floating *w_ih,    # IN  (H, I)
        const floating *w_hh,    # IN  (H, H)
        const floating *bias,    # IN  (H,)
        const floating *h0,      # IN  (B, H)
        floating *h,             # OUT (T, B, H)
        floating *w_hh_p,        # WORK (H * H) W_hh^T packed
) noexcept nogil:
    """h(t) = f(W_ih x(t) + W_hh h(t-1) + b) for t = 0..T-1.

    The sequences are independent, so nthreads > 1 splits the batch: each
    thread runs the whole time loop on its rows, no per-step barrier.
    """
    cdef int tid, lo, hi
    cdef unsigned int fpenv
    # net_x = x W_ih^T for every step at once:  (T*B x H) = (T*B x I)(I x H)
    gemm(False, True, T * B, H, I, <floating> 1.0, x, I, w_ih, I,
         <floating> 0.0, h, H)
    pack(H, H, w_hh, 1, H, w_hh_p)          # W[k, j] = W_hh[j, k]
    if nthreads <= 1:
        elman_rows_forward(0, B, T, B, H, act, w_hh_p, bias, h0, h)
        return
    with parallel(num_threads=nthreads):
        tid = threadid()
        row_range(B, nthreads, tid, &lo, &hi)
        if hi > lo:
            fpenv = cbptt_ftz_enter()
            elman_rows_forward(lo, hi, T, B, H, act, w_hh_p, bias, h0, h)
            cbptt_ftz_leave(fpenv)


cdef void elman_rows_backward(
        int lo, int hi, int T, int B, int H, int act, int truncate,
        const floating *w_hh_p,  # IN  W_hh packed (cbptt_pack)
        const floating *h,       # IN  (T, B, H) forward outputs
        const floating *grad_h,  # IN  (T, B, H)
        floating *delta,         # OUT (T, B, H)
) noexcept nogil:
    """The reverse time loop for sequences [lo, hi)."""
    cdef int t
    cdef long off, BH = <long> B * H
    cdef bint has_carry = False
    for t in range(T - 1, -1, -1):
        off = t * BH + <long> lo * H
        if has_carry:
            # carry = delta(t+1) W_hh:  (m x H) = (m x H)(H x H), into delta(t)
            small_mm(hi - lo, H, H, delta + off + BH, H, w_hh_p, delta + off,
                     H, False)
        # delta(t) = f'(net(t)) * (grad_h(t) + carry)
        delta_rows(act, <long> (hi - lo) * H, delta + off, h + off,
                   grad_h + off, has_carry)
        # the next step down gets a carry unless t starts a window
        has_carry = t > 0 and (truncate <= 0 or t % truncate != 0)


cdef void elman_layer_backward(
        int T, int B, int I, int H, int act, int truncate, int nthreads,
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
        floating *w_hh_p,        # WORK (H * H) W_hh packed
) noexcept nogil:
    """Exact (optionally windowed) BPTT through the Elman layer.

    The recursion runs per sequence (split among nthreads, no per-step
    barrier); the weight gradients are then one GEMM each over all steps.
    """
    cdef int j, tid, lo, hi
    cdef long r, BH = <long> B * H
    cdef unsigned int fpenv
    pack(H, H, w_hh, H, 1, w_hh_p)          # W[k, j] = W_hh[k, j]
    if nthreads <= 1:
        elman_rows_backward(0, B, T, B, H, act, truncate, w_hh_p, h, grad_h,
                            delta)
    else:
        with parallel(num_threads=nthreads):
            tid = threadid()
            row_range(B, nthreads, tid, &lo, &hi)
            if hi > lo:
                fpenv = cbptt_ftz_enter()
                elman_rows_backward(lo, hi, T, B, H, act, truncate, w_hh_p, h,
                                    grad_h, delta)
                cbptt_ftz_leave(fpenv)
    # dh0 = delta(0) W_hh:  (B x H) = (B x H)(H x H)
    small_mm(B, H, H, delta, H, w_hh_p, d_h0, H, False)
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


def simd_level():
    """The instruction set the kernels use: 2 AVX-512, 1 AVX2+FMA, 0 baseline."""
    return cbptt_isa()


def threads_used(int B, int H):
    """How many threads the Elman kernels use for B sequences of H units."""
    return threads_for(B, H)


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
    cdef floating[::1] w_hh_p = np.empty(<long> H * H, np.asarray(h).dtype)
    cdef int nthreads = threads_for(B, H)
    with nogil:
        fpenv = cbptt_ftz_enter()
        elman_layer_forward(T, B, I, H, act, nthreads, &x[0, 0, 0],
                            &w_ih[0, 0], &w_hh[0, 0], &bias[0], &h0[0, 0],
                            &h[0, 0, 0], &w_hh_p[0])
        cbptt_ftz_leave(fpenv)


def elman_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                   const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                   const floating[:, :, ::1] h,
                   const floating[:, :, ::1] grad_h, int act, int truncate,
                   floating[:, :, ::1] delta, floating[:, ::1] d_w_ih,
                   floating[:, ::1] d_w_hh, floating[::1] d_bias,
                   floating[:, ::1] d_h0, floating[:, :, ::1] d_x,
                   floating[:, ::1] carry):
    """Run the backward kernel on validated, time-major arrays (fills the OUTs).

    ``carry`` (B, H) is checked but no longer used (the carried error now
    lives in ``delta``); it stays in the signature for the callers.
    """
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
    cdef floating[::1] w_hh_p = np.empty(<long> H * H, np.asarray(delta).dtype)
    cdef int nthreads = threads_for(B, H)
    with nogil:
        fpenv = cbptt_ftz_enter()
        elman_layer_backward(T, B, I, H, act, truncate, nthreads, &x[0, 0, 0],
                             &w_ih[0, 0], &w_hh[0, 0], &h0[0, 0], &h[0, 0, 0],
                             &grad_h[0, 0, 0], &delta[0, 0, 0], &d_w_ih[0, 0],
                             &d_w_hh[0, 0], &d_bias[0], &d_h0[0, 0],
                             &d_x[0, 0, 0], &w_hh_p[0])
        cbptt_ftz_leave(fpenv)
