"""Threads: the kernels release the GIL, are safe to call concurrently, leave
each thread's floating-point environment as they found it, and their BLAS
threads obey threadpoolctl limits.

* Concurrent forward/backward calls on several threads give the results of
  sequential calls (bit for bit with one BLAS thread, to 1e-12 without).
* While one thread runs a long kernel, another Python thread keeps running:
  the largest pause of a ticking thread during the call is a small fraction
  of the call (it would be the whole call if the GIL were held).
* Under ``threadpool_limits(1)`` (BLAS and OpenMP alike) no thread but the
  caller gains CPU time during GEMM-heavy calls (per-thread CPU times from
  /proc); with two threads allowed, a worker does (the control that shows
  the probe works). The Elman kernels split a batch over OpenMP threads;
  BLAS has its own.
"""
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cbptt import (cec_backward, cec_forward, lstm_backward, lstm_forward,
                   rnn_backward, rnn_forward)

threadpoolctl = pytest.importorskip("threadpoolctl",
                                    reason="threadpoolctl not installed")


def _problem(seed, layer, B=4, T=30, I=6, H=16, dtype=np.float64):
    rng = np.random.default_rng(seed)
    rows = 4 * H if layer == "lstm" else H
    a = dict(x=rng.standard_normal((B, T, I)),
             weight_ih=rng.standard_normal((rows, I)) * 0.3,
             bias=rng.standard_normal(rows) * 0.1,
             h0=rng.standard_normal((B, H)) * 0.5)
    if layer != "cec":
        a["weight_hh"] = rng.standard_normal((rows, H)) * 0.3
    g = rng.standard_normal((B, T, H))
    return {k: v.astype(dtype) for k, v in a.items()}, g.astype(dtype)


LAYERS = {"elman": (rnn_forward, rnn_backward),
          "cec": (cec_forward, cec_backward),
          "lstm": (lstm_forward, lstm_backward)}


def _run(job):
    """Forward and backward of one problem; every output as a tuple."""
    layer, seed, dtype = job
    fwd, bwd = LAYERS[layer]
    args, g = _problem(seed, layer, dtype=dtype)
    res = fwd(**args)
    return (np.array(res.h),) + tuple(np.array(a) for a in bwd(res, g, truncate=7))


JOBS = [(layer, seed, dtype) for seed in range(6) for layer in LAYERS
        for dtype in (np.float32, np.float64)]


@pytest.mark.parametrize("blas_threads", [1, None])
def test_concurrent_calls_match_sequential(blas_threads):
    with threadpoolctl.threadpool_limits(blas_threads):
        expected = [_run(j) for j in JOBS]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _ in range(3):
                got = list(pool.map(_run, JOBS))
                for job, e, g in zip(JOBS, expected, got):
                    for a, b in zip(e, g):
                        if blas_threads == 1:
                            np.testing.assert_array_equal(a, b, err_msg=str(job))
                        else:
                            tol = 1e-5 if job[2] == np.float32 else 1e-12
                            np.testing.assert_allclose(a, b, rtol=tol, atol=tol,
                                                       err_msg=str(job))


def _subnormals_survive():
    """True unless this thread flushes subnormals to zero (FTZ/DAZ left on)."""
    tiny = np.array([5e-324, 1e-310])
    return bool(np.all(tiny * 1.0 > 0) and np.all(tiny / 2.0 >= 0))


def test_kernels_restore_each_threads_floating_point_environment():
    assert _subnormals_survive()

    def work(job):
        _run(job)
        return _subnormals_survive()

    with ThreadPoolExecutor(max_workers=3) as pool:
        assert all(pool.map(work, JOBS))
    assert _subnormals_survive()


def _largest_pause_of_another_thread(call):
    """Run ``call`` while a second Python thread records timestamps; return
    the longest interval inside the call with no timestamp, and the call's
    duration."""
    stamps, stop, started = [], threading.Event(), threading.Event()

    def ticker():
        started.set()
        while not stop.is_set():
            stamps.append(time.perf_counter())

    th = threading.Thread(target=ticker)
    th.start()
    started.wait()
    time.sleep(0.02)
    try:
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
    finally:                       # never leave the ticker spinning
        stop.set()
        th.join()
    points = [t0] + [s for s in stamps if t0 <= s <= t1] + [t1]
    return max(b - a for a, b in zip(points, points[1:])), t1 - t0


def _long_problem(layer):
    """A problem whose kernel runs for a few tenths of a second."""
    H = 384 if layer == "elman" else 192
    return _problem(0, layer, B=32, T=400, I=8, H=H)


@pytest.mark.parametrize("layer", ["elman", "lstm"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_long_kernel_lets_other_python_threads_run(layer, direction):
    fwd, bwd = LAYERS[layer]
    args, g = _long_problem(layer)
    with threadpoolctl.threadpool_limits(1):
        res = fwd(**args)
        call = (lambda: fwd(**args)) if direction == "forward" else (lambda: bwd(res, g))
        pause, duration = _largest_pause_of_another_thread(call)
    assert duration > 0.05, "the problem is too small to tell"
    assert pause < 0.5 * duration, (
        f"another thread stood still for {pause:.3f} s of a {duration:.3f} s "
        "call: the GIL was held")


def _thread_cpu_ticks():
    """{thread id: user + system CPU time in clock ticks} from /proc."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:          # the thread ended meanwhile
            continue
        out[int(tid)] = int(fields[11]) + int(fields[12])
    return out


def _cpu_of_other_threads_during(call):
    me = threading.get_native_id()
    before = _thread_cpu_ticks()
    call()
    after = _thread_cpu_ticks()
    mine = after[me] - before.get(me, 0)
    others = sum(t - before.get(tid, 0) for tid, t in after.items() if tid != me)
    return mine, others


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"),
                    reason="per-thread CPU times need Linux /proc")
def test_blas_and_openmp_threads_respect_threadpoolctl_limits():
    from scipy.linalg import cython_blas   # noqa: F401  (the BLAS cbptt calls)
    args, g = _problem(0, "elman", B=16, T=300, I=64, H=256)
    largs, lg = _problem(0, "lstm", B=16, T=60, I=64, H=96)

    def call():
        for _ in range(2):
            rnn_backward(rnn_forward(**args), g)
            lstm_backward(lstm_forward(**largs), lg)

    with threadpoolctl.threadpool_limits(1):
        info = threadpoolctl.threadpool_info()
        assert any("scipy" in i["filepath"] for i in info), info
        assert all(i["num_threads"] == 1 for i in info), info
        time.sleep(0.3)                  # let earlier workers go idle
        mine, others = _cpu_of_other_threads_during(call)
    assert mine >= 10, "the call is too short to measure"
    assert others <= 0.05 * mine + 2, (
        f"other threads used {others} ticks while the caller used {mine} "
        "under a limit of one thread")
    if (os.cpu_count() or 1) < 2:
        return
    with threadpoolctl.threadpool_limits(2):
        if not any(i["num_threads"] == 2 for i in threadpoolctl.threadpool_info()):
            return                       # built without threads
        mine2, others2 = _cpu_of_other_threads_during(call)
    assert others2 > 0, "the probe saw no worker thread even with two allowed"


# -- the estimators -------------------------------------------------------------

import warnings                                                  # noqa: E402

import cbptt                                                     # noqa: E402

needs_estimators = pytest.mark.skipif(
    not hasattr(cbptt, "RNNRegressor"),
    reason="the estimators (RNNRegressor/RNNClassifier) are not in this build")


def _est_problem(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((48, 12, 3))
    return X, X[:, -3:].sum(axis=(1, 2))


def _fit(seed, cell):
    X, y = _est_problem(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cbptt.RNNRegressor(hidden_layer_sizes=(16,), cell=cell, max_iter=8,
                                  random_state=seed).fit(X, y)


@needs_estimators
@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_predict_from_several_threads_matches_sequential(cell):
    est = _fit(0, cell)
    inputs = [_est_problem(s)[0] for s in range(8)]
    with threadpoolctl.threadpool_limits(1):
        expected = [est.predict(X) for X in inputs]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _ in range(3):
                for e, g in zip(expected, pool.map(est.predict, inputs)):
                    np.testing.assert_array_equal(e, g)


@needs_estimators
@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_estimators_fitted_in_parallel_threads_do_not_disturb_each_other(cell):
    with threadpoolctl.threadpool_limits(1):
        expected = [_fit(s, cell) for s in (1, 2)]
        with ThreadPoolExecutor(max_workers=2) as pool:
            got = list(pool.map(lambda s: _fit(s, cell), (1, 2)))
    for e, g in zip(expected, got):
        assert e.n_iter_ == g.n_iter_
        np.testing.assert_array_equal(e.loss_curve_, g.loss_curve_)
        for de, dg in zip(e.coefs_, g.coefs_):
            for k in de:
                np.testing.assert_array_equal(de[k], dg[k], err_msg=k)
