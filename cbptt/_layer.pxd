# cbptt._layer: the one layer driver. Every recurrent cell runs through it.
#
# Design contract
# ---------------
# * A layer is a Layer struct (make_layer): the cell (kind, and its
#   activation or form), the sizes T, B, I, H, G (G row blocks of the stacked
#   weights, so every per-step pre-activation row is G*H wide) and what the
#   cell asks of the driver (apart, carries, direct). A cell contributes only
#   its step, one fused pointwise loop per direction (cell_forward,
#   cell_backward below, calling the loops of src/: cbptt_simd.h for the
#   Elman activations, cbptt_lstm.h for the LSTM, cbptt_gru.h for the
#   GRU); the driver owns
#   everything else: packing the weights, the input projection, the time
#   loop, the recurrent products, the batch split over threads, the carried
#   errors, truncation, the workspaces and the weight gradients.
# * Equations, for z(t) = W_ih x(t) + W_hh h(t-1) (b inside the cell step):
#
#       forward:  z(t) -> cell_forward -> the step's cache, h(t) (and c(t))
#       backward: delta(t) = dL/dz(t) from cell_backward, given e_h(t) and
#                 the carried error W_hh^T delta(t+1) (none at a window
#                 start), then
#       dW_ih = sum_t delta(t)^T x(t),  dW_hh = sum_t delta(t)^T h(t-1),
#       db = sum_t delta(t),  dx(t) = W_ih^T delta(t),  dh0 = W_hh^T delta(0)
#
#   The CEC has no W_hh: its self-weight is the identity, so its carried
#   error is delta(t+1) itself.
# * A cell with its recurrent side apart (L.apart) keeps the two products
#   separate: zx(t) = W_ih x(t) in z, zh(t) = W_hh h(t-1) in a work row the
#   cell step reads, with a bias for each side (b_ih, b_hh). Its backward
#   step gives two error signals, delta(t) = dL/dzx(t) and delta_hh(t) =
#   dL/dzh(t), and the driver takes each product from its own side:
#
#       dW_ih = sum_t delta(t)^T x(t),        db_ih = sum_t delta(t),
#       dW_hh = sum_t delta_hh(t)^T h(t-1),   db_hh = sum_t delta_hh(t),
#       dx(t) = W_ih^T delta(t),   carried error W_hh^T delta_hh(t+1)
#
#   Such a cell's delta_hh(t) equals delta(t) except in its last block (H
#   columns: the GRU's n gate, where delta_hh_n = r delta_n), so the
#   driver keeps delta_hh(t) only for the step (the carried product and
#   the in-loop weight gradients) and, for weight gradients summed after
#   the loop, that last block in a (T, B, H) array delta_hn.
#   A cell with a direct path from h(t-1) to h(t) besides W_hh (L.direct)
#   writes that part of the carried error itself, and the driver adds the
#   product W_hh^T delta_hh(t+1) to it.
# * Layout: every per-step array is time-major and C-contiguous (T, B, .).
#   Elman and CEC layers compute in place in h (their cache is h); the other
#   cells keep their activated gates and a second (T, B, H) array ``c``
#   (the LSTM's cell state). Without ``keep`` (a forward that will not be
#   differentiated) the gates go to one (B, G*H) slot and c(t) to slot
#   t % 2 of two.
# * Products: the register-tiled loops of src/cbptt_simd.h on weights packed
#   once per call (row blocks for the recurrent ones). The weight gradients
#   are summed in the backward loop per group of WG_GROUP sequences (one
#   partial each, added in group order) when [dW_hh | dW_ih | db]^T is at
#   most WG_FUSED_MAX_BYTES and G*H >= WG_FUSED_MIN_WIDTH, else after it as
#   all-steps products in blocks of GRAD_K_BLOCK rows, split by columns.
# * Threads: how many, the driver decides (layer_threads, the policy of
#   _layer.pyx: one rule per cell kind, THREAD_RULES, capped by the OpenMP
#   limit and cbptt.set_num_threads). Sequences are independent, so each
#   thread runs the whole time loop on its chunk of the batch
#   (rows_per_chunk; whole groups with the in-loop weight gradients): no
#   per-step barrier. A cell whose rows carry
#   their errors in (m, H) buffers of their own (L.carries: the LSTM's h
#   and c errors) keeps them on pages of its chunk. Every element is
#   computed by the same operations in the same order whatever the split:
#   results are bitwise identical for any thread count.
# * The kernels (layer_forward, layer_backward) are noexcept nogil and
#   allocate nothing; layer_forward_run and layer_backward_run allocate
#   their workspaces (forward_work and, from a page, forward_paged;
#   backward_work and, from a page, backward_paged), release the GIL and set
#   flush-to-zero around them.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from cbptt._kernels cimport cbptt_ftz_enter, cbptt_ftz_leave
from cbptt._simd cimport (pack, small_mm, pack_blocked, small_mm_blocked,
                          n_chunks, chunk_end, col_sums, whole_pages,
                          whole_lines, line_start, page_start, LINE_BYTES,
                          PAGE_BYTES, add_partials, cbptt_bias_act_rows_f,
                          cbptt_bias_act_rows_d, cbptt_delta_rows_f,
                          cbptt_delta_rows_d)

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

cdef extern from "cbptt_gru.h" nogil:
    void cbptt_gru_fwd_rows_f(int m, int H, float *z, const float *zh,
                              const float *b_ih, const float *b_hh,
                              const float *h_prev, float *hn, float *h)
    void cbptt_gru_fwd_rows_d(int m, int H, double *z, const double *zh,
                              const double *b_ih, const double *b_hh,
                              const double *h_prev, double *hn, double *h)
    void cbptt_gru_bwd_rows_f(int m, int H, int carry, const float *gates,
                              const float *hn, const float *h_prev,
                              const float *grad_h, float *carry_h,
                              float *delta, float *delta_hh, float *delta_hn)
    void cbptt_gru_bwd_rows_d(int m, int H, int carry, const double *gates,
                              const double *hn, const double *h_prev,
                              const double *grad_h, double *carry_h,
                              double *delta, double *delta_hh,
                              double *delta_hn)


cdef enum CellKind:
    CELL_ELMAN = 0      # h = f(z + b)                      G = 1
    CELL_LSTM = 1       # gates i (f) g o, c, h             G = 4 (or 3)
    CELL_CEC = 2        # s = s(t-1) + z + b, no W_hh       G = 1
    CELL_GRU = 3        # gates r z n, hn (in c), h; apart  G = 3


cdef struct Layer:
    int kind            # a CellKind
    int act             # the Elman activation's code
    int forget_gate     # the LSTM's form (G = 4 with, 3 without)
    int T, B, I, H, G
    int apart           # the recurrent side kept apart: its own product
                        #   row, bias b_hh and error signal delta_hh
    int carries         # (m, H) error buffers the rows carry: 0 (Elman in
                        #   delta, CEC from delta(t+1)), 2 (LSTM: h and c)
    int direct          # the cell writes part of the carried h error


cdef inline Layer make_layer(int kind, int act, int forget_gate, int T,
                             int B, int I, int H) noexcept nogil:
    """The layer of a cell of ``kind``: its sizes and what it asks of the
    driver."""
    cdef Layer L
    L.kind, L.act, L.forget_gate = kind, act, forget_gate
    L.T, L.B, L.I, L.H = T, B, I, H
    L.G, L.apart, L.carries, L.direct = 1, 0, 0, 0
    if kind == CELL_LSTM:
        L.G = 4 if forget_gate else 3
        L.carries = 2
    elif kind == CELL_GRU:
        # b_hn inside r (W_hn h + b_hn): the recurrent side apart; the h
        # error carried in the rows' buffer, its direct part z dh(t+1)
        # written by the cell
        L.G, L.apart, L.carries, L.direct = 3, 1, 1, 1
    return L


cdef struct ThreadRule:
    # When a layer of one cell kind gets threads (layer_threads): its work
    # (multiply-adds of the recurrent product: per step B*G*H*H, or per call
    # T*B*G*H*H) at least the dtype's min_work, and two row chunks.
    int per_call        # 1: the work of a call (T*B*G*H*H); 0: of a step
    int rows_cap        # 1: at most one thread per ROW_CHUNK sequences;
                        #   0: the whole limit (the weight-gradient columns
                        #   split among them all)
    double min_work_f   # the least work for threads in float32 ...
    double min_work_d   # ... and in float64 (inf: never), where threads
                        #   may share a core (SMT siblings) or the
                        #   topology is unknown
    double core_min_work_f  # the same on real cores: every CPU this
    double core_min_work_d  #   process may use on a core of its own


cdef enum ThreadWhy:
    # Why layer_threads gave its count (cbptt.show_config says it in words).
    WHY_LIMIT = 0       # the limit (OpenMP, set_num_threads, a fork) is 1
    WHY_WORK = 1        # too little work
    WHY_ROWS = 2        # fewer than two row chunks
    WHY_PAYS = 3        # the work pays for threads


# The policy (_layer.pyx): the threads a layer gets, and why.
cdef int layer_threads(const Layer *L, int itemsize) noexcept nogil
cdef int policy_threads(const Layer *L, int itemsize,
                        int *why) noexcept nogil


cdef enum:
    # The fewest sequences per thread's chunk (a batch of fewer than two
    # chunks runs on one thread).
    ROW_CHUNK = 8
    # Rows per block of the all-steps weight-gradient products (at least;
    # see grad_k_block), and columns per part when threads share them (a
    # multiple of every panel width).
    GRAD_K_BLOCK = 64
    # Bytes of a block of delta rows that stay in L1 while every row of the
    # result passes over them (grad_k_block).
    GRAD_BLOCK_BYTES = 16384
    GRAD_N_PART = 128
    # Column parts of at most this many bytes per row use delta in place
    # (rows G*H apart) instead of packing it.
    PACK_MIN_BYTES = 256
    # The in-loop weight gradients: at most this many bytes of
    # [dW_hh | dW_ih | db]^T, at least this width G*H (narrower rows make
    # per-group product calls that cost more than one all-steps product),
    # one partial per WG_GROUP sequences.
    WG_FUSED_MAX_BYTES = 384 * 1024
    WG_FUSED_MIN_WIDTH = 32
    WG_GROUP = 16


cdef inline int width(const Layer *L) noexcept nogil:
    """G*H: the elements of a row of pre-activations or their errors."""
    return L.G * L.H


cdef inline int recurrent_rows(const Layer *L) noexcept nogil:
    """Rows of W_hh^T (H), or 0 for a cell without W_hh (the CEC)."""
    return 0 if L.kind == CELL_CEC else L.H


cdef inline bint cache_is_h(const Layer *L) noexcept nogil:
    """Whether the step computes in place in h (Elman, CEC): z(t) is h(t)."""
    return L.kind == CELL_ELMAN or L.kind == CELL_CEC


cdef inline int bias_rows(const Layer *L) noexcept nogil:
    """Bias vectors of the layer: 2 (b_ih, b_hh) with the recurrent side
    apart, else 1."""
    return 2 if L.apart else 1


# ---------------------------------------------------------------------------
# The cells' steps
# ---------------------------------------------------------------------------

cdef inline void cell_forward(
        const Layer *L, int m,
        floating *z,              # IN/OUT (m, G*H) z(t) in, the cache out
        const floating *bias,     # IN  (G*H,) (b_ih with the side apart)
        const floating *bias_hh,  # IN  (G*H,) b_hh (apart), else NULL
        const floating *zh,       # IN  (m, G*H) h(t-1) W_hh^T (apart)
        const floating *h_prev,   # IN  (m, H) h(t-1)
        const floating *c_prev,   # IN  (m, H) c(t-1) (LSTM)
        floating *c,              # OUT (m, H) c(t) (LSTM), hn(t) (GRU)
        floating *h,              # OUT (m, H) h(t) (LSTM, GRU; else h is z)
) noexcept nogil:
    cdef int r, j, H = L.H
    cdef floating *zr
    cdef const floating *hr
    if L.kind == CELL_ELMAN:
        # h(t) = f(z(t) + b)
        if floating is float:
            cbptt_bias_act_rows_f(L.act, m, H, z, H, bias)
        else:
            cbptt_bias_act_rows_d(L.act, m, H, z, H, bias)
    elif L.kind == CELL_CEC:
        # s(t) = z(t) + (s(t-1) + b)
        for r in range(m):
            zr = z + <long> r * H
            hr = h_prev + <long> r * H
            for j in range(H):
                zr[j] += hr[j] + bias[j]
    elif L.kind == CELL_GRU:
        # r, z = logistic(zx + b_ih + zh + b_hh); hn = zh_n + b_hn (in c);
        # n = tanh(zx_n + b_in + r hn); h = (1 - z) n + z h(t-1)
        if floating is float:
            cbptt_gru_fwd_rows_f(m, H, z, zh, bias, bias_hh, h_prev, c, h)
        else:
            cbptt_gru_fwd_rows_d(m, H, z, zh, bias, bias_hh, h_prev, c, h)
    else:
        # i, f, g, o = gates(z + b); c = f c(t-1) + i g; h = o tanh(c)
        if floating is float:
            cbptt_lstm_fwd_rows_f(m, H, L.forget_gate, z, bias, c_prev, c, h)
        else:
            cbptt_lstm_fwd_rows_d(m, H, L.forget_gate, z, bias, c_prev, c, h)


cdef inline void cell_backward(
        const Layer *L, int m, bint carry,
        const floating *cache,    # IN  (m, G*H) the step's cache (LSTM gates)
        const floating *c,        # IN  (m, H) c(t) (LSTM), hn(t) (GRU)
        const floating *c_prev,   # IN  (m, H) c(t-1) (LSTM)
        const floating *h,        # IN  (m, H) h(t)
        const floating *h_prev,   # IN  (m, H) h(t-1) (direct), or NULL
        const floating *grad_h,   # IN  (m, H) e_h(t)
        const floating *grad_c,   # IN  (m, H) e_c(t) (LSTM), or NULL
        floating *carry_h,        # IN  (m, H) W_hh^T delta(t+1) (LSTM);
                                  #   IN/OUT with a direct carry
        floating *carry_c,        # IN/OUT (m, H) the LSTM's carried c error
        const floating *next_d,   # IN  (m, G*H) delta(t+1) (CEC)
        floating *delta,          # IN/OUT (m, G*H) delta(t); an Elman
                                  #   layer's carried error on entry
        floating *delta_hh,       # OUT (m, G*H) delta_hh(t) (apart)
        floating *delta_hn,       # OUT (m, H) delta_hh(t)'s last block
                                  #   (apart), or NULL to skip it
        floating *delta_c,        # OUT (m, H) dL/dc(t) (LSTM)
) noexcept nogil:
    cdef long k, n = <long> m * L.H
    if L.kind == CELL_ELMAN:
        # delta(t) = f'(net(t)) * (e(t) + W_hh^T delta(t+1)), the carry in
        # delta(t) already
        if floating is float:
            cbptt_delta_rows_f(L.act, n, delta, h, grad_h, carry)
        else:
            cbptt_delta_rows_d(L.act, n, delta, h, grad_h, carry)
    elif L.kind == CELL_CEC:
        # delta(t) = e(t) + delta(t+1): the self-weight is 1
        if carry:
            for k in range(n):
                delta[k] = grad_h[k] + next_d[k]
        else:
            for k in range(n):
                delta[k] = grad_h[k]
    elif L.kind == CELL_GRU:
        # dh = e_h(t) + carry_h; delta, delta_hh of r, z, n (delta_hh_n =
        # r delta_n, also in delta_hn); carry_h = z dh, the direct part of
        # dL/dh(t-1)
        if floating is float:
            cbptt_gru_bwd_rows_f(m, L.H, carry, cache, c, h_prev, grad_h,
                                 carry_h, delta, delta_hh, delta_hn)
        else:
            cbptt_gru_bwd_rows_d(m, L.H, carry, cache, c, h_prev, grad_h,
                                 carry_h, delta, delta_hh, delta_hn)
    else:
        if floating is float:
            cbptt_lstm_bwd_rows_f(m, L.H, L.forget_gate, carry, cache, c,
                                  c_prev, h, grad_h, grad_c, carry_h, carry_c,
                                  delta, delta_c)
        else:
            cbptt_lstm_bwd_rows_d(m, L.H, L.forget_gate, carry, cache, c,
                                  c_prev, h, grad_h, grad_c, carry_h, carry_c,
                                  delta, delta_c)


# ---------------------------------------------------------------------------
# Policy: the split of the batch and of the weight gradients
# ---------------------------------------------------------------------------

cdef inline int rows_per_chunk(int B, int nthreads) noexcept nogil:
    """Sequences per thread's chunk: an equal share of the batch, a
    multiple of 4 rows (the products' row tile) and at least ROW_CHUNK. One
    chunk per thread leaves nothing to balance, and the static schedule
    gives a thread the same rows forward and backward."""
    cdef int r = (B + nthreads - 1) // nthreads
    return max(<int> ROW_CHUNK, (r + 3) // 4 * 4)


cdef inline int grad_part(int GH, int nthreads) noexcept nogil:
    """Columns per part of the all-steps weight gradients: GRAD_N_PART when
    there are enough for every thread, else an equal share per thread (a
    multiple of 16 columns)."""
    if GH >= nthreads * GRAD_N_PART:
        return GRAD_N_PART
    return max(16, ((GH + nthreads - 1) // nthreads + 15) // 16 * 16)


cdef inline int grad_rows(const Layer *L) noexcept nogil:
    """Rows of [dW_hh | dW_ih | db_ih (| db_hh)]^T: Hr + I + nb."""
    return recurrent_rows(L) + L.I + bias_rows(L)


cdef inline bint fused_weight_grads(const Layer *L,
                                    int itemsize) noexcept nogil:
    """Whether the weight gradients are summed inside the time loop: a
    property of the layer, never of the threads."""
    return (width(L) >= WG_FUSED_MIN_WIDTH
            and <long> grad_rows(L) * width(L) * itemsize
            <= WG_FUSED_MAX_BYTES)


cdef inline long partial_stride(const Layer *L, int itemsize) noexcept nogil:
    """Elements per group partial: (Hr + I + nb) * G*H rounded up to whole
    pages (no two threads write one page)."""
    return whole_pages(<long> grad_rows(L) * width(L), itemsize)


cdef inline int backward_chunk(const Layer *L, int nthreads,
                               int itemsize) noexcept nogil:
    """Rows per chunk of the backward pass: whole groups with the in-loop
    weight gradients."""
    cdef int rc = rows_per_chunk(L.B, nthreads)
    if fused_weight_grads(L, itemsize):
        rc = (rc + WG_GROUP - 1) // WG_GROUP * WG_GROUP
    return rc


cdef inline bint carries_into(int t, int truncate) noexcept nogil:
    """Whether the error at step t flows on to step t-1 (no window start at t)."""
    return t > 0 and (truncate <= 0 or t % truncate != 0)


# ---------------------------------------------------------------------------
# Workspaces (elements of the layer's dtype)
# ---------------------------------------------------------------------------

cdef inline long forward_work(const Layer *L, int itemsize) noexcept nogil:
    """W_hh and W_ih packed, each from a cache line."""
    return (whole_lines(<long> width(L) * recurrent_rows(L), itemsize)
            + whole_lines(<long> width(L) * L.I, itemsize))


cdef inline long recurrent_stride(const Layer *L, int rc,
                                  int itemsize) noexcept nogil:
    """Elements per chunk's row block of zh(t) = h(t-1) W_hh^T (a cell with
    the recurrent side apart): whole pages, as every step writes it."""
    return whole_pages(<long> rc * width(L), itemsize)


cdef inline long forward_paged(const Layer *L, int nthreads,
                               int itemsize) noexcept nogil:
    """Elements of the page-aligned part of the forward workspace: each
    chunk's rows of zh(t) (recurrent side apart), else nothing."""
    cdef int rc = rows_per_chunk(L.B, nthreads) if nthreads > 1 else L.B
    if not L.apart:
        return 0
    return n_chunks(L.B, rc) * recurrent_stride(L, rc, itemsize)


cdef inline long backward_work(const Layer *L, int nthreads,
                               int itemsize) noexcept nogil:
    """W_hh and W_ih packed, [dW_hh | dW_ih | db]^T and the column parts'
    blocks of delta, each from a cache line."""
    cdef int GH = width(L)
    return (forward_work(L, itemsize)
            + whole_lines(<long> grad_rows(L) * GH, itemsize)
            + <long> GRAD_K_BLOCK * max(GH, nthreads * grad_part(GH, nthreads)))


cdef inline long carry_stride(const Layer *L, int rc, int itemsize) noexcept nogil:
    """Elements per private carry buffer of a chunk of rc rows: whole pages,
    so that no two threads write one page in the time loop."""
    return whole_pages(<long> rc * L.H, itemsize)


cdef inline long step_stride(const Layer *L, int rc,
                             int itemsize) noexcept nogil:
    """Elements per chunk's rows of delta_hh(t) (the recurrent side apart):
    whole pages, as every step writes them."""
    return whole_pages(<long> rc * width(L), itemsize)


cdef inline long backward_paged(const Layer *L, int nthreads,
                                int itemsize) noexcept nogil:
    """Elements of the page-aligned part of the backward workspace: the
    chunks' private carries (on threads: L.carries of them, updated every
    step), the groups' partials (in-loop weight gradients) and, with the
    recurrent side apart, each chunk's rows of delta_hh(t)."""
    cdef long n = 0
    cdef int rc = L.B
    if nthreads > 1:
        rc = backward_chunk(L, nthreads, itemsize)
    if nthreads > 1 and L.carries:
        n += L.carries * n_chunks(L.B, rc) * carry_stride(L, rc, itemsize)
    if fused_weight_grads(L, itemsize):
        n += n_chunks(L.B, WG_GROUP) * partial_stride(L, itemsize)
    if L.apart:
        n += n_chunks(L.B, rc) * step_stride(L, rc, itemsize)
    return n


# ---------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------

cdef inline void layer_rows_forward(
        const Layer *L, int lo, int hi,
        const floating *x,        # IN  (T, B, I)
        const floating *w_ih_p,   # IN  W_ih^T packed (I x G*H)
        const floating *w_hh_p,   # IN  W_hh^T packed in blocks (H x G*H)
        const floating *bias,     # IN  (G*H,)
        const floating *bias_hh,  # IN  (G*H,) (recurrent side apart)
        const floating *h0,       # IN  (B, H)
        const floating *c0,       # IN  (B, H) (LSTM)
        floating *z,              # OUT (T, B, G*H) the cache (h itself for
                                  #     Elman and CEC), or (1, B, G*H)
        floating *c,              # OUT (T, B, H), or (2, B, H) (LSTM)
        floating *h,              # OUT (T, B, H)
        floating *zh,             # WORK (m, G*H) the rows' zh(t) (apart)
        bint keep,                # every step's cache, or the last ones
) noexcept nogil:
    """The time loop for sequences [lo, hi): the cell step once per t."""
    cdef int T = L.T, B = L.B, I = L.I, H = L.H, GH = width(L)
    cdef int t, m = hi - lo
    cdef long BH = <long> B * H
    cdef long BGH = <long> B * GH
    cdef const floating *h_prev = h0 + <long> lo * H
    cdef const floating *c_prev = c0 + <long> lo * H if c0 != NULL else NULL
    cdef floating *zt
    cdef floating *ct = NULL
    cdef floating *ht
    # z(t) = x(t) W_ih^T for every step first, off the recurrence's critical
    # path, when the cache holds every step of the whole batch (one product
    # of T*B rows): (T*B x G*H) = (T*B x I)(I x G*H)
    cdef bint project_all = cache_is_h(L) and m == B
    if project_all:
        small_mm(T * B, GH, I, x, I, 1, w_ih_p, 0, z, GH, False)
    for t in range(T):
        zt = z + (t * BGH if keep else 0) + <long> lo * GH
        ht = h + t * BH + <long> lo * H
        if c != NULL:
            ct = c + (t if keep else t % 2) * BH + <long> lo * H
        if not project_all:
            # z(t) = x(t) W_ih^T:  (m x G*H) = (m x I)(I x G*H)
            small_mm(m, GH, I, x + (<long> t * B + lo) * I, I, 1, w_ih_p, 0,
                     zt, GH, False)
        if L.apart:
            # zh(t) = h(t-1) W_hh^T:  (m x G*H) = (m x H)(H x G*H)
            small_mm_blocked(m, GH, H, h_prev, H, w_hh_p, zh, GH, False)
        elif recurrent_rows(L):
            # z(t) += h(t-1) W_hh^T:  (m x G*H) = (m x H)(H x G*H), in row
            # blocks of W_hh^T that stay in L1
            small_mm_blocked(m, GH, H, h_prev, H, w_hh_p, zt, GH, True)
        cell_forward(L, m, zt, bias, bias_hh, zh, h_prev, c_prev, ct, ht)
        h_prev = ht
        c_prev = ct


cdef inline void layer_forward(
        const Layer *L, int nthreads,
        const floating *x,        # IN  (T, B, I)
        const floating *w_ih,     # IN  (G*H, I)
        const floating *w_hh,     # IN  (G*H, H), or NULL (CEC)
        const floating *bias,     # IN  (G*H,) (b_ih with the side apart)
        const floating *bias_hh,  # IN  (G*H,) b_hh (apart), else NULL
        const floating *h0,       # IN  (B, H)
        const floating *c0,       # IN  (B, H) (LSTM), else NULL
        floating *z,              # OUT the cache (see layer_rows_forward)
        floating *c,              # OUT (LSTM), else NULL
        floating *h,              # OUT (T, B, H)
        floating *work,           # WORK (forward_work), on a cache line
        floating *paged,          # WORK (forward_paged), on a page, or NULL
        bint keep,
) noexcept nogil:
    """The layer's forward pass over t = 0..T-1, on nthreads chunks of the
    batch."""
    cdef int ch, rc, GH = width(L)
    cdef int Hr = recurrent_rows(L)
    cdef unsigned int fpenv
    cdef floating *w_hh_p = work
    cdef floating *w_ih_p = work + whole_lines(<long> GH * Hr, sizeof(floating))
    cdef long zs
    if Hr:
        pack_blocked(GH, Hr, w_hh, 1, Hr, w_hh_p)   # W[k, j] = W_hh[j, k]
    pack(GH, L.I, w_ih, 1, L.I, w_ih_p)             # W[i, j] = W_ih[j, i]
    if nthreads <= 1:
        layer_rows_forward(L, 0, L.B, x, w_ih_p, w_hh_p, bias, bias_hh, h0,
                           c0, z, c, h, paged, keep)
        return
    rc = rows_per_chunk(L.B, nthreads)
    zs = recurrent_stride(L, rc, sizeof(floating))
    for ch in prange(n_chunks(L.B, rc), schedule="static", chunksize=1,
                     num_threads=nthreads):
        fpenv = cbptt_ftz_enter()
        layer_rows_forward(L, ch * rc, chunk_end(ch, L.B, rc), x, w_ih_p,
                           w_hh_p, bias, bias_hh, h0, c0, z, c, h,
                           paged + ch * zs if paged != NULL else NULL, keep)
        cbptt_ftz_leave(fpenv)


# ---------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------

cdef inline void group_weight_grads(
        int m, int Hr, int I, int GH,
        const floating *hp,       # IN  (m, Hr) h(t-1) of the group's rows
        const floating *xt,       # IN  (m, I) x(t)
        const floating *d_t,      # IN  (m, G*H) delta(t), rows G*H apart
        const floating *dh_t,     # IN  (m, G*H) delta_hh(t) (apart), or NULL
        floating *part,           # IN/OUT (Hr + I + nb, G*H) the partial
        bint more,                # add to it (else overwrite)
) noexcept nogil:
    """[dW_hh | dW_ih | db_ih (| db_hh)]^T (+)= [h(t-1) | x(t) | 1 (| 1)]^T
    delta(t) over the group's m rows of one step (the biases as column
    sums), the dW_hh and db_hh rows from delta_hh(t) when it is given."""
    cdef const floating *d_r = dh_t if dh_t != NULL else d_t
    if Hr:
        small_mm(Hr, GH, m, hp, 1, Hr, d_r, GH, part, GH, more)
    small_mm(I, GH, m, xt, 1, I, d_t, GH, part + <long> Hr * GH, GH, more)
    col_sums(m, GH, d_t, GH, part + <long> (Hr + I) * GH, more)
    if dh_t != NULL:
        col_sums(m, GH, dh_t, GH, part + <long> (Hr + I + 1) * GH, more)


cdef inline void layer_rows_backward(
        const Layer *L, int lo, int hi, int truncate,
        const floating *w_hh_p,   # IN  W_hh packed in blocks (G*H x H)
        const floating *w_ih_p,   # IN  W_ih packed (G*H x I)
        const floating *c0,       # IN  (B, H) (LSTM)
        const floating *z,        # IN  (T, B, G*H) the cache (LSTM gates)
        const floating *c,        # IN  (T, B, H) (LSTM)
        const floating *h,        # IN  (T, B, H), or NULL (CEC)
        const floating *grad_h,   # IN  (T, B, H) e_h(t)
        const floating *grad_c,   # IN  (T, B, H) e_c(t) (LSTM), or NULL
        floating *delta,          # OUT (T, B, G*H) dL/dz(t)
        floating *step_hh,        # WORK (m, G*H) dL/dzh(t) of the step
                                  #     (apart), or NULL
        floating *delta_hn,       # OUT (T, B, H) the last block of dL/dzh(t)
                                  #     (apart, for weight_grads_t), or NULL
        floating *delta_c,        # OUT (T, B, H) dL/dc(t) (LSTM)
        floating *carry_h,        # OUT (m, H) the h carry (L.carries), dh0
                                  #     of the rows at the end
        floating *carry_c,        # OUT (m, H) the c carry (LSTM): dc0
        floating *d_x,            # OUT (T, B, I), or NULL to skip
        const floating *x,        # IN  (T, B, I) (in-loop weight gradients)
        const floating *h0,       # IN  (B, H) (in-loop weight gradients),
                                  #     or NULL (CEC)
        floating *partials,       # OUT the partials of the rows' groups (lo
                                  #     a multiple of WG_GROUP), pstride
                                  #     apart, or NULL
        long pstride,
) noexcept nogil:
    """The reverse time loop for sequences [lo, hi). An Elman layer carries
    its error in delta(t-1) itself (the next step's cell reads it there), a
    CEC reads delta(t+1), the other cells carry their errors (L.carries) in
    the rows' own (m, H) buffers. A cell with the recurrent side apart
    writes its rows' delta_hh(t) to step_hh, which the carried product and
    the in-loop weight gradients read, and its last block to delta_hn when
    the weight gradients are summed after the loop."""
    cdef int T = L.T, B = L.B, I = L.I, H = L.H, GH = width(L)
    cdef int Hr = recurrent_rows(L)
    cdef int t, g0, gm, m = hi - lo
    cdef long BH = <long> B * H
    cdef long BGH = <long> B * GH
    cdef long rh = <long> lo * H
    cdef long rg = <long> lo * GH
    cdef bint carry = False
    cdef floating *d_t
    cdef floating *dh_t
    cdef const floating *hp
    cdef const floating *cp
    cdef bint cached = not cache_is_h(L)
    for t in range(T - 1, -1, -1):
        d_t = delta + t * BGH + rg
        dh_t = step_hh if step_hh != NULL else d_t
        hp = NULL
        if h != NULL and h0 != NULL:
            hp = (h + (t - 1) * BH if t > 0 else h0) + rh
        cp = NULL
        if c != NULL and (t > 0 or c0 != NULL):
            cp = (c + (t - 1) * BH if t > 0 else c0) + rh
        cell_backward(L, m, carry, z + t * BGH + rg if cached else NULL,
                      c + t * BH + rh if c != NULL else NULL, cp,
                      h + t * BH + rh if h != NULL else NULL, hp,
                      grad_h + t * BH + rh,
                      grad_c + t * BH + rh if grad_c != NULL else NULL,
                      carry_h, carry_c, d_t + BGH, d_t, step_hh,
                      delta_hn + t * BH + rh if delta_hn != NULL else NULL,
                      delta_c + t * BH + rh if delta_c != NULL else NULL)
        if d_x != NULL:
            # dx(t) = delta(t) W_ih:  (m x I) = (m x G*H)(G*H x I)
            small_mm(m, I, GH, d_t, GH, 1, w_ih_p, 0,
                     d_x + (<long> t * B + lo) * I, I, False)
        if partials != NULL:
            g0 = lo
            while g0 < hi:
                gm = min(<int> WG_GROUP, hi - g0)
                group_weight_grads(
                    gm, Hr, I, GH,
                    ((h + (t - 1) * BH if t > 0 else h0) + <long> g0 * H)
                    if Hr else NULL,
                    x + (<long> t * B + g0) * I, delta + t * BGH + <long> g0 * GH,
                    step_hh + <long> (g0 - lo) * GH
                    if step_hh != NULL else NULL,
                    partials + (g0 - lo) // WG_GROUP * pstride, t < T - 1)
                g0 += gm
        carry = carries_into(t, truncate)
        if not Hr:
            if t == 0:
                # dh0 = delta(0): the self-weight is 1
                memcpy(carry_h, d_t, m * H * sizeof(floating))
        elif carry and not L.carries:
            # delta(t-1) = delta(t) W_hh:  (m x H) = (m x H)(H x H), the
            # carried error the Elman step finishes in place
            small_mm_blocked(m, H, GH, d_t, GH, w_hh_p, d_t - BGH, H, False)
        elif carry or t == 0:
            # carry_h (+)= delta_hh(t) W_hh (dh0 at t = 0), added to the
            # direct part the cell wrote: (m x H) = (m x G*H)(G*H x H)
            small_mm_blocked(m, H, GH, dh_t, GH, w_hh_p, carry_h, H,
                             L.direct)


cdef inline const floating *delta_block(
        int n, int kc, const floating *d, long N, floating *delta_p,
        long *ldd) noexcept nogil:
    """The (kc x n) block ``d`` (rows N apart) as a product operand: packed
    into ``delta_p`` above PACK_MIN_BYTES a row (``ldd`` 0), else in place
    (``ldd`` N)."""
    if n * sizeof(floating) > PACK_MIN_BYTES:
        pack(n, kc, d, N, 1, delta_p)
        ldd[0] = 0
        return delta_p
    ldd[0] = N
    return d


cdef inline long grad_k_block(int N, int itemsize) noexcept nogil:
    """Rows per block of the all-steps weight-gradient products: at least
    GRAD_K_BLOCK, more for narrow layers (GRAD_BLOCK_BYTES of delta rows of
    width N: 256 rows at N = 16 in float32), which then make fewer, longer
    product calls. A property of the layer (N = G*H), never of the threads'
    column parts, so the sums' order is too. Where a part is packed (above
    PACK_MIN_BYTES a row) this is GRAD_K_BLOCK, the packing buffer's rows."""
    return max(GRAD_K_BLOCK, GRAD_BLOCK_BYTES // (<long> N * itemsize))


cdef inline void weight_grads_t(
        int j0, int j1, int T, int B, int I, int Hr, int N,
        const floating *x,        # IN  (T, B, I)
        const floating *h0,       # IN  (B, Hr) (unused if Hr == 0)
        const floating *h,        # IN  (T, B, Hr) (unused if Hr == 0)
        const floating *delta,    # IN  (T, B, N) dL/dz(t)
        const floating *delta_hn, # IN  (T, B, Hr) the last block of
                                  #     dL/dzh(t) (apart), or NULL
        floating *grads_t,        # OUT (Hr + I + nb, N), columns [j0, j1)
        floating *delta_p,        # WORK (GRAD_K_BLOCK * (j1 - j0))
) noexcept nogil:
    """Columns [j0, j1) of [dW_hh | dW_ih | db]^T = [h(t-1) | x(t) | 1]^T
    delta(t) summed over every step t and sequence (Hr = 0: no recurrent
    part), in one order for every element. With the recurrent side apart
    (delta_hn given), the dW_hh rows take delta_hh(t), which is delta(t)
    but in its last block, delta_hn; of db_hh only that block is summed
    here (the rest equals db_ih's).

    The sum over the T*B rows runs in blocks of grad_k_block rows (the first
    B rows take h0 for h(t-1)); a block's columns [j0, j1) of delta (and of
    delta_hn) are packed once (above PACK_MIN_BYTES a row) and every row of
    the result passes over them.
    """
    cdef long TB = <long> T * B
    cdef long k0 = 0, kend
    cdef long kb = grad_k_block(N, sizeof(floating))
    cdef int kc
    # columns [j0, s) take delta on both sides, [s, j1) delta_hn on the
    # recurrent one
    cdef int s = max(j0, min(j1, N - Hr if delta_hn != NULL else N))
    cdef int ns = s - j0, nn = j1 - s
    cdef const floating *hp
    cdef const floating *dp
    cdef const floating *hn
    cdef long ldd
    cdef floating *out = grads_t + j0
    cdef bint more
    while k0 < TB:
        kend = min(k0 + kb, B if k0 < B else TB)
        kc = <int> (kend - k0)
        more = k0 > 0
        hp = h0 + k0 * Hr if k0 < B else h + (k0 - B) * Hr
        if ns > 0:
            # the block of delta's first ns columns: (kc x ns)
            dp = delta_block(ns, kc, delta + k0 * N + j0, N, delta_p, &ldd)
            if Hr > 0:
                # dW_hh^T (+)= h(t-1)^T delta:  (Hr x ns) = (Hr x kc)(kc x ns)
                small_mm(Hr, ns, kc, hp, 1, Hr, dp, ldd, out, N, more)
            # dW_ih^T (+)= x^T delta:  (I x ns) = (I x kc)(kc x ns)
            small_mm(I, ns, kc, x + k0 * I, 1, I, dp, ldd,
                     out + <long> Hr * N, N, more)
        if nn > 0:
            hn = delta_hn + k0 * Hr + (s - (N - Hr))
            # dW_hh^T (+)= h(t-1)^T delta_hn; db_hh (+)= its column sums
            dp = delta_block(nn, kc, hn, Hr, delta_p, &ldd)
            small_mm(Hr, nn, kc, hp, 1, Hr, dp, ldd, out + ns, N, more)
            col_sums(kc, nn, hn, Hr, out + ns + <long> (Hr + I + 1) * N, more)
            # dW_ih^T (+)= x^T delta in the last columns
            dp = delta_block(nn, kc, delta + k0 * N + s, N, delta_p, &ldd)
            small_mm(I, nn, kc, x + k0 * I, 1, I, dp, ldd,
                     out + <long> Hr * N + ns, N, more)
        # db (+)= the column sums of the block of delta (a one-row
        # product would run the register tiles of several rows for one)
        col_sums(kc, j1 - j0, delta + k0 * N + j0, N,
                 out + <long> (Hr + I) * N, more)
        k0 = kend


cdef inline void transpose_into(int n, int m, const floating *a,
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


cdef inline void layer_backward(
        const Layer *L, int truncate, int nthreads,
        const floating *x,        # IN  (T, B, I)
        const floating *w_ih,     # IN  (G*H, I)
        const floating *w_hh,     # IN  (G*H, H), or NULL (CEC)
        const floating *h0,       # IN  (B, H), or NULL (CEC)
        const floating *c0,       # IN  (B, H) (LSTM), else NULL
        const floating *z,        # IN  (T, B, G*H) the cache (LSTM gates)
        const floating *c,        # IN  (T, B, H) (LSTM), else NULL
        const floating *h,        # IN  (T, B, H), or NULL (CEC)
        const floating *grad_h,   # IN  (T, B, H) e_h(t)
        const floating *grad_c,   # IN  (T, B, H) e_c(t) (LSTM), or NULL
        floating *delta,          # OUT (T, B, G*H) dL/dz(t)
        floating *delta_hn,       # WORK (T, B, H) the last block of
                                  #     dL/dzh(t) (apart), else NULL
        floating *delta_c,        # OUT (T, B, H) dL/dc(t) (LSTM), else NULL
        floating *d_w_ih,         # OUT (G*H, I)
        floating *d_w_hh,         # OUT (G*H, H), or NULL (CEC)
        floating *d_bias,         # OUT (G*H,) (db_ih with the side apart)
        floating *d_bias_hh,      # OUT (G*H,) db_hh (apart), else NULL
        floating *d_h0,           # OUT (B, H)
        floating *d_c0,           # OUT (B, H) (LSTM), else NULL
        floating *d_x,            # OUT (T, B, I), or NULL to skip
        floating *work,           # WORK (backward_work), on a cache line
        floating *paged,          # WORK (backward_paged), on a page
) noexcept nogil:
    """Exact (optionally windowed) BPTT through the layer: the recursion per
    chunk of sequences (no per-step barrier), the weight gradients in the
    loop (partials) or after it (all-steps products split by columns). No
    result depends on nthreads."""
    cdef int ch, rc, GH = width(L), I = L.I, H = L.H, B = L.B
    cdef int Hr = recurrent_rows(L)
    cdef int M = grad_rows(L)
    cdef int part = grad_part(GH, nthreads)
    cdef unsigned int fpenv
    cdef bint fused = fused_weight_grads(L, sizeof(floating))
    cdef int nc = L.carries
    # each part from a cache line (backward_work)
    cdef floating *w_hh_p = work
    cdef floating *w_ih_p = w_hh_p + whole_lines(<long> GH * Hr,
                                                 sizeof(floating))
    cdef floating *grads_t = w_ih_p + whole_lines(<long> GH * I,
                                                  sizeof(floating))
    cdef floating *delta_p = grads_t + whole_lines(<long> M * GH,
                                                   sizeof(floating))
    cdef long ps = partial_stride(L, sizeof(floating))
    cdef long cs = 0
    cdef long ss = 0
    cdef floating *carries = paged
    cdef floating *partials = NULL
    cdef floating *steps = NULL
    cdef floating *ch_h
    cdef floating *ch_c
    # delta_hh's last block for the weight gradients after the loop only
    cdef floating *d_hn = NULL if fused else delta_hn
    if Hr:
        pack_blocked(Hr, GH, w_hh, Hr, 1, w_hh_p)   # W[k, j] = W_hh[k, j]
    pack(I, GH, w_ih, I, 1, w_ih_p)                 # W[k, i] = W_ih[k, i]
    if nthreads <= 1:
        if fused:
            partials = paged
        if L.apart:
            steps = paged + (n_chunks(B, WG_GROUP) * ps if fused else 0)
        layer_rows_backward(L, 0, B, truncate, w_hh_p, w_ih_p, c0, z, c, h,
                            grad_h, grad_c, delta, steps, d_hn, delta_c,
                            d_h0, d_c0, d_x, x, h0, partials, ps)
    else:
        rc = backward_chunk(L, nthreads, sizeof(floating))
        if nc:
            # each chunk carries its errors in its own pages, copied to dh0
            # (and dc0) at the end (two threads updating one page every
            # step slow each other down)
            cs = carry_stride(L, rc, sizeof(floating))
        if fused:
            partials = paged + nc * n_chunks(B, rc) * cs
        if L.apart:
            # each chunk's rows of delta_hh(t) on pages of their own
            ss = step_stride(L, rc, sizeof(floating))
            steps = (paged + nc * n_chunks(B, rc) * cs
                     + (n_chunks(B, WG_GROUP) * ps if fused else 0))
        for ch in prange(n_chunks(B, rc), schedule="static", chunksize=1,
                         num_threads=nthreads):
            fpenv = cbptt_ftz_enter()
            ch_h = carries + nc * ch * cs if nc else d_h0 + <long> ch * rc * H
            ch_c = ch_h + cs if nc == 2 else NULL
            layer_rows_backward(L, ch * rc, chunk_end(ch, B, rc), truncate,
                                w_hh_p, w_ih_p, c0, z, c, h, grad_h, grad_c,
                                delta, steps + ch * ss if L.apart else NULL,
                                d_hn, delta_c, ch_h, ch_c, d_x, x,
                                h0, partials + ch * rc // WG_GROUP * ps
                                if fused else NULL, ps)
            if nc:
                memcpy(d_h0 + <long> ch * rc * H, ch_h,
                       (chunk_end(ch, B, rc) - ch * rc) * H * sizeof(floating))
            if nc == 2:
                memcpy(d_c0 + <long> ch * rc * H, ch_c,
                       (chunk_end(ch, B, rc) - ch * rc) * H * sizeof(floating))
            cbptt_ftz_leave(fpenv)
    if fused:
        add_partials(<long> M * GH, n_chunks(B, WG_GROUP), ps, partials,
                     grads_t)
    elif nthreads <= 1:
        weight_grads_t(0, GH, L.T, B, I, Hr, GH, x, h0, h, delta, d_hn,
                       grads_t, delta_p)
    else:
        # columns of the result in parts (grad_part), taken dynamically
        for ch in prange(n_chunks(GH, part), schedule="dynamic", chunksize=1,
                         num_threads=nthreads):
            fpenv = cbptt_ftz_enter()
            weight_grads_t(ch * part, chunk_end(ch, GH, part),
                           L.T, B, I, Hr, GH, x, h0, h, delta, d_hn,
                           grads_t,
                           delta_p + <long> threadid() * GRAD_K_BLOCK * part)
            cbptt_ftz_leave(fpenv)
    if d_hn != NULL:
        # db_hh = db_ih but in the last block (weight_grads_t)
        memcpy(grads_t + <long> (Hr + I + 1) * GH,
               grads_t + <long> (Hr + I) * GH, (GH - Hr) * sizeof(floating))
    if Hr:
        transpose_into(GH, Hr, grads_t, d_w_hh)
    transpose_into(GH, I, grads_t + <long> Hr * GH, d_w_ih)
    memcpy(d_bias, grads_t + <long> (Hr + I) * GH, GH * sizeof(floating))
    if d_bias_hh != NULL:
        memcpy(d_bias_hh, grads_t + <long> (Hr + I + 1) * GH,
               GH * sizeof(floating))


# ---------------------------------------------------------------------------
# Runs: the workspace, then the kernel without the GIL
# ---------------------------------------------------------------------------

cdef inline void *work_alloc(long n_line, long n_paged,
                             int itemsize) except NULL:
    """One block for a call's workspace: n_line elements from a cache line,
    then n_paged from a page (LINE_BYTES and PAGE_BYTES more to find
    them)."""
    cdef void *mem = malloc(<size_t> (n_line + n_paged) * itemsize
                            + LINE_BYTES + (PAGE_BYTES if n_paged else 0))
    if mem == NULL:
        raise MemoryError(f"cannot allocate the layer's workspace of "
                          f"{(n_line + n_paged) * itemsize} bytes")
    return mem


cdef inline int layer_forward_run(
        const Layer *L, const floating *x,
        const floating *w_ih, const floating *w_hh, const floating *bias,
        const floating *bias_hh, const floating *h0, const floating *c0,
        floating *z, floating *c, floating *h, bint keep) except -1:
    """layer_forward on checked arrays, with its workspace, on the threads
    the policy gives the layer."""
    cdef unsigned int fpenv
    cdef int nthreads = layer_threads(L, sizeof(floating))
    cdef long n_work = forward_work(L, sizeof(floating))
    cdef long n_paged = forward_paged(L, nthreads, sizeof(floating))
    cdef void *mem = work_alloc(n_work, n_paged, sizeof(floating))
    cdef floating *w = line_start(<floating *> mem)
    with nogil:
        fpenv = cbptt_ftz_enter()
        layer_forward(L, nthreads, x, w_ih, w_hh, bias, bias_hh, h0, c0, z,
                      c, h, w, page_start(w + n_work) if n_paged else NULL,
                      keep)
        cbptt_ftz_leave(fpenv)
    free(mem)
    return 0


cdef inline int layer_backward_run(
        const Layer *L, int truncate, const floating *x,
        const floating *w_ih, const floating *w_hh, const floating *h0,
        const floating *c0, const floating *z, const floating *c,
        const floating *h, const floating *grad_h, const floating *grad_c,
        floating *delta, floating *delta_hn, floating *delta_c,
        floating *d_w_ih, floating *d_w_hh, floating *d_bias,
        floating *d_bias_hh, floating *d_h0, floating *d_c0,
        floating *d_x) except -1:
    """layer_backward on checked arrays, with its workspace, on the threads
    the policy gives the layer."""
    cdef unsigned int fpenv
    cdef int nthreads = layer_threads(L, sizeof(floating))
    cdef long n_work = backward_work(L, nthreads, sizeof(floating))
    cdef long n_paged = backward_paged(L, nthreads, sizeof(floating))
    cdef void *mem = work_alloc(n_work, n_paged, sizeof(floating))
    cdef floating *w = line_start(<floating *> mem)
    with nogil:
        fpenv = cbptt_ftz_enter()
        layer_backward(L, truncate, nthreads, x, w_ih, w_hh, h0, c0, z, c, h,
                       grad_h, grad_c, delta, delta_hn, delta_c, d_w_ih,
                       d_w_hh, d_bias, d_bias_hh, d_h0, d_c0, d_x, w,
                       page_start(w + n_work) if n_paged else NULL)
        cbptt_ftz_leave(fpenv)
    free(mem)
    return 0
