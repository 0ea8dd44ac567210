"""aligned_empty's pool of large buffers: a buffer is handed out again only
when nothing refers to it any more (no array, no view), a miss lets the free
buffers go, the pool stays within its limit, and results do not depend on
it (bitwise the same with and without, and a live result is never
overwritten by a later call)."""
import gc

import numpy as np
import pytest

import cbptt
from cbptt import _scan
from cbptt._validation import PAGE_BYTES, aligned_empty

BIG = (100, 32, 64)              # 800 KiB in float32: pooled


@pytest.fixture(autouse=True)
def fresh_pool():
    limit = _scan._pool_clear()
    yield
    _scan._pool_clear(limit)


def test_a_free_buffer_is_reused_an_held_one_never():
    a = aligned_empty(BIG, np.float32)
    addr = a.ctypes.data
    assert addr % PAGE_BYTES == 0
    b = aligned_empty(BIG, np.float32)          # a is alive: new memory
    assert b.ctypes.data != addr
    view = a[3:, 1]
    del a
    gc.collect()
    c = aligned_empty(BIG, np.float32)          # a view holds it
    assert c.ctypes.data != addr
    del view
    d = aligned_empty(BIG, np.float32)          # free now: the same memory
    assert d.ctypes.data == addr
    assert d.flags.writeable and d.flags.c_contiguous
    d[...] = 2.0
    assert (d == 2.0).all() and not np.shares_memory(d, b)
    assert not np.shares_memory(d, c)


def test_read_only_results_give_writable_buffers():
    a = aligned_empty(BIG, np.float64)
    addr = a.ctypes.data
    a.setflags(write=False)
    del a
    b = aligned_empty(BIG, np.float64)
    assert b.ctypes.data == addr and b.flags.writeable


def test_other_shapes_of_the_same_size_reuse_and_a_miss_frees():
    a = aligned_empty(BIG, np.float32)
    addr = a.ctypes.data
    del a
    b = aligned_empty((32, 100, 64), np.float32)  # same bytes, other shape
    assert b.ctypes.data == addr and b.shape == (32, 100, 64)
    del b
    n_before, _ = _scan._pool_state()
    c = aligned_empty((50, 32, 64), np.float32)   # no buffer of that size:
    n_after, nbytes = _scan._pool_state()         # the free one is let go
    assert n_before == 1 and n_after == 1
    assert nbytes == c.base.nbytes


def test_small_arrays_are_not_pooled():
    aligned_empty((10, 10), np.float64)
    assert _scan._pool_state() == (0, 0)


def test_the_pool_stays_within_its_limit():
    _scan._pool_clear(3 * 1024 * 1024)
    held = [aligned_empty(BIG, np.float32) for _ in range(6)]  # 6 x 800 KiB
    n, nbytes = _scan._pool_state()
    assert n == 3 and nbytes <= 3 * 1024 * 1024
    assert len({a.ctypes.data for a in held}) == 6             # all distinct
    _scan._pool_clear(0)                                       # off
    aligned_empty(BIG, np.float32)
    assert _scan._pool_state() == (0, 0)


def _epoch(model, dtype, n=3):
    """n forward and backward passes; every array of every result."""
    rng = np.random.default_rng(1)
    B, T, I, H = 8, 50, 5, 64
    G = 4 if model == "lstm" else 1
    w = [rng.uniform(-.2, .2, (G * H, I)).astype(dtype),
         rng.uniform(-.2, .2, (G * H, H)).astype(dtype),
         rng.uniform(-.2, .2, G * H).astype(dtype)]
    fwd, bwd = ((cbptt.lstm_forward, cbptt.lstm_backward) if model == "lstm"
                else (cbptt.rnn_forward, cbptt.rnn_backward))
    kept = []
    for _ in range(n):
        x = rng.standard_normal((B, T, I)).astype(dtype)
        res = fwd(x, *w)
        g = rng.standard_normal(res.h.shape).astype(dtype)
        grads = bwd(res, g)
        kept.append((res, grads, {k: np.array(v) for k, v in vars(res).items()
                                  if isinstance(v, np.ndarray)},
                     {k: np.array(v) for k, v in grads._asdict().items()
                      if v is not None}))
    return kept


@pytest.mark.parametrize("model", ["elman", "lstm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_are_the_same_with_and_without_the_pool(model, dtype):
    on = _epoch(model, dtype)
    limit = _scan._pool_clear(0)
    off = _epoch(model, dtype)
    _scan._pool_clear(limit)
    for (res, grads, res_copy, grads_copy), (_, _, res_off, grads_off) in zip(
            on, off):
        # every live result still holds what it was computed to hold
        for k, v in res_copy.items():
            assert getattr(res, k).tobytes() == v.tobytes(), k
            assert v.tobytes() == res_off[k].tobytes(), k
        for k, v in grads_copy.items():
            assert getattr(grads, k).tobytes() == v.tobytes(), k
            assert v.tobytes() == grads_off[k].tobytes(), k


def test_a_training_loop_reuses_its_buffers():
    rng = np.random.default_rng(2)
    B, T, I, H = 16, 60, 4, 64
    w = [rng.uniform(-.2, .2, s) for s in ((4 * H, I), (4 * H, H), (4 * H,))]
    x = rng.standard_normal((T, B, I))
    g = np.zeros((T, B, H))
    g[-1] = 1.0
    seen = []
    for _ in range(6):
        res = cbptt.lstm_forward(x, *w, batch_first=False)
        grads = cbptt.lstm_backward(res, g, input_grad=False)
        seen.append({res._gates_tm.ctypes.data, grads.delta.ctypes.data})
    # from the third step on, only buffers the loop had already
    assert seen[3] | seen[4] | seen[5] <= seen[0] | seen[1] | seen[2]


def test_release_buffers_lets_the_free_ones_go():
    kept = aligned_empty(BIG, np.float32)
    dropped = aligned_empty(BIG, np.float64)
    addr = dropped.ctypes.data
    del dropped
    cbptt.release_buffers()
    assert _scan._pool_state() == (0, 0)
    assert kept.flags.writeable              # a held array is untouched
    again = aligned_empty(BIG, np.float64)
    assert _scan._pool_state()[0] == 1
    del again, addr
