"""The layer driver's thread policy: how many threads a layer gets, and why.

Contract
--------
* Every layer run (``layer_forward_run``, ``layer_backward_run`` of
  ``_layer.pxd``) takes its thread count from :c:func:`layer_threads`; no
  cell module chooses one. The count depends on the layer's sizes and cell
  kind, the dtype, the OpenMP limit (``OMP_NUM_THREADS``, threadpoolctl; 1
  in a process forked after a threaded kernel, see ``src/cbptt_fpenv.h``)
  and the cap of ``cbptt.set_num_threads``, never on the data. Results are
  bitwise identical for any count, so the policy is a matter of speed only.
* The rule, per cell kind (``THREAD_RULES``, data, not code)::

      limit = min(OpenMP limit, set_num_threads cap)
      one thread      if limit < 2                          (WHY_LIMIT)
                      or work < min_work(dtype, cores)      (WHY_WORK)
                      or B < 2 * ROW_CHUNK                  (WHY_ROWS)
      else            min(limit, B // ROW_CHUNK) if rows_cap, else limit

  with work = B*G*H*H (a step's recurrent multiply-adds) for the Elman cell
  and T*B*G*H*H (a call's) for the gated cells: a second thread must pay
  for its wake-up once per call (no barrier per step), which a long
  sequence amortises. The CEC has no recurrent product and stays on one
  thread. The thresholds are lower on real cores (every CPU the process
  may use a core of its own, ``_set_real_cores`` at import from the
  topology) than on SMT siblings or an unknown topology, where a second
  thread shares a core's FP units. They and the measurements behind them
  are in
  BENCHMARKS.md (benchmarks/thread_policy.py reruns them).
* The ``def`` functions are the policy's introspection (``cbptt.show_config``
  and the tests) and its benchmark and user overrides.
"""
import math

from libc.math cimport INFINITY

from cbptt._simd cimport cbptt_fork_guard, cbptt_forked, cbptt_max_threads

# A process forked from this one runs the kernels on one thread (see
# cbptt_fork_guard in src/cbptt_fpenv.h: GNU OpenMP is not fork-safe); this
# module's limit is the one every layer run reads.
cbptt_fork_guard()

cdef extern from *:
    """
    #ifdef _OPENMP
    static int cbptt_openmp_version(void) { return _OPENMP; }
    #else
    static int cbptt_openmp_version(void) { return 0; }
    #endif
    """
    int cbptt_openmp_version() noexcept nogil

# The cells by name, as cbptt.show_config and threads_used take them.
CELLS = {"elman": CELL_ELMAN, "lstm": CELL_LSTM, "cec": CELL_CEC,
         "gru": CELL_GRU}
_WHY = {WHY_LIMIT: "limit", WHY_WORK: "work", WHY_ROWS: "rows",
        WHY_PAYS: "pays"}

# The rules, indexed by CellKind. On SMT siblings (or an unknown topology)
# the Elman cell gets threads from a step's work 32^3 (B = 32 at H = 32),
# the gated cells from a call's work 2e6 (H = 16 at T = 100, B = 32 for the
# LSTM); on real cores a second thread competes for no core's FP units and
# the Elman cell's pays from 16384 (H = 24 at B = 32), in every run; the
# gated cells' gains below 2e6 were not consistent, so their rule is the
# same. Measurements: BENCHMARKS.md, "Thread policy".
cdef ThreadRule THREAD_RULES[4]
THREAD_RULES[<int> CELL_ELMAN] = ThreadRule(
    per_call=0, rows_cap=1, min_work_f=32 * 32 * 32, min_work_d=32 * 32 * 32,
    core_min_work_f=16384, core_min_work_d=16384)
THREAD_RULES[<int> CELL_LSTM] = ThreadRule(
    per_call=1, rows_cap=0, min_work_f=2e6, min_work_d=2e6,
    core_min_work_f=2e6, core_min_work_d=2e6)
THREAD_RULES[<int> CELL_GRU] = THREAD_RULES[<int> CELL_LSTM]
THREAD_RULES[<int> CELL_CEC] = ThreadRule(
    per_call=1, rows_cap=0, min_work_f=INFINITY, min_work_d=INFINITY,
    core_min_work_f=INFINITY, core_min_work_d=INFINITY)

# Whether every CPU this process may use is a real core (set at import by
# cbptt._threads from the topology; 0 until then and where it is unknown).
cdef int real_cores = 0
# cbptt.set_num_threads's cap on every layer's threads; 0: none.
cdef int num_threads_cap = 0
# The count the last layer run used (a diagnostic for the tests; with
# concurrent calls, one of theirs).
cdef int last_threads = 0


cdef inline double layer_work(const Layer *L,
                              const ThreadRule *rule) noexcept nogil:
    """The multiply-adds of the recurrent product the rule counts: B*G*H*H
    a step, times T for a call."""
    cdef double work = <double> L.B * L.G * L.H * L.H
    return work * L.T if rule.per_call else work


cdef inline int thread_limit() noexcept nogil:
    """The most threads any layer may use: the OpenMP limit (1 in a forked
    child or without OpenMP), capped by set_num_threads."""
    cdef int n = cbptt_max_threads()
    if num_threads_cap > 0 and num_threads_cap < n:
        n = num_threads_cap
    return n


cdef inline double min_work(const ThreadRule *rule,
                            int itemsize) noexcept nogil:
    """The least work for threads: the dtype's, on real cores or not."""
    if real_cores:
        return rule.core_min_work_f if itemsize == 4 else rule.core_min_work_d
    return rule.min_work_f if itemsize == 4 else rule.min_work_d


cdef int policy_threads(const Layer *L, int itemsize,
                        int *why) noexcept nogil:
    """The threads the rule of L's cell kind gives L in floats of
    ``itemsize`` bytes; ``why`` gets the ThreadWhy."""
    cdef const ThreadRule *rule = &THREAD_RULES[L.kind]
    cdef double least = min_work(rule, itemsize)
    cdef int n = thread_limit()
    if n < 2:
        why[0] = WHY_LIMIT
        return 1
    if layer_work(L, rule) < least:
        why[0] = WHY_WORK
        return 1
    if L.B < 2 * ROW_CHUNK:
        why[0] = WHY_ROWS
        return 1
    why[0] = WHY_PAYS
    if rule.rows_cap and L.B // ROW_CHUNK < n:
        return L.B // ROW_CHUNK
    return n


cdef int layer_threads(const Layer *L, int itemsize) noexcept nogil:
    """The threads a layer run uses (policy_threads), noted for the tests."""
    global last_threads
    cdef int why
    cdef int n = policy_threads(L, itemsize, &why)
    last_threads = n
    return n


cdef int cell_kind(str cell) except -1:
    kind = CELLS.get(cell) if isinstance(cell, str) else None
    if kind is None:
        raise ValueError(f"unknown cell {cell!r}; use one of "
                         f"{', '.join(repr(c) for c in CELLS)}")
    return kind


cdef Layer sized_layer(cell, int T, int B, int H, int itemsize,
                       bint forget_gate) except *:
    if T < 1 or B < 1 or H < 1:
        raise ValueError(f"sizes T={T}, B={B}, H={H}; expected all >= 1")
    if itemsize != 4 and itemsize != 8:
        raise ValueError(f"itemsize={itemsize}; use 4 (float32) or 8 "
                         "(float64)")
    return make_layer(cell_kind(cell), 0, forget_gate, T, B, 1, H)


def threads_used(cell, int T, int B, int H, int itemsize=4,
                 bint forget_gate=True):
    """The threads a layer of ``cell`` ("elman", "lstm", "cec", "gru") runs
    on for B sequences of T steps and H units, in float32 (``itemsize`` 4)
    or float64 (8), under the limits in force now."""
    cdef Layer L = sized_layer(cell, T, B, H, itemsize, forget_gate)
    cdef int why
    return policy_threads(&L, itemsize, &why)


def thread_policy(cell, int T, int B, int H, int itemsize=4,
                  bint forget_gate=True):
    """:func:`threads_used` with the figures behind it: a dict of
    ``threads``, ``why`` ("limit", "work", "rows", "pays"), ``work`` and
    ``min_work`` (multiply-adds; ``per_call`` says a call's or a step's),
    ``G``, ``limit`` (the most threads any layer may use now), ``rows_cap``
    and ``row_chunk``."""
    cdef Layer L = sized_layer(cell, T, B, H, itemsize, forget_gate)
    cdef int why
    cdef int n = policy_threads(&L, itemsize, &why)
    cdef const ThreadRule *rule = &THREAD_RULES[L.kind]
    return {"threads": n, "why": _WHY[why], "work": layer_work(&L, rule),
            "min_work": min_work(rule, itemsize),
            "real_cores": bool(real_cores), "per_call": bool(rule.per_call), "rows_cap": bool(rule.rows_cap),
            "G": L.G, "limit": thread_limit(), "row_chunk": ROW_CHUNK}


def openmp_limit():
    """The OpenMP limit the kernels see: omp_get_max_threads(), 1 in a
    process forked after a threaded kernel, 1 without OpenMP."""
    return cbptt_max_threads()


def openmp_version():
    """The _OPENMP date the kernels were built with (e.g. 201511), or 0
    (built without OpenMP: every layer on one thread)."""
    return cbptt_openmp_version()


def forked():
    """Whether this process was forked from one that had imported cbptt
    (its kernels then run on one thread)."""
    return bool(cbptt_forked())


def _set_num_threads(int n):
    """The cap of cbptt.set_num_threads (0: none); returns the previous."""
    global num_threads_cap
    if n < 0:
        raise ValueError(f"_set_num_threads: n={n}; expected >= 0")
    old = num_threads_cap
    num_threads_cap = n
    return old


def max_layer_threads():
    """The most threads any layer may use now: the OpenMP limit capped by
    set_num_threads."""
    return thread_limit()


def _num_threads_cap():
    """The cap of cbptt.set_num_threads (0: none)."""
    return num_threads_cap


def _last_threads():
    """Test twin: the threads the last layer run used (0 before any)."""
    return last_threads


def _set_real_cores(bint yes):
    """Whether every CPU this process may use is a core of its own (the
    lower thresholds); returns the previous setting."""
    global real_cores
    old = bool(real_cores)
    real_cores = yes
    return old


def _set_parallel_min_work(cell, double work_f, double work_d,
                           core_work_f=None, core_work_d=None):
    """Benchmark twin: the work (the rule's, per step or per call) from which
    layers of ``cell`` use threads, for float32 and float64, on SMT
    siblings and (``core_work_*``, by default the same) on real cores;
    returns the previous four, to restore them. 0 gives threads to every
    layer with two row chunks, inf to none. The CEC stays on one thread."""
    cdef int kind = cell_kind(cell)
    if kind == CELL_CEC:
        raise ValueError("_set_parallel_min_work: the CEC runs on one thread")
    core_work_f = work_f if core_work_f is None else core_work_f
    core_work_d = work_d if core_work_d is None else core_work_d
    for w in (work_f, work_d, core_work_f, core_work_d):
        if math.isnan(w) or w < 0:
            raise ValueError("_set_parallel_min_work: expected work >= 0")
    cdef ThreadRule *rule = &THREAD_RULES[kind]
    old = (rule.min_work_f, rule.min_work_d, rule.core_min_work_f,
           rule.core_min_work_d)
    rule.min_work_f, rule.min_work_d = work_f, work_d
    rule.core_min_work_f, rule.core_min_work_d = core_work_f, core_work_d
    return old
