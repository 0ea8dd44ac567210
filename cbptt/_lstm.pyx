"""Compiled constant error carousel (CEC) and LSTM layers: forward and exact BPTT.

Design contract
---------------
* Layout, as in ``_elman``: every per-step array is time-major and
  C-contiguous, ``(T, B, .)``. ``cbptt.functional`` is batch-first and
  converts at the boundary.
* Products: no BLAS. Every product is a register-tiled loop of
  ``src/cbptt_simd.h`` (AVX-512, AVX2+FMA or baseline, chosen at run time)
  on weights packed once per call: per step the input and recurrent
  products of the forward pass, the carried error ``delta(t) W_hh`` and
  ``dx(t)`` of the backward pass; ``[dW_hh | dW_ih | db]^T`` either
  inside the backward loop, per step, into one partial per group of
  ``WG_GROUP`` sequences (layers whose gradients fit ``WG_FUSED_MAX_BYTES``)
  or after it as one all-steps product in blocks of ``GRAD_K_BLOCK`` rows.
* Threads: sequences are independent, so with ``nthreads > 1`` (OpenMP,
  when the work of a call pays for it, see ``threads_for``) each thread
  takes a share of the sequences and runs the whole time loop on it: no
  per-step barrier. The weight gradients are summed per group of rows in
  the same loop, or split by columns after it. Every
  element is computed by the same operations in the same order whatever
  the split, so results are bitwise identical for any thread count.
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
* Kernels are ``noexcept nogil``, allocate nothing, and run with
  flush-to-zero/denormals-are-zero set in every thread (restored on exit).

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
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.float cimport DBL_MAX, FLT_MAX
from libc.string cimport memcpy

import numpy as np

from cbptt._scan import (aligned_empty, all_finite_arrays, forward_inputs,
                         grad_input, preact_bound_or_none)

from cbptt._kernels cimport cbptt_ftz_enter, cbptt_ftz_leave
from cbptt._scan cimport data_if, data_of, result_dims
from cbptt._simd cimport (cbptt_isa_limit, cbptt_max_threads, pack, small_mm,
                          pack_blocked, small_mm_blocked, n_chunks, chunk_end,
                          col_sums, PAGE_BYTES, whole_pages, page_start,
                          LINE_BYTES, whole_lines, line_start, add_partials)

cdef extern from "cbptt_lstm.h" nogil:
    void cbptt_lstm_fwd_rows_f(int m, int H, int fg, float *z, const float *b,
                               const float *c_prev, float *c, float *h)
    void cbptt_lstm_fwd_rows_d(int m, int H, int fg, double *z,
                               const double *b, const double *c_prev,
                               double *c, double *h)
    void cbptt_lstm_bwd_rows_f(int m, int H, int fg, int carry,
                               const float *gates, const float *c,
                               const float *c_prev, const float *h,
                               const float *grad_h, const float *grad_c,
                               const float *carry_h, float *carry_c,
                               float *delta, float *delta_c)
    void cbptt_lstm_bwd_rows_d(int m, int H, int fg, int carry,
                               const double *gates, const double *c,
                               const double *c_prev, const double *h,
                               const double *grad_h, const double *grad_c,
                               const double *carry_h, double *carry_c,
                               double *delta, double *delta_c)

# Below this much work per call (T * B * G*H * H multiply-adds of the
# recurrent product; the rest scales with it) a second thread costs more than
# it saves: there is no barrier per step, but every thread must be scheduled
# once per call, which on a busy machine can take a time slice (ms).
# Measured on the 2-CPU machine of BENCHMARKS.md (B = 32, forward +
# backward, page-aligned arrays, the weight gradients of small layers summed
# in the time loop): float32 gains 1.36x at H = 16 and T = 100 (3.3M),
# 1.7x at H = 32 and T = 25 (3.3M), loses (0.88x) at H = 16 and T = 25
# (0.8M); 1.8x from H = 32 at T = 100; float64 gains 1.4x at H = 16 and
# 1.8x at H = 64 (T = 100).
cdef long PARALLEL_MIN_WORK_F = 2 * 1000 * 1000
cdef long PARALLEL_MIN_WORK_D = 2 * 1000 * 1000
# The fewest rows of the batch per chunk (a thread's share of the sequences,
# see rows_per_chunk); a batch of fewer than two chunks runs on one thread.
cdef int ROW_CHUNK = 8
# Rows (of the T*B summed over) per block of the weight-gradient products:
# the block of delta, packed (GRAD_K_BLOCK x G*H), stays in L2 and each of
# its panels in L1 while the rows of the gradient pass over it (measured:
# 64 is best from H = 16 to 256).
cdef int GRAD_K_BLOCK = 64
# Columns of the weight gradients per part when threads share them (a
# multiple of every panel width): each part packs only its columns of delta.
cdef int GRAD_N_PART = 128
# Parts of at most this many bytes per row (one AVX-512 panel) use delta in
# place (rows G*H apart) instead of packing it: at G*H = 64 the copy cost
# more than the panel layout saved (3% float32, 10% float64 at H = 16);
# wider, packing is 10-25% faster (float32 and float64, G*H = 256).
cdef int PACK_MIN_BYTES = 256
# A layer whose [dW_hh | dW_ih | db]^T is at most this many bytes sums its
# weight gradients inside the backward time loop, while delta(t) and h(t-1)
# are in L1, as one partial per group of WG_GROUP rows of the batch; the
# partials are then added in group order. The groups do not depend on the
# thread count, so neither do the results, and each thread sums the rows it
# computed (no pass over delta afterwards, nothing read from the other
# core's cache). Measured against the all-steps product split by columns
# (backward pass, B = 32, T = 100): float32 H = 16 1.5-1.75x with two
# threads (0.93x on one), H = 64 1.30x (1.05x), H = 128 (280 KiB) 1.12x
# (1.03x); float64 H = 16 1.13x on one thread, H = 96 (322 KiB) 1.12x with
# two; float32 H = 256 (1.1 MiB, partials beyond L2) 0.68x: not there.
cdef int WG_FUSED_MAX_BYTES = 384 * 1024
cdef int WG_GROUP = 16


cdef int grad_part(int GH, int nthreads) noexcept nogil:
    """Columns per part of the weight gradients: GRAD_N_PART when there are
    enough for every thread, else an equal share per thread (a multiple of
    16 columns): at H = 16 and 32 (G*H = 64, 128) one part of 128 left the
    second thread idle, 1.2x instead of 1.6x over one thread for the
    backward pass. Narrower parts change no result (every element gets the
    same operations in any panel or tile)."""
    if GH >= nthreads * GRAD_N_PART:
        return GRAD_N_PART
    return max(16, ((GH + nthreads - 1) // nthreads + 15) // 16 * 16)


cdef inline long backward_work(int GH, int H, int I, int nthreads,
                               int itemsize) noexcept nogil:
    """Elements of the backward kernel's workspace (without carries and
    partials), each part from a cache line: W_hh and W_ih packed,
    [dW_hh | dW_ih | db]^T, and the parts' chunks of delta."""
    return (whole_lines(<long> GH * H, itemsize)
            + whole_lines(<long> GH * I, itemsize)
            + whole_lines(<long> (H + I + 1) * GH, itemsize)
            + <long> GRAD_K_BLOCK * max(GH, nthreads * grad_part(GH, nthreads)))


cdef inline bint fused_weight_grads(int GH, int H, int I,
                                    int itemsize) noexcept nogil:
    """Whether the weight gradients are summed inside the time loop (see
    WG_FUSED_MAX_BYTES): a property of the layer, never of the threads."""
    return <long> (H + I + 1) * GH * itemsize <= WG_FUSED_MAX_BYTES


cdef inline long partial_stride(int GH, int H, int I,
                                int itemsize) noexcept nogil:
    """Elements per group partial: (H + I + 1) * GH rounded up to whole
    pages (no two threads write one page)."""
    return whole_pages(<long> (H + I + 1) * GH, itemsize)


cdef int rows_per_chunk(int B, int nthreads) noexcept nogil:
    """Sequences per chunk: an equal share of the batch per thread, a
    multiple of 4 rows (the products' row tile) and at least ROW_CHUNK.
    Large chunks let every row of a chunk pass over a block of the packed
    weights while it is in cache (measured at H = 256: 16 rows per chunk
    beat 8 by 5-30%); one chunk per thread leaves nothing to balance, and
    the static schedule gives a thread the same rows forward and backward
    (they are still in its cache)."""
    cdef int r = (B + nthreads - 1) // nthreads
    return max(ROW_CHUNK, (r + 3) // 4 * 4)


cdef inline long carry_stride(int rc, int H, int itemsize) noexcept nogil:
    """Elements per private carry buffer of a chunk of rc rows: rc * H
    rounded up to whole pages, so that no two threads write one page."""
    return whole_pages(<long> rc * H, itemsize)


cdef inline bint carries_into(int t, int truncate) noexcept nogil:
    """Whether the error at step t flows on to step t-1 (no window start at t)."""
    return t > 0 and (truncate <= 0 or t % truncate != 0)


cdef int threads_for(int T, int B, int GH, int H, int itemsize) noexcept nogil:
    """Threads for a layer of B sequences of T steps: 1, or the OpenMP limit
    when the work of a call pays for it (in floats of ``itemsize`` bytes) and
    there are at least two row chunks."""
    cdef int n = cbptt_max_threads()
    cdef long least = PARALLEL_MIN_WORK_F if itemsize == 4 else PARALLEL_MIN_WORK_D
    if <long> T * B * GH * H < least or B < 2 * ROW_CHUNK:
        return 1
    return n if n > 1 else 1


# ---------------------------------------------------------------------------
# LSTM: cell step (one fused pointwise loop per row, src/cbptt_lstm.h) and
# layer (the loop over time, per chunk of the batch)
# ---------------------------------------------------------------------------

cdef inline void lstm_cell_forward(
        int m, int H, bint forget_gate,
        floating *gates,          # IN/OUT (m, G*H) z(t) - b in, i f g o out
        const floating *bias,     # IN  (G*H,)
        const floating *c_prev,   # IN  (m, H) c(t-1)
        floating *c,              # OUT (m, H) c(t)
        floating *h,              # OUT (m, H) h(t)
) noexcept nogil:
    """i, f, g, o = gates(z + b); c = f c_prev + i g; h = o tanh(c): one pass."""
    if floating is float:
        cbptt_lstm_fwd_rows_f(m, H, forget_gate, gates, bias, c_prev, c, h)
    else:
        cbptt_lstm_fwd_rows_d(m, H, forget_gate, gates, bias, c_prev, c, h)


cdef inline void lstm_cell_backward(
        int m, int H, bint forget_gate, bint carry,
        const floating *gates,    # IN  (m, G*H) activated i f g o of step t
        const floating *c,        # IN  (m, H) c(t)
        const floating *c_prev,   # IN  (m, H) c(t-1)
        const floating *h,        # IN  (m, H) h(t) = o tanh(c(t))
        const floating *grad_h,   # IN  (m, H) e_h(t)
        const floating *grad_c,   # IN  (m, H) e_c(t), or NULL
        const floating *carry_h,  # IN  (m, H) W_hh^T delta(t+1) (if carry)
        floating *carry_c,        # IN/OUT (m, H) f(t+1) delta_c(t+1) in
                                  #   (if carry), f(t) delta_c(t) out
        floating *delta,          # OUT (m, G*H) dL/dz(t)
        floating *delta_c,        # OUT (m, H) dL/dc(t)
) noexcept nogil:
    """All G gate deltas and the carried cell error of one step: one pass."""
    if floating is float:
        cbptt_lstm_bwd_rows_f(m, H, forget_gate, carry, gates, c, c_prev, h,
                              grad_h, grad_c, carry_h, carry_c, delta,
                              delta_c)
    else:
        cbptt_lstm_bwd_rows_d(m, H, forget_gate, carry, gates, c, c_prev, h,
                              grad_h, grad_c, carry_h, carry_c, delta,
                              delta_c)


cdef void lstm_rows_forward(
        int lo, int hi, int T, int B, int I, int H, bint forget_gate,
        const floating *x,        # IN  (T, B, I)
        const floating *w_ih_p,   # IN  W_ih^T packed (I x G*H)
        const floating *w_hh_p,   # IN  W_hh^T packed in blocks (H x G*H)
        const floating *bias,     # IN  (G*H,)
        const floating *h0,       # IN  (B, H)
        const floating *c0,       # IN  (B, H)
        floating *gates,          # OUT (T, B, G*H) activated gates, or
                                  #     (1, B, G*H) when not keep
        floating *c,              # OUT (T, B, H), or (2, B, H) when not keep
        floating *h,              # OUT (T, B, H)
        bint keep,                # every step's gates and c, or the last ones
) noexcept nogil:
    """The time loop for sequences [lo, hi): the cell step once per t.

    Without ``keep`` (a forward that will not be differentiated) the gates of
    every step go to one (B, G*H) buffer and c(t) to slot t % 2 of two: the
    working set stays in cache and nothing of size T is written but h."""
    cdef int t, m = hi - lo
    cdef int GH = (4 if forget_gate else 3) * H
    cdef long BH = <long> B * H
    cdef long BGH = <long> B * GH
    cdef const floating *h_prev = h0 + <long> lo * H
    cdef const floating *c_prev = c0 + <long> lo * H
    cdef floating *z
    cdef floating *c_t
    cdef floating *h_t
    for t in range(T):
        z = gates + (t * BGH if keep else 0) + <long> lo * GH
        c_t = c + (t if keep else t % 2) * BH + <long> lo * H
        h_t = h + t * BH + <long> lo * H
        # z(t) = x(t) W_ih^T:  (m x G*H) = (m x I)(I x G*H)
        small_mm(m, GH, I, x + (<long> t * B + lo) * I, I, 1, w_ih_p, 0, z,
                 GH, False)
        # z(t) += h(t-1) W_hh^T:  (m x G*H) = (m x H)(H x G*H)
        small_mm_blocked(m, GH, H, h_prev, H, w_hh_p, z, GH, True)
        lstm_cell_forward(m, H, forget_gate, z, bias, c_prev, c_t, h_t)
        h_prev = h_t
        c_prev = c_t


cdef void lstm_layer_forward(
        int T, int B, int I, int H, bint forget_gate, int nthreads,
        const floating *x,        # IN  (T, B, I)
        const floating *w_ih,     # IN  (G*H, I)
        const floating *w_hh,     # IN  (G*H, H)
        const floating *bias,     # IN  (G*H,)
        const floating *h0,       # IN  (B, H)
        const floating *c0,       # IN  (B, H)
        floating *gates,          # OUT (T, B, G*H) activated gates (keep),
                                  #     else (1, B, G*H)
        floating *c,              # OUT (T, B, H) (keep), else (2, B, H)
        floating *h,              # OUT (T, B, H)
        floating *work,           # WORK (forward_work): packed weights, on
                                  #   a cache line
        bint keep,                # see lstm_rows_forward
) noexcept nogil:
    """The LSTM layer forward over t = 0..T-1.

    The sequences are independent, so with nthreads > 1 each thread takes a
    chunk of rows (rows_per_chunk) and runs the whole time loop on it: no
    per-step barrier.
    """
    cdef int ch, rc
    cdef int GH = (4 if forget_gate else 3) * H
    cdef unsigned int fpenv
    cdef floating *w_hh_p = work
    cdef floating *w_ih_p = work + whole_lines(<long> GH * H, sizeof(floating))
    pack_blocked(GH, H, w_hh, 1, H, w_hh_p)     # W[k, j] = W_hh[j, k]
    pack(GH, I, w_ih, 1, I, w_ih_p)         # W[i, j] = W_ih[j, i]
    if nthreads <= 1:
        lstm_rows_forward(0, B, T, B, I, H, forget_gate, x, w_ih_p, w_hh_p,
                          bias, h0, c0, gates, c, h, keep)
        return
    rc = rows_per_chunk(B, nthreads)
    for ch in prange(n_chunks(B, rc), schedule="static",
                     chunksize=1, num_threads=nthreads):
        fpenv = cbptt_ftz_enter()
        lstm_rows_forward(ch * rc, chunk_end(ch, B, rc), T, B,
                          I, H, forget_gate, x, w_ih_p, w_hh_p, bias, h0, c0,
                          gates, c, h, keep)
        cbptt_ftz_leave(fpenv)


cdef void lstm_rows_backward(
        int lo, int hi, int T, int B, int I, int H, bint forget_gate,
        int truncate,
        const floating *w_hh_p,   # IN  W_hh packed in blocks (G*H x H)
        const floating *w_ih_p,   # IN  W_ih packed (G*H x I)
        const floating *c0,       # IN  (B, H)
        const floating *gates,    # IN  (T, B, G*H) activated gates
        const floating *c,        # IN  (T, B, H)
        const floating *h,        # IN  (T, B, H)
        const floating *grad_h,   # IN  (T, B, H) e_h(t)
        const floating *grad_c,   # IN  (T, B, H) e_c(t), or NULL
        floating *delta,          # OUT (T, B, G*H) dL/dz(t)
        floating *delta_c,        # OUT (T, B, H) dL/dc(t)
        floating *carry_h,        # OUT (m, H) the h carry during the loop,
                                  #     dh0 of the rows at the end
        floating *carry_c,        # OUT (m, H) the same for c: dc0
        floating *d_x,            # OUT (T, B, I), or NULL to skip
        const floating *x,        # IN  (T, B, I) (fused weight gradients)
        const floating *h0,       # IN  (B, H)    (fused weight gradients)
        floating *partials,       # OUT the partials of the rows' groups
                                  #     (lo a multiple of WG_GROUP), each
                                  #     ((H + I + 1) x G*H) and pstride apart,
                                  #     or NULL (weight gradients later)
        long pstride,
) noexcept nogil:
    """The reverse time loop for sequences [lo, hi). The carries are the
    rows' own (m x H) buffers: row r of the part is row r of carry_h. With
    ``partials``, the weight gradients too, summed over the steps t = T-1
    down to 0 (see WG_FUSED_MAX_BYTES)."""
    cdef int t, g0, gm, m = hi - lo
    cdef int GH = (4 if forget_gate else 3) * H
    cdef long BH = <long> B * H
    cdef long BGH = <long> B * GH
    cdef long rh = <long> lo * H
    cdef long rg = <long> lo * GH
    cdef bint carry = False
    cdef floating *d_t
    for t in range(T - 1, -1, -1):
        d_t = delta + t * BGH + rg
        lstm_cell_backward(m, H, forget_gate, carry, gates + t * BGH + rg,
                           c + t * BH + rh,
                           (c + (t - 1) * BH if t > 0 else c0) + rh,
                           h + t * BH + rh, grad_h + t * BH + rh,
                           grad_c + t * BH + rh if grad_c != NULL else NULL,
                           carry_h, carry_c, d_t, delta_c + t * BH + rh)
        if d_x != NULL:
            # dx(t) = delta(t) W_ih:  (m x I) = (m x G*H)(G*H x I)
            small_mm(m, I, GH, d_t, GH, 1, w_ih_p, 0,
                     d_x + (<long> t * B + lo) * I, I, False)
        if partials != NULL:
            g0 = lo
            while g0 < hi:
                gm = min(WG_GROUP, hi - g0)
                group_weight_grads(
                    gm, H, I, GH,
                    (h + (t - 1) * BH if t > 0 else h0) + <long> g0 * H,
                    x + (<long> t * B + g0) * I, delta + t * BGH + <long> g0 * GH,
                    partials + (g0 - lo) // WG_GROUP * pstride, t < T - 1)
                g0 += gm
        carry = carries_into(t, truncate)
        if carry or t == 0:
            # carry_h = delta(t) W_hh (dh0 at t = 0):  (m x H) = (m x G*H)(G*H x H)
            small_mm_blocked(m, H, GH, d_t, GH, w_hh_p, carry_h, H, False)


cdef inline void group_weight_grads(
        int m, int H, int I, int GH,
        const floating *hp,       # IN  (m, H) h(t-1) of the group's rows
        const floating *xt,       # IN  (m, I) x(t)
        const floating *d_t,      # IN  (m, G*H) delta(t), rows G*H apart
        floating *part,           # IN/OUT (H + I + 1, G*H) the partial
        bint more,                # add to it (else overwrite)
) noexcept nogil:
    """[dW_hh | dW_ih | db]^T (+)= [h(t-1) | x(t) | 1]^T delta(t) over the
    group's m rows of one step (db as column sums)."""
    small_mm(H, GH, m, hp, 1, H, d_t, GH, part, GH, more)
    small_mm(I, GH, m, xt, 1, I, d_t, GH, part + <long> H * GH, GH, more)
    col_sums(m, GH, d_t, GH, part + <long> (H + I) * GH, more)


cdef void weight_grads_t(
        int j0, int j1, int T, int B, int I, int Hr, int N,
        const floating *x,        # IN  (T, B, I)
        const floating *h0,       # IN  (B, Hr) (unused if Hr == 0)
        const floating *h,        # IN  (T, B, Hr) (unused if Hr == 0)
        const floating *delta,    # IN  (T, B, N) dL/dz(t)
        floating *grads_t,        # OUT (Hr + I + 1, N), columns [j0, j1)
        floating *delta_p,        # WORK (GRAD_K_BLOCK * (j1 - j0))
) noexcept nogil:
    """Columns [j0, j1) of [dW_hh | dW_ih | db]^T = [h(t-1) | x(t) | 1]^T
    delta(t) summed over every step t and sequence, for z = W_hh h(t-1) +
    W_ih x(t) + b (Hr = 0: no recurrent part, the CEC), in one order for
    every element.

    The sum over the T*B rows runs in blocks of GRAD_K_BLOCK rows (the first
    B rows take h0 for h(t-1)); the block's columns [j0, j1) of delta are
    packed once (above PACK_MIN_BYTES a row) and every row of the result
    passes over them.
    """
    cdef long TB = <long> T * B
    cdef long k0 = 0, kend
    cdef int kc, n = j1 - j0
    cdef floating one = 1
    cdef const floating *hp
    cdef const floating *dp
    cdef long ldd
    cdef floating *out = grads_t + j0
    cdef bint more
    while k0 < TB:
        kend = min(k0 + GRAD_K_BLOCK, B if k0 < B else TB)
        kc = <int> (kend - k0)
        more = k0 > 0
        # the block of delta: (kc x n), packed when that pays
        if n * sizeof(floating) > PACK_MIN_BYTES:
            pack(n, kc, delta + k0 * N + j0, N, 1, delta_p)
            dp = delta_p
            ldd = 0
        else:
            dp = delta + k0 * N + j0
            ldd = N
        if Hr > 0:
            # dW_hh^T (+)= h(t-1)^T delta:  (Hr x n) = (Hr x kc)(kc x n)
            hp = h0 + k0 * Hr if k0 < B else h + (k0 - B) * Hr
            small_mm(Hr, n, kc, hp, 1, Hr, dp, ldd, out, N, more)
        # dW_ih^T (+)= x^T delta:  (I x n) = (I x kc)(kc x n)
        small_mm(I, n, kc, x + k0 * I, 1, I, dp, ldd,
                 out + <long> Hr * N, N, more)
        # db (+)= 1^T delta:  (1 x n) = (1 x kc)(kc x n)
        small_mm(1, n, kc, &one, 0, 0, dp, ldd,
                 out + <long> (Hr + I) * N, N, more)
        k0 = kend


cdef void lstm_layer_backward(
        int T, int B, int I, int H, bint forget_gate, int truncate,
        int nthreads,
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
        floating *work,           # WORK (backward_work), on a cache line
        floating *carries,        # WORK (nthreads > 1) 2 carry_stride per
                                  #   chunk, page-aligned (carry_stride)
        floating *partials,       # WORK (fused_weight_grads) one
                                  #   partial_stride per WG_GROUP rows of
                                  #   the batch, page-aligned; else NULL
) noexcept nogil:
    """Exact (optionally windowed) BPTT through the LSTM layer.

    The recursion runs per chunk of sequences (taken by nthreads, no
    per-step barrier); the weight gradients are then all-steps products,
    split by columns. No result depends on nthreads.
    """
    cdef int ch, rc
    cdef int GH = (4 if forget_gate else 3) * H
    cdef int M = H + I + 1
    cdef int part = grad_part(GH, nthreads)
    cdef unsigned int fpenv
    # each part from a cache line (backward_work)
    cdef floating *w_hh_p = work
    cdef floating *w_ih_p = w_hh_p + whole_lines(<long> GH * H,
                                                 sizeof(floating))
    cdef floating *grads_t = w_ih_p + whole_lines(<long> GH * I,
                                                  sizeof(floating))
    cdef floating *delta_p = grads_t + whole_lines(<long> M * GH,
                                                   sizeof(floating))
    pack_blocked(H, GH, w_hh, H, 1, w_hh_p)     # W[k, j] = W_hh[k, j]
    pack(I, GH, w_ih, I, 1, w_ih_p)         # W[k, i] = W_ih[k, i]
    cdef long cs
    cdef long ps = partial_stride(GH, H, I, sizeof(floating))
    cdef floating *ch_h
    cdef floating *ch_c
    if nthreads <= 1:
        lstm_rows_backward(0, B, T, B, I, H, forget_gate, truncate, w_hh_p,
                           w_ih_p, c0, gates, c, h, grad_h, grad_c, delta,
                           delta_c, d_h0, d_c0, d_x, x, h0, partials, ps)
        if partials == NULL:
            weight_grads_t(0, GH, T, B, I, H, GH, x, h0, h, delta, grads_t,
                           delta_p)
    else:
        rc = rows_per_chunk(B, nthreads)
        if partials != NULL:        # chunks of whole groups
            rc = (rc + WG_GROUP - 1) // WG_GROUP * WG_GROUP
        cs = carry_stride(rc, H, sizeof(floating))
        # each chunk carries its errors in its own pages, copied to dh0 and
        # dc0 at the end: carries that two threads update every step in one
        # page (rows of one (B, H) array) cost 1.4x the loop at H = 16
        for ch in prange(n_chunks(B, rc), schedule="static",
                         chunksize=1, num_threads=nthreads):
            fpenv = cbptt_ftz_enter()
            ch_h = carries + 2 * ch * cs
            ch_c = ch_h + cs
            lstm_rows_backward(ch * rc, chunk_end(ch, B, rc), T,
                               B, I, H, forget_gate, truncate, w_hh_p, w_ih_p,
                               c0, gates, c, h, grad_h, grad_c, delta,
                               delta_c, ch_h, ch_c, d_x, x, h0,
                               partials + ch * rc // WG_GROUP * ps
                               if partials != NULL else NULL, ps)
            memcpy(d_h0 + <long> ch * rc * H, ch_h,
                   (chunk_end(ch, B, rc) - ch * rc) * H * sizeof(floating))
            memcpy(d_c0 + <long> ch * rc * H, ch_c,
                   (chunk_end(ch, B, rc) - ch * rc) * H * sizeof(floating))
            cbptt_ftz_leave(fpenv)
        # columns of the result in parts (grad_part), taken dynamically
        for ch in prange(n_chunks(GH, part) if partials == NULL else 0,
                         schedule="dynamic", chunksize=1,
                         num_threads=nthreads):
            fpenv = cbptt_ftz_enter()
            weight_grads_t(ch * part, chunk_end(ch, GH, part),
                           T, B, I, H, GH, x, h0, h, delta, grads_t,
                           delta_p + <long> threadid() * GRAD_K_BLOCK * part)
            cbptt_ftz_leave(fpenv)
    if partials != NULL:
        add_partials(<long> M * GH, n_chunks(B, WG_GROUP), ps, partials,
                     grads_t)
    transpose_into(GH, H, grads_t, d_w_hh)
    transpose_into(GH, I, grads_t + <long> H * GH, d_w_ih)
    memcpy(d_bias, grads_t + <long> (H + I) * GH, GH * sizeof(floating))


cdef void transpose_into(int n, int m, const floating *a,
                         floating *out) noexcept nogil:
    """out (n x m) = a^T, a (m x n) row-major with row stride n; in 8 x 8
    blocks so that both sides stay in cache lines."""
    cdef int i0, j0, i, j, i1, j1
    for i0 in range(0, m, 8):
        i1 = min(i0 + 8, m)
        for j0 in range(0, n, 8):
            j1 = min(j0 + 8, n)
            for j in range(j0, j1):
                for i in range(i0, i1):
                    out[<long> j * m + i] = a[<long> i * n + j]


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
        floating *work,           # WORK (H * I): W_ih^T packed
) noexcept nogil:
    """s(t) = s(t-1) + W_ih x(t) + b for t = 0..T-1."""
    cdef int t, b, j
    cdef long BH = <long> B * H
    cdef const floating *s_prev = h0
    cdef floating *s
    pack(H, I, w_ih, 1, I, work)            # W[i, j] = W_ih[j, i]
    # W_ih x for every step at once:  (T*B x H) = (T*B x I)(I x H)
    small_mm(T * B, H, I, x, I, 1, work, 0, h, H, False)
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
        floating *work,           # WORK (H * (2 I + 1 + GRAD_K_BLOCK))
) noexcept nogil:
    """delta(t) = e(t) + delta(t+1): the carousel, windowed by truncate."""
    cdef int t
    cdef long k, BH = <long> B * H
    cdef floating *d
    cdef const floating *g
    cdef floating *w_ih_p = work
    cdef floating *grads_t = w_ih_p + <long> H * I
    cdef floating *delta_p = grads_t + <long> (I + 1) * H
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
    # [dW_ih | db]^T = [x | 1]^T delta over all steps
    weight_grads_t(0, H, T, B, I, 0, H, x, NULL, NULL, delta, grads_t,
                   delta_p)
    transpose_into(H, I, grads_t, d_w_ih)
    memcpy(d_bias, grads_t + <long> I * H, H * sizeof(floating))
    if d_x != NULL:
        # dx = delta W_ih:  (T*B x I) = (T*B x H)(H x I)
        pack(I, H, w_ih, I, 1, w_ih_p)      # W[k, i] = W_ih[k, i]
        small_mm(T * B, I, H, delta, H, 1, w_ih_p, 0, d_x, I, False)


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


def _limit_simd_level(int level):
    """Test twin: run the LSTM kernels at most at SIMD ``level`` (2 AVX-512,
    1 AVX2+FMA, 0 baseline); 99 restores the best. Returns the level used."""
    return cbptt_isa_limit(level)


from cbptt._simd cimport cbptt_isa


def simd_level():
    """The instruction set the LSTM kernels use: 2 AVX-512, 1 AVX2+FMA, 0
    baseline."""
    return cbptt_isa()


def threads_used(int T, int B, int H, bint forget_gate=True, int itemsize=4):
    """How many threads the LSTM kernels use for B sequences of T steps and
    H units (float32 for ``itemsize`` 4, float64 for 8)."""
    return threads_for(T, B, (4 if forget_gate else 3) * H, H, itemsize)


cdef int lstm_forward_run(int T, int B, int I, int H, bint forget_gate,
                          bint keep, const floating *x,
                          const floating *w_ih, const floating *w_hh,
                          const floating *bias, const floating *h0,
                          const floating *c0, floating *gates, floating *c,
                          floating *h) except -1:
    """Allocate the workspace (from a cache line: LINE_BYTES more to find
    it) and run the forward kernel on checked arrays, without the GIL."""
    cdef int GH = (4 if forget_gate else 3) * H
    cdef unsigned int fpenv
    work = np.empty(whole_lines(<long> GH * H, sizeof(floating))
                    + <long> GH * I + LINE_BYTES // sizeof(floating),
                    np.float32 if floating is float else np.float64)
    cdef floating *wp = line_start(<floating *> data_of(work))
    cdef int nthreads = threads_for(T, B, GH, H, sizeof(floating))
    with nogil:
        fpenv = cbptt_ftz_enter()
        lstm_layer_forward(T, B, I, H, forget_gate, nthreads, x, w_ih, w_hh,
                           bias, h0, c0, gates, c, h, wp, keep)
        cbptt_ftz_leave(fpenv)
    return 0


cdef int lstm_backward_run(
        int T, int B, int I, int H, bint forget_gate, int truncate,
        const floating *x, const floating *w_ih, const floating *w_hh,
        const floating *h0, const floating *c0, const floating *gates,
        const floating *c, const floating *h, const floating *grad_h,
        const floating *grad_c, floating *delta, floating *delta_c,
        floating *d_w_ih, floating *d_w_hh, floating *d_bias,
        floating *d_h0, floating *d_c0, floating *d_x) except -1:
    """Allocate the workspace (from a cache line; the carries and partials
    from a page) and run the backward kernel on checked arrays, without the
    GIL. ``grad_c`` and ``d_x`` may be NULL."""
    cdef int GH = (4 if forget_gate else 3) * H
    cdef unsigned int fpenv
    cdef int nthreads = threads_for(T, B, GH, H, sizeof(floating))
    # the workspace from a cache line (LINE_BYTES more to find it)
    cdef long n_work = (backward_work(GH, H, I, nthreads, sizeof(floating))
                        + LINE_BYTES // sizeof(floating))
    cdef long n_carry = 0, n_part = 0
    cdef int rc
    cdef bint fused = fused_weight_grads(GH, H, I, sizeof(floating))
    cdef floating *carries = NULL
    cdef floating *partials = NULL
    if nthreads > 1:
        rc = rows_per_chunk(B, nthreads)
        if fused:
            rc = (rc + WG_GROUP - 1) // WG_GROUP * WG_GROUP
        n_carry = 2 * n_chunks(B, rc) * carry_stride(rc, H, sizeof(floating))
    if fused:
        n_part = n_chunks(B, WG_GROUP) * partial_stride(GH, H, I,
                                                         sizeof(floating))
    # the carries and partials start on a page boundary (PAGE_BYTES more to
    # find it)
    work = np.empty(n_work + n_carry + n_part + PAGE_BYTES // sizeof(floating),
                    np.float32 if floating is float else np.float64)
    cdef floating *w = <floating *> data_of(work)
    cdef floating *paged = page_start(w + n_work)
    if n_carry:
        carries = paged
    if fused:
        partials = paged + n_carry
    with nogil:
        fpenv = cbptt_ftz_enter()
        lstm_layer_backward(T, B, I, H, forget_gate, truncate, nthreads, x,
                            w_ih, w_hh, h0, c0, gates, c, h, grad_h, grad_c,
                            delta, delta_c, d_w_ih, d_w_hh, d_bias, d_h0,
                            d_c0, d_x, line_start(w), carries, partials)
        cbptt_ftz_leave(fpenv)
    return 0


def lstm_forward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[::1] bias,
                 const floating[:, ::1] h0, const floating[:, ::1] c0,
                 bint forget_gate, floating[:, :, ::1] gates,
                 floating[:, :, ::1] c, floating[:, :, ::1] h):
    """Run the LSTM forward kernel on time-major arrays (fills gates, c, h).

    ``gates (1, B, G*H)`` with ``c (2, B, H)`` (T >= 2) asks for a forward
    that will not be differentiated: only the last step's gates are kept,
    and c(t) in slot t % 2 (so c(T-1) in slot (T-1) % 2)."""
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
    s[4] = _span(&w_ih[0, 0], GH * I * n)
    s[5] = _span(&w_hh[0, 0], GH * H * n)
    s[6] = _span(&bias[0], GH * n)
    s[7] = _span(&h0[0, 0], B * H * n)
    s[8] = _span(&c0[0, 0], B * H * n)
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
    lstm_backward_run(T, B, I, H, forget_gate, truncate, &x[0, 0, 0],
                      &w_ih[0, 0], &w_hh[0, 0], &h0[0, 0], &c0[0, 0],
                      &gates[0, 0, 0], &c[0, 0, 0], &h[0, 0, 0],
                      &grad_h[0, 0, 0], p_grad_c, &delta[0, 0, 0],
                      &delta_c[0, 0, 0], &d_w_ih[0, 0], &d_w_hh[0, 0],
                      &d_bias[0], &d_h0[0, 0], &d_c0[0, 0], p_d_x)


cdef object setflags = np.ndarray.setflags   # (a, False): read-only


def forward_fast(x, w_ih, w_hh, bias, bint batch_first, bint forget_gate,
                 bint cache):
    """``lstm_forward``'s common case in one compiled call, or None.

    The common case: the arrays are ``forward_inputs``' common case
    (``cbptt._scan``), h0 and c0 are None (the caller's) and the
    pre-activation bound is within range. Then returns ``(x_tm, w_ih, w_hh,
    bias, h0, c0, gates, c, h)``: the private read-only copies, read-only
    zeros for h0 and c0 and the read-only time-major outputs (without
    ``cache``, T >= 2: the last step's gates and c(T-1) only, as
    ``lstm_forward`` keeps them). Anything else: None, nothing is raised,
    and the caller's checked path gives the precise error. The same results
    as that path, which runs the same kernel on the same copies.
    """
    cdef int G = 4 if forget_gate else 3
    fast = forward_inputs(x, batch_first, G, w_ih, w_hh, bias, None, None)
    if fast is None:
        return None
    x_tm, x_max, w, u, b = fast[0], fast[1], fast[2], fast[3], fast[4]
    cdef int T = x_tm.shape[0], B = x_tm.shape[1], I = x_tm.shape[2]
    cdef int GH = b.shape[0]
    cdef int H = GH // G
    dtype = x_tm.dtype
    # |h| <= 1 for every state entering a step (h0 = 0, then o tanh(c))
    worst = preact_bound_or_none(b, w, x_max, u, np.ones(H))
    if worst is None or not worst <= (FLT_MAX / 4 if dtype.itemsize == 4
                                      else DBL_MAX / 4):
        return None
    h0 = np.zeros((B, H), dtype)
    c0 = np.zeros((B, H), dtype)
    cdef bint keep = cache or T == 1
    gates = aligned_empty((T if keep else 1, B, GH), dtype)
    c = aligned_empty((T if keep else 2, B, H), dtype)
    h = aligned_empty((T, B, H), dtype)
    cdef void *p[9]
    for k, a in enumerate((x_tm, w, u, b, h0, c0, gates, c, h)):
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
    for a in (h0, c0, gates, c, h):
        setflags(a, False)
    return x_tm, w, u, b, h0, c0, gates, c, h


def grad_arrays(int T, int B, int I, int H, int GH, dtype, bint input_grad):
    """The backward pass's fresh outputs ``(delta (T, B, G*H), delta_c (T, B,
    H), d_w_ih, d_w_hh, d_b, d_h0, d_c0, d_x (T, B, I) or None)``, the
    per-step ones on a cache line."""
    return (aligned_empty((T, B, GH), dtype), aligned_empty((T, B, H), dtype),
            np.empty((GH, I), dtype), np.empty((GH, H), dtype),
            np.empty(GH, dtype), np.empty((B, H), dtype),
            np.empty((B, H), dtype),
            aligned_empty((T, B, I), dtype) if input_grad else None)


def backward_fast(x_tm, w_ih, w_hh, h0, c0, gates_tm, c_tm, h_tm, g,
                  bint batch_first, bint forget_gate, int truncate,
                  bint input_grad):
    """``lstm_backward``'s common case (no ``grad_c``) in one compiled call,
    or None.

    ``x_tm`` .. ``h_tm`` are a forward result's private arrays (with the
    whole cache); the common case: ``g`` as ``grad_input``'s
    (``cbptt._scan``), whose values are not scanned first: a non-finite one
    makes its step's ``delta_o`` and so ``db`` (the sum of every ``delta``)
    non-finite, which the check of the results catches. Returns ``(delta,
    delta_c, d_w_ih, d_w_hh, d_b, d_h0, d_c0, d_x)`` (time-major, ``d_x``
    None unless ``input_grad``) when every gradient is finite. Anything
    else: None, nothing is raised, and the caller's checked path (which
    runs the kernel again) gives the precise error.
    """
    cdef int d[4]
    cdef int s = result_dims(x_tm, h_tm, d)
    if s == 0:
        return None
    cdef int T = d[0], B = d[1], H = d[2], I = d[3]
    cdef int GH = (4 if forget_gate else 3) * H
    dtype = h_tm.dtype
    # the inputs' pointers, checked: a result whose arrays disagree (e.g.
    # built by hand) takes the checked path, which refuses it
    cdef void *p[17]
    p[0] = data_if(x_tm, s, T, B, I)
    p[1] = data_if(w_ih, s, GH, I)
    p[2] = data_if(w_hh, s, GH, H)
    p[3] = data_if(h0, s, B, H)
    p[4] = data_if(c0, s, B, H)
    p[5] = data_if(gates_tm, s, T, B, GH)
    p[6] = data_if(c_tm, s, T, B, H)
    p[7] = data_if(h_tm, s, T, B, H)
    if (p[0] == NULL or p[1] == NULL or p[2] == NULL or p[3] == NULL
            or p[4] == NULL or p[5] == NULL or p[6] == NULL or p[7] == NULL
           ):
        return None
    g_tm = grad_input(g, batch_first, T, B, H, s, False)
    if g_tm is None:
        return None
    delta, delta_c, d_w_ih, d_w_hh, d_b, d_h0, d_c0, d_x = grad_arrays(
        T, B, I, H, GH, dtype, input_grad)
    for k, a in enumerate((g_tm, delta, delta_c, d_w_ih, d_w_hh, d_b, d_h0,
                           d_c0)):
        p[8 + k] = data_of(a)
    p[16] = data_of(d_x) if input_grad else NULL
    if s == 4:
        lstm_backward_run[float](
            T, B, I, H, forget_gate, truncate, <float *> p[0],
            <float *> p[1], <float *> p[2], <float *> p[3], <float *> p[4],
            <float *> p[5], <float *> p[6], <float *> p[7], <float *> p[8],
            NULL, <float *> p[9], <float *> p[10], <float *> p[11],
            <float *> p[12], <float *> p[13], <float *> p[14],
            <float *> p[15], <float *> p[16])
    else:
        lstm_backward_run[double](
            T, B, I, H, forget_gate, truncate, <double *> p[0],
            <double *> p[1], <double *> p[2], <double *> p[3],
            <double *> p[4], <double *> p[5], <double *> p[6],
            <double *> p[7], <double *> p[8], NULL, <double *> p[9],
            <double *> p[10], <double *> p[11], <double *> p[12],
            <double *> p[13], <double *> p[14], <double *> p[15],
            <double *> p[16])
    if not all_finite_arrays((d_b, d_w_ih, d_w_hh, d_h0, d_c0, d_x)):
        return None
    return delta, delta_c, d_w_ih, d_w_hh, d_b, d_h0, d_c0, d_x


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
    cdef floating[::1] work = np.empty(<long> H * I + LINE_BYTES
                                       // sizeof(floating), np.asarray(h).dtype)
    with nogil:
        fpenv = cbptt_ftz_enter()
        cec_layer_forward(T, B, I, H, &x[0, 0, 0], &w_ih[0, 0], &bias[0],
                          &h0[0, 0], &h[0, 0, 0], line_start(&work[0]))
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
    cdef floating[::1] work = np.empty(
        <long> H * (2 * I + 1 + GRAD_K_BLOCK) + LINE_BYTES // sizeof(floating),
        np.asarray(delta).dtype)
    with nogil:
        fpenv = cbptt_ftz_enter()
        cec_layer_backward(T, B, I, H, truncate, &x[0, 0, 0], &w_ih[0, 0],
                           &grad_h[0, 0, 0], &delta[0, 0, 0], &d_w_ih[0, 0],
                           &d_bias[0], &d_h0[0, 0], p_d_x,
                           line_start(&work[0]))
        cbptt_ftz_leave(fpenv)


def _set_parallel_min_work(long work_f, long work_d):
    """Benchmark twin: the work of a call (T * B * G*H * H) from which the
    kernels use threads, for float32 and float64; returns the previous pair."""
    global PARALLEL_MIN_WORK_F, PARALLEL_MIN_WORK_D
    old = PARALLEL_MIN_WORK_F, PARALLEL_MIN_WORK_D
    PARALLEL_MIN_WORK_F, PARALLEL_MIN_WORK_D = work_f, work_d
    return old
