"""Memory: repeated forward/backward cycles leave resident memory flat.

Each cycle allocates a few hundred kB (the cached states, the gradients), so a
leak of even one buffer per cycle would add over 60 MB in 200 cycles; the
bound allows a generous 25 MB for allocator noise. (One BLAS thread keeps the
run short on a busy machine; the code paths are the same.) Resident memory is read
from /proc (Linux); tracemalloc checks the same on every platform for
memory that NumPy and Python allocate.
"""
import gc
import os
import tracemalloc

import numpy as np
import pytest

threadpool_limits = pytest.importorskip(
    "threadpoolctl", reason="threadpoolctl not installed").threadpool_limits

from cbptt import (cec_backward, cec_forward, lstm_backward, lstm_forward,
                   rnn_backward, rnn_forward)

MB = 1 << 20
CYCLES = 200


def rss_bytes():
    """Resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cycle_factory(layer, dtype):
    rng = np.random.default_rng(0)
    B, T, I, H = 64, 10, 16, 64          # h alone is 320 kB in float64
    rows = 4 * H if layer == "lstm" else H
    x = rng.standard_normal((B, T, I)).astype(dtype)
    w_ih = (rng.standard_normal((rows, I)) * 0.2).astype(dtype)
    w_hh = (rng.standard_normal((rows, H)) * 0.2).astype(dtype)
    b = np.zeros(rows, dtype)
    g = rng.standard_normal((B, T, H)).astype(dtype)

    def cycle():
        if layer == "elman":
            grads = rnn_backward(rnn_forward(x, w_ih, w_hh, b), g, truncate=10)
        elif layer == "cec":
            grads = cec_backward(cec_forward(x, w_ih, b), g)
        else:
            grads = lstm_backward(lstm_forward(x, w_ih, w_hh, b), g, grad_c=g)
        w_ih[...] -= 1e-6 * grads.weight_ih       # an SGD step, as in training
        return grads

    return cycle


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                    reason="resident memory is read from Linux /proc")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer's quarantine keeps freed memory resident")
@pytest.mark.parametrize("layer", ["elman", "cec", "lstm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_backward_cycles_leave_rss_flat(layer, dtype):
    cycle = _cycle_factory(layer, dtype)
    with threadpool_limits(1):           # fast on a busy machine; same code paths
        for _ in range(30):              # warm up allocator and caches
            cycle()
        gc.collect()
        before = rss_bytes()
        for _ in range(CYCLES):
            cycle()
        gc.collect()
        grown = rss_bytes() - before
    assert grown < 25 * MB, f"RSS grew by {grown / MB:.1f} MB over {CYCLES} cycles"


@pytest.mark.parametrize("layer", ["elman", "cec", "lstm"])
def test_forward_backward_cycles_leave_traced_memory_flat(layer):
    cycle = _cycle_factory(layer, np.float64)
    cycle()
    tracemalloc.start()
    try:
        with threadpool_limits(1):
            for _ in range(10):
                cycle()
            gc.collect()
            before, _ = tracemalloc.get_traced_memory()
            for _ in range(50):
                cycle()
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1 * MB, f"traced memory grew by {(after - before) / MB:.2f} MB"


# -- the estimators -------------------------------------------------------------

import warnings                                                  # noqa: E402

import cbptt                                                     # noqa: E402


@pytest.mark.skipif(not hasattr(cbptt, "RNNRegressor"),
                    reason="the estimators are not in this build")
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                    reason="resident memory is read from Linux /proc")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer's quarantine keeps freed memory resident")
def test_fit_predict_cycles_leave_rss_flat():
    """200 fit/predict cycles of a small model: each allocates its network,
    optimizer state and work buffers anew."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 20, 4))
    y = X.sum(axis=(1, 2))
    labels = np.where(y > 0, "a", "b")

    def cycle(k):
        cls = cbptt.RNNRegressor if k % 2 else cbptt.RNNClassifier
        est = cls(hidden_layer_sizes=(16,), cell=("lstm", "elman")[k % 2],
                  max_iter=2, random_state=k)
        est.fit(X, y if k % 2 else labels)
        est.predict(X)

    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for k in range(20):
            cycle(k)
        gc.collect()
        before = rss_bytes()
        for k in range(200):
            cycle(k)
        gc.collect()
        grown = rss_bytes() - before
    assert grown < 25 * MB, f"RSS grew by {grown / MB:.1f} MB over 200 fit/predict cycles"


def _fit_peak(est, X, y):
    """Bytes tracemalloc saw at the peak of ``est.fit(X, y)`` above the start
    (the inputs already allocated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[:40], y[:40])                  # the buffer pool, imports
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            est.fit(X, y)
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()


@pytest.mark.parametrize("kind", ["array", "list", "sequence_targets"])
def test_fit_keeps_no_second_copy_of_the_training_set(kind):
    """fit reads the caller's arrays: a 3-D float array and per-step targets
    are not copied (peak a small share of X; the per-step targets of one
    feature were copied three to four times, 4.1x X), and a list costs its
    padded array once (no mask the size of X on top: it was 1.19x)."""
    rng = np.random.default_rng(0)
    F = 1 if kind == "sequence_targets" else 8
    X = rng.standard_normal((2000, 60, F))
    y = rng.standard_normal(2000)
    est = cbptt.RNNRegressor(hidden_layer_sizes=(4,), cell="elman",
                             max_iter=1, random_state=0)
    if kind == "sequence_targets":
        y = rng.standard_normal((2000, 60))
        est.set_params(output="sequence")
    if kind == "list":
        X = [x[:30 + i % 31] for i, x in enumerate(X)]
    padded = 2000 * 60 * F * 8                   # X as one float64 array
    peak = _fit_peak(est, X, y)
    bound = 1.1 if kind == "list" else 0.5
    assert peak < bound * padded, (
        f"fit's peak {peak / MB:.1f} MB with X of {padded / MB:.1f} MB")


def test_early_stopping_scores_padded_sequence_targets_in_place():
    """The validation rows are gathered from X (no copy); their longest
    sequence may be shorter than X's (this raised IndexError when the rows
    were copied and trimmed but the targets were not)."""
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((30 if i == 0 else 5, 2)) for i in range(50)]
    y = [x[:, 0].cumsum() for x in X]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = cbptt.RNNRegressor(hidden_layer_sizes=(4,), output="sequence",
                                 early_stopping=True, max_iter=3,
                                 random_state=0).fit(X, y)
    assert len(est.validation_scores_) == 3
    assert np.isfinite(est.validation_scores_).all()
