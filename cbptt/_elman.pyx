"""Compiled Elman (simple recurrent) layer: forward pass and exact BPTT.

Design contract
---------------
* Layout. Every per-step array is time-major and C-contiguous, ``(T, B, .)``:
  step ``t`` of a mini-batch is one contiguous ``(B x .)`` block, and the
  all-steps products run over ``T*B`` rows. The public API
  (``cbptt.functional``) is batch-first and converts at the boundary.
* Products. Every product is a register-tiled loop of ``src/cbptt_simd.h``
  (AVX-512, AVX2+FMA or baseline, chosen at run time), not BLAS: per step
  ``(B x H)(H x H)`` costs less than a BLAS call's overhead at H <= 64.
  The weight gradients are summed inside the backward time loop, per group
  of WG_GROUP sequences, from H = 32 up to WG_FUSED_MAX_BYTES; otherwise
  they are all-steps products after it in L1-sized chunks (32 rows or more,
  see grad_k_block), as fast as BLAS at H = 256. The weights are packed once
  per call, the recurrent
  ones in row blocks of 128 whose panels stay in L1 in the per-step products.
  The input projection ``x(t) W_ih^T`` of every step is one product before
  the time loop (as in PyTorch's RNN.cpp), so a step does only the recurrent
  product and the activation.
* Threads. Sequences are independent, so with ``nthreads > 1`` (OpenMP, when
  the per-step work pays for it, see ``threads_for``) each thread runs the
  whole time loop on its share of the batch (whole groups when the weight
  gradients are summed in the loop): no per-step barrier. Otherwise the
  weight gradients are then split by output rows. Every element is computed
  by the same operations in the same order whatever the split, so results
  are bitwise identical for any thread count.
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
  flush-to-zero/denormals-are-zero set in every thread (restored on exit).
  The ``def`` wrappers check shapes and allocate the packed-weight workspace
  before the GIL is released.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.float cimport DBL_MAX, FLT_MAX
from libc.string cimport memcpy

import numpy as np

from cbptt._scan import (aligned_empty, all_finite_arrays, forward_inputs,
                         grad_input, preact_bound_or_none)
from cbptt._validation import check_kernel_sizes

from cbptt._kernels cimport cbptt_ftz_enter, cbptt_ftz_leave
from cbptt._scan cimport data_if, data_of, result_dims
from cbptt._simd cimport cbptt_fork_guard
from cbptt._simd cimport (cbptt_isa, cbptt_isa_limit, cbptt_max_threads,
                          pack, small_mm, pack_blocked, small_mm_blocked,
                          col_sums, PAGE_BYTES, whole_pages, page_start,
                          LINE_BYTES, whole_lines, line_start, add_partials,
                          cbptt_bias_act_rows_f, cbptt_bias_act_rows_d,
                          cbptt_delta_rows_f, cbptt_delta_rows_d)

# A process forked from this one runs the kernels on one thread (see
# cbptt_fork_guard in src/cbptt_fpenv.h: GNU OpenMP is not fork-safe).
cbptt_fork_guard()

# Below this much per-step work (B * H * H multiply-adds) a second thread
# costs more than it saves. Measured on the 2-CPU machine of BENCHMARKS.md
# (B = 32, T = 100, page-aligned arrays, the weight gradients summed in the
# time loop), two threads over one, kernels called back to back: float32
# forward 1.16x and backward 1.36x at H = 16, 1.29x and 1.54x at H = 32;
# float64 1.17x and 1.31x at H = 16, 1.36x and 1.97x at H = 32. But in a
# training epoch, where Python runs between the calls (the benchmark's
# head and update), H = 16 came out 0.83-1.13x: the second thread's
# wake-up and the interference are worth as much as the 50 us it saves.
cdef long PARALLEL_MIN_WORK_F = 32 * 32 * 32
cdef long PARALLEL_MIN_WORK_D = 32 * 32 * 32
# With threads, each takes an equal part of the batch (at least ROW_CHUNK
# sequences each) and then an equal part of the weight-gradient rows.
cdef int ROW_CHUNK = 8


cdef inline int batch_split(int c, int B, int n) noexcept nogil:
    """First sequence of the batch's part c of n (c = n gives B): as equal
    as can be. One part per thread: each runs its time loop with as many
    rows per product as it can (measured at B = 32, H = 64: parts of 16 rows
    gave 1.5x over one thread, parts of 8 taken dynamically 1.35x)."""
    return <int> ((<long> B * c) // n)


cdef inline int grad_split(int c, int H, int I, int n) noexcept nogil:
    """First row of dW_hh in the weight-gradient part c of n (c = n gives
    H). Part 0 also computes dW_ih and db, about I + 1 rows' worth, so it
    gets that many fewer rows (a multiple of 4, the tile height); the rest
    share the others. One part per thread: each part streams every h(t-1)
    through L2 once (parts of 8 rows took 1.27x longer at H = 64)."""
    cdef int r0, rest
    if c <= 0:
        return 0
    r0 = ((H + I) // n - I) // 4 * 4
    r0 = 0 if r0 < 0 else (H if r0 > H else r0)
    if c >= n or n < 2:
        return H if c >= n else r0
    rest = ((H - r0 + n - 2) // (n - 1) + 3) // 4 * 4
    return min(H, r0 + (c - 1) * rest)


# A layer whose [dW_hh | dW_ih | db]^T is at most this many bytes sums its
# weight gradients inside the backward time loop, while delta(t) and h(t-1)
# are in L1, as one partial per group of WG_GROUP rows of the batch, added
# in group order at the end (as the LSTM does, see _lstm.pyx): the groups do
# not depend on the thread count, so neither do the results, and each thread
# sums the rows it computed.
cdef int WG_FUSED_MAX_BYTES = 384 * 1024
cdef int WG_GROUP = 16


cdef inline bint fused_weight_grads(int H, int I, int itemsize) noexcept nogil:
    """Whether the weight gradients are summed inside the time loop: a
    property of the layer, never of the threads. Not below H = 32, where
    the layer runs on one thread (PARALLEL_MIN_WORK at B = 32): there the
    per-step calls of the groups cost more than the all-steps product
    (measured at H = 16, one thread: 0.89x float32, 0.97x float64); from
    H = 32 they pay on two threads (float32 H = 64: 1.24x backward)."""
    return H >= 32 and <long> (H + I + 1) * H * itemsize <= WG_FUSED_MAX_BYTES


cdef inline long partial_stride(int H, int I, int itemsize) noexcept nogil:
    """Elements per group partial: (H + I + 1) * H rounded up to pages."""
    return whole_pages(<long> (H + I + 1) * H, itemsize)


cdef inline int group_split(int c, int B, int n) noexcept nogil:
    """First sequence of part c of n when parts are whole groups of
    WG_GROUP rows (c = n gives B)."""
    cdef int groups = (B + WG_GROUP - 1) // WG_GROUP
    return min(B, <int> ((<long> groups * c) // n) * WG_GROUP)


# Rows of the all-steps sums per pass of the weight-gradient products: the
# chunks of delta and h (32 rows of H <= 256) stay in L1 (measured: 32 is as
# fast as BLAS at H = 256 and faster below).
cdef int GRAD_K_BLOCK = 32


cdef inline long grad_k_block(int H, int itemsize) noexcept nogil:
    """Rows per pass: at least GRAD_K_BLOCK, more for small layers (16 KiB
    of each of delta and h, so both stay in L1: 256 rows at H = 16 in
    float32), which then make fewer, longer product calls (measured at
    H = 16, float32 backward: 1.12x). Each output element still gets its
    multiply-adds in increasing k (the same bits for any block size but for
    db's partial sums, which follow the chunks: a property of the layer)."""
    return max(GRAD_K_BLOCK, 16384 // (H * itemsize))


cdef inline long forward_work(int H, int I, int itemsize) noexcept nogil:
    """Elements of the forward kernel's workspace: W_hh and W_ih packed,
    each from a cache line."""
    return whole_lines(<long> H * H, itemsize) + whole_lines(<long> H * I,
                                                              itemsize)


cdef inline long backward_work(int H, int I, int itemsize,
                               bint fused) noexcept nogil:
    """Elements of the backward kernel's workspace (without the partials):
    W_hh and W_ih packed, then dW_ih^T, or with the weight gradients summed
    in the loop [dW_hh | dW_ih | db]^T, each from a cache line."""
    return forward_work(H, I, itemsize) + <long> (H + I + 1 if fused
                                                   else I) * H


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


cdef int threads_for(int B, int H, int itemsize) noexcept nogil:
    """Threads for a layer of B sequences: 1, or the OpenMP limit when the
    per-step work pays for it (in floats of ``itemsize`` bytes), at most one
    per ROW_CHUNK sequences."""
    cdef int n = min(cbptt_max_threads(), B // ROW_CHUNK)
    cdef long least = PARALLEL_MIN_WORK_F if itemsize == 4 else PARALLEL_MIN_WORK_D
    if <long> B * H * H < least or n < 2:
        return 1
    return n


cdef void elman_rows_forward(
        int lo, int hi, int T, int B, int I, int H, int act,
        const floating *x,       # IN  (T, B, I)
        const floating *w_ih_p,  # IN  W_ih^T packed (cbptt_pack)
        const floating *w_hh_p,  # IN  W_hh^T packed in row blocks (pack_blocked)
        const floating *bias,    # IN  (H,)
        const floating *h0,      # IN  (B, H)
        floating *h,             # OUT (T, B, H)
) noexcept nogil:
    """The time loop for sequences [lo, hi): the cell step once per t."""
    cdef int t, m = hi - lo
    cdef long BH = <long> B * H
    cdef const floating *h_prev = h0 + <long> lo * H
    cdef floating *h_t
    # net(t) = x(t) W_ih^T for every step first, off the recurrence's
    # critical path: (T*m x H) = (T*m x I)(I x H), one product when the rows
    # are the whole batch (contiguous over t), else one per step
    if m == B:
        small_mm(T * B, H, I, x, I, 1, w_ih_p, 0, h, H, False)
    else:
        for t in range(T):
            small_mm(m, H, I, x + (<long> t * B + lo) * I, I, 1, w_ih_p, 0,
                     h + t * BH + <long> lo * H, H, False)
    for t in range(T):
        h_t = h + t * BH + <long> lo * H
        # net(t) += h(t-1) W_hh^T:  (m x H) = (m x H)(H x H), in row blocks
        # of W_hh^T that stay in L1
        small_mm_blocked(m, H, H, h_prev, H, w_hh_p, h_t, H, True)
        # h(t) = f(net(t) + b)
        bias_activate_rows(act, m, H, h_t, bias)
        h_prev = h_t


cdef void elman_layer_forward(
        int T, int B, int I, int H, int act, int nthreads,
        const floating *x,       # IN  (T, B, I)
        const floating *w_ih,    # IN  (H, I)
        const floating *w_hh,    # IN  (H, H)
        const floating *bias,    # IN  (H,)
        const floating *h0,      # IN  (B, H)
        floating *h,             # OUT (T, B, H)
        floating *work,          # WORK (forward_work): packed weights, on a
                                 #   cache line
) noexcept nogil:
    """h(t) = f(W_ih x(t) + W_hh h(t-1) + b) for t = 0..T-1.

    The sequences are independent, so with nthreads > 1 each thread takes
    its part of the batch and runs the whole time loop on it: no per-step
    barrier.
    """
    cdef int c
    cdef unsigned int fpenv
    cdef floating *w_hh_p = work
    cdef floating *w_ih_p = work + whole_lines(<long> H * H, sizeof(floating))
    pack_blocked(H, H, w_hh, 1, H, w_hh_p)  # W[k, j] = W_hh[j, k]
    pack(H, I, w_ih, 1, I, w_ih_p)          # W[i, j] = W_ih[j, i]
    if nthreads <= 1:
        elman_rows_forward(0, B, T, B, I, H, act, x, w_ih_p, w_hh_p, bias, h0,
                           h)
        return
    for c in prange(nthreads, schedule="static", chunksize=1,
                    num_threads=nthreads):
        fpenv = cbptt_ftz_enter()
        elman_rows_forward(batch_split(c, B, nthreads),
                           batch_split(c + 1, B, nthreads), T, B, I,
                           H, act, x, w_ih_p, w_hh_p, bias, h0, h)
        cbptt_ftz_leave(fpenv)


cdef void elman_rows_backward(
        int lo, int hi, int T, int B, int I, int H, int act, int truncate,
        const floating *w_hh_p,  # IN  W_hh packed in row blocks (pack_blocked)
        const floating *w_ih_p,  # IN  W_ih packed
        const floating *h,       # IN  (T, B, H) forward outputs
        const floating *grad_h,  # IN  (T, B, H)
        floating *delta,         # OUT (T, B, H)
        floating *d_x,           # OUT (T, B, I), or NULL to skip
        const floating *x,       # IN  (T, B, I) (fused weight gradients)
        const floating *h0,      # IN  (B, H)    (fused weight gradients)
        floating *partials,      # OUT the partials of the rows' groups (lo
                                 #     a multiple of WG_GROUP), each
                                 #     ((H + I + 1) x H) and pstride apart,
                                 #     or NULL (weight gradients later)
        long pstride,
) noexcept nogil:
    """The reverse time loop for sequences [lo, hi); with ``partials``, the
    weight gradients too, summed over t = T-1 down to 0."""
    cdef int t, g0, gm
    cdef long off, BH = <long> B * H
    cdef bint has_carry = False
    cdef floating *part
    cdef const floating *hp
    for t in range(T - 1, -1, -1):
        off = t * BH + <long> lo * H
        if has_carry:
            # carry = delta(t+1) W_hh:  (m x H) = (m x H)(H x H), into delta(t)
            small_mm_blocked(hi - lo, H, H, delta + off + BH, H, w_hh_p,
                             delta + off, H, False)
        # delta(t) = f'(net(t)) * (grad_h(t) + carry)
        delta_rows(act, <long> (hi - lo) * H, delta + off, h + off,
                   grad_h + off, has_carry)
        # dx(t) = delta(t) W_ih:  (m x I) = (m x H)(H x I)
        if d_x != NULL:
            small_mm(hi - lo, I, H, delta + off, H, 1, w_ih_p, 0,
                     d_x + (<long> t * B + lo) * I, I, False)
        # [dW_hh | dW_ih | db]^T (+)= [h(t-1) | x(t) | 1]^T delta(t) per group
        if partials != NULL:
            g0 = lo
            while g0 < hi:
                gm = min(WG_GROUP, hi - g0)
                part = partials + (g0 - lo) // WG_GROUP * pstride
                hp = (h + (t - 1) * BH if t > 0 else h0) + <long> g0 * H
                small_mm(H, H, gm, hp, 1, H, delta + t * BH + <long> g0 * H,
                         H, part, H, t < T - 1)
                small_mm(I, H, gm, x + (<long> t * B + g0) * I, 1, I,
                         delta + t * BH + <long> g0 * H, H,
                         part + <long> H * H, H, t < T - 1)
                col_sums(gm, H, delta + t * BH + <long> g0 * H, H,
                         part + <long> (H + I) * H, t < T - 1)
                g0 += gm
        # the next step down gets a carry unless t starts a window
        has_carry = t > 0 and (truncate <= 0 or t % truncate != 0)


cdef void elman_weight_grads(
        int lo, int hi, int T, int B, int I, int H,
        const floating *x,       # IN  (T, B, I)
        const floating *h0,      # IN  (B, H)
        const floating *h,       # IN  (T, B, H)
        const floating *delta,   # IN  (T, B, H)
        floating *d_w_hh,        # OUT (H, H), rows [lo, hi)
        floating *d_w_ih_t,      # OUT (I, H) dW_ih^T (when first)
        floating *d_bias,        # OUT (H,) (when first)
        bint first,
) noexcept nogil:
    """Rows [lo, hi) of dW_hh (and all of dW_ih^T and db when first), each
    an all-steps product whose every element sums over t and b in one order."""
    cdef long BH = <long> B * H
    cdef long k0, kc
    # dW_hh = delta(0)^T h0 + delta(1:)^T h(:-1):
    #   (m x H) = (m x B)(B x H) + (m x (T-1)B)((T-1)B x H), A = delta^T,
    # the long sum in chunks of GRAD_K_BLOCK rows so that the chunk of h
    # stays in L1 while every row block of dW_hh passes over it
    small_mm(hi - lo, H, B, delta + lo, 1, H, h0, H,
             d_w_hh + <long> lo * H, H, False)
    k0 = 0
    while k0 < <long> (T - 1) * B:
        kc = min(grad_k_block(H, sizeof(floating)), <long> (T - 1) * B - k0)
        small_mm(hi - lo, H, <int> kc, delta + BH + k0 * H + lo, 1, H,
                 h + k0 * H, H, d_w_hh + <long> lo * H, H, True)
        k0 += kc
    if not first:
        return
    # dW_ih^T = x^T delta:  (I x H) = (I x T*B)(T*B x H), and db = the
    # column sums of delta (8 partial sums per chunk), both over the same
    # chunks of delta while they are in L1
    k0 = 0
    while k0 < <long> T * B:
        kc = min(grad_k_block(H, sizeof(floating)), <long> T * B - k0)
        small_mm(I, H, <int> kc, x + k0 * I, 1, I, delta + k0 * H, H,
                 d_w_ih_t, H, k0 > 0)
        col_sums(kc, H, delta + k0 * H, H, d_bias, k0 > 0)
        k0 += kc


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
        floating *d_x,           # OUT (T, B, I), or NULL to skip
        floating *work,          # WORK (backward_work), on a cache line
        floating *partials,      # WORK (fused_weight_grads) one
                                 #   partial_stride per WG_GROUP rows of the
                                 #   batch, page-aligned; else NULL
) noexcept nogil:
    """Exact (optionally windowed) BPTT through the Elman layer.

    The recursion runs per sequence (split among nthreads, no per-step
    barrier); the weight gradients are then all-steps products, split by
    output rows. No result depends on nthreads.
    """
    cdef int i, j, c
    cdef unsigned int fpenv
    # each part on a cache line: W_hh and W_ih packed, then dW_ih^T (I rows
    # of H), or [dW_hh | dW_ih | db]^T with partials (H + I + 1 rows)
    cdef floating *w_hh_p = work
    cdef floating *w_ih_p = w_hh_p + whole_lines(<long> H * H, sizeof(floating))
    cdef floating *d_w_ih_t = w_ih_p + whole_lines(<long> H * I,
                                                   sizeof(floating))
    cdef long ps = partial_stride(H, I, sizeof(floating))
    cdef int lo
    pack_blocked(H, H, w_hh, H, 1, w_hh_p)  # W[k, j] = W_hh[k, j]
    pack(I, H, w_ih, I, 1, w_ih_p)          # W[j, i] = W_ih[j, i]
    cdef const floating *g_ih_t = d_w_ih_t  # dW_ih^T (I rows of H)
    if nthreads <= 1:
        elman_rows_backward(0, B, T, B, I, H, act, truncate, w_hh_p, w_ih_p,
                            h, grad_h, delta, d_x, x, h0, partials, ps)
    else:
        # parts of whole groups when the weight gradients are summed in
        # the loop (each part fills its groups' partials)
        for c in prange(nthreads, schedule="static", chunksize=1,
                        num_threads=nthreads):
            fpenv = cbptt_ftz_enter()
            lo = (group_split(c, B, nthreads) if partials != NULL
                  else batch_split(c, B, nthreads))
            elman_rows_backward(lo, group_split(c + 1, B, nthreads)
                                if partials != NULL
                                else batch_split(c + 1, B, nthreads), T,
                                B, I, H, act, truncate, w_hh_p, w_ih_p, h,
                                grad_h, delta, d_x, x, h0,
                                partials + lo // WG_GROUP * ps
                                if partials != NULL else NULL, ps)
            cbptt_ftz_leave(fpenv)
    if partials != NULL:
        # d_w_ih_t gets [dW_hh^T | dW_ih^T | db] (H + I + 1 rows of H)
        add_partials(<long> (H + I + 1) * H, (B + WG_GROUP - 1) // WG_GROUP,
                     ps, partials, d_w_ih_t)
        for i in range(H):
            for j in range(H):
                d_w_hh[<Py_ssize_t> j * H + i] = \
                    d_w_ih_t[<Py_ssize_t> i * H + j]
        g_ih_t = d_w_ih_t + <long> H * H
        memcpy(d_bias, d_w_ih_t + <long> (H + I) * H, H * sizeof(floating))
    elif nthreads <= 1:
        elman_weight_grads(0, H, T, B, I, H, x, h0, h, delta, d_w_hh,
                           d_w_ih_t, d_bias, True)
    else:
        for c in prange(nthreads, schedule="static", chunksize=1,
                        num_threads=nthreads):
            fpenv = cbptt_ftz_enter()
            elman_weight_grads(grad_split(c, H, I, nthreads),
                               grad_split(c + 1, H, I, nthreads), T,
                               B, I, H, x, h0, h, delta, d_w_hh, d_w_ih_t,
                               d_bias, c == 0)
            cbptt_ftz_leave(fpenv)
    for i in range(I):
        for j in range(H):
            d_w_ih[<Py_ssize_t> j * I + i] = g_ih_t[<Py_ssize_t> i * H + j]
    # dh0 = delta(0) W_hh:  (B x H) = (B x H)(H x H)
    small_mm_blocked(B, H, H, delta, H, w_hh_p, d_h0, H, False)


cdef int forward_run(int T, int B, int I, int H, int act,
                     const floating *x, const floating *w_ih,
                     const floating *w_hh, const floating *bias,
                     const floating *h0, floating *h) except -1:
    """Allocate the workspace (from a cache line: LINE_BYTES more to find
    it) and run the forward kernel on checked arrays, without the GIL."""
    cdef unsigned int fpenv
    work = np.empty(forward_work(H, I, sizeof(floating))
                    + LINE_BYTES // sizeof(floating),
                    np.float32 if floating is float else np.float64)
    cdef floating *w = line_start(<floating *> data_of(work))
    cdef int nthreads = threads_for(B, H, sizeof(floating))
    with nogil:
        fpenv = cbptt_ftz_enter()
        elman_layer_forward(T, B, I, H, act, nthreads, x, w_ih, w_hh, bias,
                            h0, h, w)
        cbptt_ftz_leave(fpenv)
    return 0


cdef int backward_run(int T, int B, int I, int H, int act, int truncate,
                      const floating *x, const floating *w_ih,
                      const floating *w_hh, const floating *h0,
                      const floating *h, const floating *grad_h,
                      floating *delta, floating *d_w_ih, floating *d_w_hh,
                      floating *d_bias, floating *d_h0,
                      floating *d_x) except -1:
    """Allocate the workspace (from a cache line; the partials, when the
    weight gradients are summed in the loop, from a page) and run the
    backward kernel on checked arrays, without the GIL."""
    cdef unsigned int fpenv
    cdef int nthreads = threads_for(B, H, sizeof(floating))
    cdef bint fused = fused_weight_grads(H, I, sizeof(floating))
    cdef long n_work = (backward_work(H, I, sizeof(floating), fused)
                        + LINE_BYTES // sizeof(floating))
    cdef long n_part = ((B + WG_GROUP - 1) // WG_GROUP
                        * partial_stride(H, I, sizeof(floating)) if fused else 0)
    work = np.empty(
        n_work + n_part + (PAGE_BYTES // sizeof(floating) if fused else 0),
        np.float32 if floating is float else np.float64)
    cdef floating *w = <floating *> data_of(work)
    cdef floating *partials = page_start(w + n_work) if fused else NULL
    with nogil:
        fpenv = cbptt_ftz_enter()
        elman_layer_backward(T, B, I, H, act, truncate, nthreads, x, w_ih,
                             w_hh, h0, h, grad_h, delta, d_w_ih, d_w_hh,
                             d_bias, d_h0, d_x, line_start(w), partials)
        cbptt_ftz_leave(fpenv)
    return 0


cdef object setflags = np.ndarray.setflags   # (a, False): read-only


def forward_fast(x, w_ih, w_hh, bias, bint batch_first, int act):
    """``rnn_forward``'s common case in one compiled call, or None.

    The common case: the arrays are ``forward_inputs``' common case
    (``cbptt._scan``), h0 is None (the caller's), the activation saturates
    (tanh or logistic, ``act`` 1 or 2) and the pre-activation bound is
    within range. Then returns ``(x_tm, w_ih, w_hh, bias, h0, h)``: the
    private read-only copies, read-only zeros for h0 and the read-only
    time-major outputs. Anything else: None, nothing is raised, and the
    caller's checked path gives the precise error. The same results as that
    path, which runs the same kernel on the same copies.
    """
    if act != 1 and act != 2:
        return None
    fast = forward_inputs(x, batch_first, 1, w_ih, w_hh, bias, None, None)
    if fast is None:
        return None
    x_tm, x_max, w, u, b = fast[0], fast[1], fast[2], fast[3], fast[4]
    cdef int T = x_tm.shape[0], B = x_tm.shape[1], I = x_tm.shape[2]
    cdef int H = b.shape[0]
    dtype = x_tm.dtype
    # |h| <= 1 for every state entering a step (h0 = 0, then f's range)
    worst = preact_bound_or_none(b, w, x_max, u, np.ones(H))
    if worst is None or not worst <= (FLT_MAX / 4 if dtype.itemsize == 4
                                      else DBL_MAX / 4):
        return None
    h0 = np.zeros((B, H), dtype)
    setflags(h0, False)
    h = aligned_empty((T, B, H), dtype)
    cdef void *p[6]
    for k, a in enumerate((x_tm, w, u, b, h0, h)):
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
    return x_tm, w, u, b, h0, h


def backward_fast(x_tm, w_ih, w_hh, h0, h_tm, g, bint batch_first, int act,
                  int truncate, bint input_grad):
    """``rnn_backward``'s common case in one compiled call, or None.

    ``x_tm`` .. ``h_tm`` are a forward result's private arrays; the common
    case: ``g`` as ``grad_input``'s (``cbptt._scan``), whose values are not
    scanned first: a non-finite one makes ``delta`` and then ``db`` (the sum
    of every ``delta``) non-finite, which the check of the results catches.
    Returns ``(delta, d_w_ih, d_w_hh, d_b, d_h0, d_x)`` (time-major, ``d_x``
    None unless ``input_grad``) when every gradient is finite. Anything
    else: None, nothing is raised, and the caller's checked path (which
    runs the kernel again) gives the precise error.
    """
    cdef int d[4]
    cdef int s = result_dims(x_tm, h_tm, d)
    if s == 0:
        return None
    cdef int T = d[0], B = d[1], H = d[2], I = d[3]
    dtype = h_tm.dtype
    # the inputs' pointers, checked: a result whose arrays disagree (e.g.
    # built by hand) takes the checked path, which refuses it
    cdef void *p[12]
    p[0] = data_if(x_tm, s, T, B, I)
    p[1] = data_if(w_ih, s, H, I)
    p[2] = data_if(w_hh, s, H, H)
    p[3] = data_if(h0, s, B, H)
    p[4] = data_if(h_tm, s, T, B, H)
    if (p[0] == NULL or p[1] == NULL or p[2] == NULL or p[3] == NULL
            or p[4] == NULL):
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
    if not all_finite_arrays((d_b, d_w_ih, d_w_hh, d_h0, d_x)):
        return None
    return delta, d_w_ih, d_w_hh, d_b, d_h0, d_x


def simd_level():
    """The instruction set the kernels use: 2 AVX-512, 1 AVX2+FMA, 0 baseline."""
    return cbptt_isa()


def _activate(floating[::1] z, int act):
    """Test twin of the vectorised activations: z = f(z) in place, through
    the same dispatched row loop as the forward kernel (zero bias)."""
    cdef floating[::1] zero = np.zeros(z.shape[0], np.asarray(z).dtype)
    if z.shape[0] == 0 or not 0 <= act <= 3:
        raise ValueError("_activate: empty array or unknown activation code")
    with nogil:
        bias_activate_rows(act, 1, <int> z.shape[0], &z[0], &zero[0])


def _limit_simd_level(int level):
    """Test twin: run the kernels at most at ``level``; returns the level used."""
    return cbptt_isa_limit(level)


def threads_used(int B, int H, int itemsize=4):
    """How many threads the Elman kernels use for B sequences of H units
    (float32 for ``itemsize`` 4, float64 for 8)."""
    return threads_for(B, H, itemsize)


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
            or h.shape[1] != B or h.shape[2] != H or not 0 <= act <= 3):
        raise ValueError("elman_forward: inconsistent shapes")
    forward_run(T, B, I, H, act, &x[0, 0, 0], &w_ih[0, 0], &w_hh[0, 0],
                &bias[0], &h0[0, 0], &h[0, 0, 0])


def elman_backward(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                   const floating[:, ::1] w_hh, const floating[:, ::1] h0,
                   const floating[:, :, ::1] h,
                   const floating[:, :, ::1] grad_h, int act, int truncate,
                   floating[:, :, ::1] delta, floating[:, ::1] d_w_ih,
                   floating[:, ::1] d_w_hh, floating[::1] d_bias,
                   floating[:, ::1] d_h0, floating[:, :, ::1] d_x,
                   floating[:, ::1] carry):
    """Run the backward kernel on validated, time-major arrays (fills the OUTs).

    ``d_x`` may be None: dL/dx is then not computed (a first layer's input
    is data). ``carry`` (B, H) is checked but no longer used (the carried
    error now lives in ``delta``); it stays in the signature for the callers.
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
            or carry is None or carry.shape[0] != B or carry.shape[1] != H
            or not 0 <= act <= 3 or truncate < 0):
        raise ValueError("elman_backward: inconsistent shapes")
    cdef floating *p_d_x = NULL
    if d_x is not None:
        p_d_x = &d_x[0, 0, 0]
    backward_run(T, B, I, H, act, truncate, &x[0, 0, 0], &w_ih[0, 0],
                 &w_hh[0, 0], &h0[0, 0], &h[0, 0, 0], &grad_h[0, 0, 0],
                 &delta[0, 0, 0], &d_w_ih[0, 0], &d_w_hh[0, 0], &d_bias[0],
                 &d_h0[0, 0], p_d_x)


def _set_parallel_min_work(long work_f, long work_d):
    """Benchmark twin: the per-step work (B * H * H) from which the kernels
    use threads, for float32 and float64; returns the previous pair."""
    global PARALLEL_MIN_WORK_F, PARALLEL_MIN_WORK_D
    old = PARALLEL_MIN_WORK_F, PARALLEL_MIN_WORK_D
    PARALLEL_MIN_WORK_F, PARALLEL_MIN_WORK_D = work_f, work_d
    return old
