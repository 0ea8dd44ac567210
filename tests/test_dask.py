"""cbptt on Dask: searches under joblib's Dask backend, streamed training,
block-wise prediction and scoring, thread limits inside workers.

One module-scoped ``distributed.LocalCluster`` of 2 worker processes with 2
threads each, on loopback (started with Dask's default ``spawn``: GNU
OpenMP is not fork-safe), serves every test that needs separate processes
(memory of the process holding the model, the workers' own thread limits);
a cluster of 2 in-process workers (``processes=False``) serves the test of
the helpers' own thread limit.

* ``GridSearchCV`` under ``joblib.parallel_config(backend="dask")`` gives
  the ``cv_results_`` of the sequential search (scores, params).
* A search of 4 candidates on 2 workers of 2 threads runs one kernel thread
  per task: the kernel's thread count read inside each task (the scorer is
  a probe) times the concurrent tasks stays within the cores.
* ``fit_incremental`` over 4 blocks reaches the R^2 of an in-memory fit on
  the sine task; the peak memory traced in the process holding the model is
  below two blocks' bytes (the whole set is four).
* ``predict`` equals in-memory ``predict`` exactly; ``score`` equals
  in-memory ``score`` (R^2 pooled correctly, unlike a mean of per-block R^2).
* Bad input raises clear errors and leaves a fitted estimator unchanged.
"""
import os
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip(
    "distributed", reason="distributed not installed (pip install 'cbptt[dask]')")

import cloudpickle                                             # noqa: E402
import dask                                                    # noqa: E402
import dask.array as da                                        # noqa: E402
import dask.bag as db                                          # noqa: E402
import joblib                                                  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.linear_model import SGDRegressor                  # noqa: E402
from sklearn.metrics import r2_score                           # noqa: E402
from sklearn.model_selection import GridSearchCV               # noqa: E402

import cbptt.dask as cdask                                     # noqa: E402
from cbptt import RNNClassifier, RNNRegressor                  # noqa: E402
from cbptt._layer import threads_used as _threads_used          # noqa: E402
from cbptt.datasets import make_sine                           # noqa: E402
from conftest import interrupting_batches                      # noqa: E402

# The scorer probes below run in the worker processes: pickle this module's
# functions by value (the workers cannot import the test module by name).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

N_WORKERS, THREADS_PER_WORKER = 2, 2


@pytest.fixture(scope="module")
def client():
    """Two worker processes of two threads each, on loopback."""
    environ = dict(os.environ)      # the nanny sets OMP_NUM_THREADS=1 here too
    cluster = distributed.LocalCluster(
        n_workers=N_WORKERS, threads_per_worker=THREADS_PER_WORKER,
        processes=True, host="127.0.0.1", dashboard_address=None)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()
        os.environ.clear()
        os.environ.update(environ)


@pytest.fixture(scope="module")
def threaded_client():
    """Two in-process workers of two threads each (they share this process's
    OpenMP default)."""
    cluster = distributed.LocalCluster(
        n_workers=N_WORKERS, threads_per_worker=THREADS_PER_WORKER,
        processes=False, dashboard_address=":0",
        worker_dashboard_address=None)
    c = distributed.Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _quiet():
    warnings.simplefilter("ignore", ConvergenceWarning)


# -- searches ------------------------------------------------------------------

def _kernel_threads(estimator, X, y):
    """A scorer that reports the threads cbptt's kernels would use in this
    task (a layer of 1024 sequences of 256 units: the OpenMP limit)."""
    return float(_threads_used("elman", 1, 1024, 256, 8))


def test_grid_search_on_dask_matches_sequential(client):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 12, 2))
    y = X[:, -3:, 0].sum(axis=1)
    grid = {"hidden_layer_sizes": [(4,), (8,)], "cell": ["lstm", "elman"]}
    search = GridSearchCV(RNNRegressor(max_iter=4, learning_rate_init=0.02,
                                       random_state=0), grid, cv=2,
                          scoring={"r2": "r2", "threads": _kernel_threads},
                          refit="r2")
    with warnings.catch_warnings():
        _quiet()
        seq = search.fit(X, y).cv_results_
        with joblib.parallel_config(backend="dask"):
            dist = GridSearchCV(search.estimator, grid, cv=2, n_jobs=-1,
                                scoring=search.scoring,
                                refit="r2").fit(X, y).cv_results_
    assert dist["params"] == seq["params"]
    for key in ("split0_test_r2", "split1_test_r2", "mean_test_r2",
                "rank_test_r2"):
        np.testing.assert_array_equal(dist[key], seq[key], err_msg=key)
    # Each of the 4 candidates x 2 folds ran in a worker task; at most
    # N_WORKERS * THREADS_PER_WORKER of them at once. Their kernel threads
    # together must not exceed the machine's cores (or one per task).
    per_task = np.concatenate([dist["split0_test_threads"],
                               dist["split1_test_threads"]])
    slots = N_WORKERS * THREADS_PER_WORKER
    cores = len(os.sched_getaffinity(0))
    assert per_task.max() * slots <= max(slots, cores), (
        f"{slots} concurrent tasks each ran {per_task.max():.0f} kernel "
        f"threads on {cores} cores")


def test_helper_tasks_limit_threads_on_threaded_workers(threaded_client):
    """In-process workers see this process's OpenMP default; the helpers'
    block tasks limit it to each task's share of the cores."""
    def bare():
        return _threads_used("elman", 1, 1024, 256, 8)

    def limited():
        with cdask._TaskThreads():
            return _threads_used("elman", 1, 1024, 256, 8), cdask.task_threads()

    default = threaded_client.submit(bare, pure=False).result()
    if default < 2:
        pytest.skip("the OpenMP default here is 1 thread: nothing to limit")
    got, share = threaded_client.submit(limited, pure=False).result()
    slots = N_WORKERS * THREADS_PER_WORKER
    cores = len(os.sched_getaffinity(0))
    assert share == max(1, min(default, cores // slots))
    assert got == share and got * slots <= max(slots, cores)
    assert cdask.task_threads() is None          # not inside a task


# -- streamed training -----------------------------------------------------------

def _sine_blocks(n_blocks, n_per_block, T):
    """X (n, T, 1), y (n,) made on the workers, one seeded block each."""
    xs, ys = [], []
    for i in range(n_blocks):
        d = dask.delayed(make_sine, nout=2)(n_per_block, T, output="last",
                                            random_state=i)
        xs.append(da.from_delayed(d[0], (n_per_block, T, 1), np.float64))
        ys.append(da.from_delayed(d[1], (n_per_block,), np.float64))
    return da.concatenate(xs), da.concatenate(ys)


def test_streamed_training_matches_in_memory_quality_in_bounded_memory(client):
    n_blocks, n_b, T = 4, 10000, 40
    dX, dy = _sine_blocks(n_blocks, n_b, T)
    X_test, y_test = make_sine(400, T, output="last", random_state=99)
    params = dict(hidden_layer_sizes=(8,), cell="elman",
                  learning_rate_init=0.01, batch_size=64, random_state=0)
    block_bytes = n_b * T * 8
    with warnings.catch_warnings():
        _quiet()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            streamed = cdask.fit_incremental(RNNRegressor(**params), dX, dy,
                                             epochs=4, client=client)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        X, y = client.compute([dX, dy], sync=True)
        in_memory = RNNRegressor(max_iter=4, **params).fit(X, y)
    assert streamed.n_iter_ == 4 and len(streamed.loss_curve_) == 4
    r2_streamed = streamed.score(X_test, y_test)
    r2_memory = in_memory.score(X_test, y_test)
    assert r2_memory > 0.9, "the task is not learnt: the comparison says nothing"
    assert r2_streamed >= r2_memory - 0.02, (r2_streamed, r2_memory)
    # The process holding the model held one block at a time (plus about
    # 1.2 MB of client and model state here): under two blocks' bytes, where
    # the whole set is n_blocks blocks.
    assert peak < 2 * block_bytes, (
        f"peak {peak / 1e6:.2f} MB with blocks of {block_bytes / 1e6:.2f} MB")


def test_early_stopping_on_held_out_blocks(client):
    dX, dy = _sine_blocks(4, 200, 20)
    est = RNNRegressor(hidden_layer_sizes=(8,), cell="elman", max_iter=50,
                       learning_rate_init=0.01, early_stopping=True,
                       validation_fraction=0.25, n_iter_no_change=1, tol=0.5,
                       random_state=0)
    with warnings.catch_warnings():
        _quiet()
        cdask.fit_incremental(est, dX, dy, epochs=10, client=client)
    # tol=0.5: no epoch beats the first by 0.5, so the count exceeds
    # n_iter_no_change=1 after epoch 3, and the best epoch's weights stay.
    assert est.n_iter_ == 3 and len(est.validation_scores_) == 3
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.early_stopping is True            # the parameter is restored
    held = [b for b in range(4)]                 # the held-out block scores it
    X, y = client.compute([dX, dy], sync=True)
    scores = [est.score(X[200 * b:200 * (b + 1)], y[200 * b:200 * (b + 1)])
              for b in held]
    assert any(abs(s - est.best_validation_score_) < 1e-12 for s in scores)


@pytest.mark.parametrize("how,at,kept,where", [
    ("signal", 3, 3, "in epoch 1 at block 2 of 4"),   # inside block 2
    ("raise", 3, 2, "in epoch 1 at block 2 of 4"),    # block 2 kept nothing
    ("signal", 10, 10, "in epoch 2 at block 1 of 4"),
])
def test_keyboard_interrupt_stops_at_the_interrupted_block(monkeypatch, how,
                                                           at, kept, where):
    """Ctrl-C during one block's partial_fit stops fit_incremental there: no
    further block or epoch is trained, the weights of the last finished
    update are kept, the model predicts, and one warning says so."""
    import signal
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a non-default handler in this test process")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 8, 3))
    y = X.sum(axis=(1, 2))
    dX, dy = da.from_array(X, chunks=10), da.from_array(y, chunks=10)
    est = RNNRegressor(hidden_layer_sizes=(6,), batch_size=5, tol=0.0,
                       random_state=0)               # 2 mini-batches a block
    after = interrupting_batches(monkeypatch, at, how)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        cdask.fit_incremental(est, dX, dy, epochs=5)
    said = [str(w.message) for w in record
            if "KeyboardInterrupt" in str(w.message)]
    assert said == [
        f"fit_incremental was interrupted by KeyboardInterrupt {where}; the "
        "model keeps the weights of the last finished update "
        f"({(kept - 1) // 8} complete epoch(s) counted in n_iter_). Call "
        "fit_incremental with warm_start=True to train on."]
    assert len(after) == kept                  # no further block was trained
    np.testing.assert_array_equal(est._params, after[-1])
    assert est.n_iter_ == len(est.loss_curve_) == (kept - 1) // 8
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    pred = est.predict(X)
    assert pred.shape == y.shape and np.isfinite(pred).all()


def test_keyboard_interrupt_while_validating_counts_complete_epochs(
        monkeypatch):
    """Ctrl-C while an epoch is scored on the validation data: that epoch
    is not counted, so n_iter_, loss_curve_ and validation_scores_ keep
    one entry per complete epoch, and the last update's weights stay."""
    X = np.random.default_rng(3).standard_normal((40, 8, 3))
    dX, dy = da.from_array(X, chunks=10), da.from_array(X.sum(axis=(1, 2)),
                                                        chunks=10)
    est = RNNRegressor(hidden_layer_sizes=(6,), batch_size=5, tol=0.0,
                       early_stopping=True, n_iter_no_change=100,
                       random_state=0)
    after = interrupting_batches(monkeypatch, None, None)   # counts them
    original, calls = cdask._validation_score, []

    def validation_score(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(cdask, "_validation_score", validation_score)
    with pytest.warns(UserWarning, match="while scoring epoch 2 on the "
                      r"validation data; .*\(1 complete epoch"):
        cdask.fit_incremental(est, dX, dy, epochs=5)
    assert est.n_iter_ == len(est.loss_curve_) == len(est.validation_scores_) == 1
    assert len(after) == 2 * 3 * 2             # 2 epochs of 3 blocks of 2
    np.testing.assert_array_equal(est._params, after[-1])
    assert est.early_stopping is True


def test_keyboard_interrupt_before_any_update_rolls_back(monkeypatch):
    X = np.random.default_rng(3).standard_normal((40, 8, 3))
    dX, dy = da.from_array(X, chunks=10), da.from_array(X.sum(axis=(1, 2)),
                                                        chunks=10)
    est = RNNRegressor(hidden_layer_sizes=(6,), batch_size=5, random_state=0)
    interrupting_batches(monkeypatch, 1, "raise")
    with pytest.raises(KeyboardInterrupt):
        cdask.fit_incremental(est, dX, dy, epochs=2)
    assert not hasattr(est, "n_iter_") and not hasattr(est, "_params")


def test_classifier_streamed_with_explicit_validation(client):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 15, 1))
    y = np.where(X.sum(axis=(1, 2)) > 0, "up", "down")
    dX = da.from_array(X[:320], chunks=80)
    est = RNNClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.02,
                        random_state=0)
    with warnings.catch_warnings():
        _quiet()
        cdask.fit_incremental(est, dX, y[:320], epochs=6,
                              validation=(X[320:], y[320:]), client=client)
    assert list(est.classes_) == ["down", "up"]
    assert est.best_validation_score_ == max(est.validation_scores_) > 0.8
    assert est.score(X[320:], y[320:]) == est.best_validation_score_


def test_padded_classifier_sequences_predict_like_in_memory():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6, 2))
    X[30:, 4:] = np.nan                          # the last block is padded
    y = np.where(np.nan_to_num(X[:, :, 0]) > 0, "p", "n")
    with warnings.catch_warnings():
        _quiet()
        est = RNNClassifier(hidden_layer_sizes=(4,), output="sequence",
                            max_iter=2, random_state=0).fit(X, y)
    got = cdask.predict(est, da.from_array(X, chunks=10))
    want = est.predict(X)
    assert got.dtype == want.dtype == object
    assert got.compute().tolist() == want.tolist()
    assert want[35, 5] is None


def test_ragged_bag_sequence_to_sequence(client):
    X, y = make_sine(120, 20, random_state=0)     # output="sequence" targets
    lengths = 8 + np.arange(120) % 12
    seqs = [x[:n] for x, n in zip(X, lengths)]
    targets = [t[:n] for t, n in zip(y, lengths)]
    bX = db.from_sequence(seqs, npartitions=4)
    by = db.from_sequence(targets, npartitions=4)
    est = RNNRegressor(hidden_layer_sizes=(8,), output="sequence",
                       learning_rate_init=0.01, random_state=0)
    with warnings.catch_warnings():
        _quiet()
        cdask.fit_incremental(est, bX, by, epochs=3, client=client)
        # An empty partition is skipped (it shifts the block order only).
        padded = db.from_delayed(bX.to_delayed() + [dask.delayed([])])
        padded_y = db.from_delayed(by.to_delayed() + [dask.delayed([])])
        same = cdask.fit_incremental(
            RNNRegressor(**est.get_params()), padded, padded_y, epochs=3,
            client=client)
    got = cdask.predict(est, bX).compute()
    # Exactly what predicting each partition in memory gives; the whole
    # list is padded to another length (other product shapes), so to rounding.
    parts = [est.predict(list(p)) for p in bX.to_delayed()
             for p in [p.compute()]]
    want = [a for p in parts for a in p]
    assert len(got) == len(want) == len(seqs)
    for a, b, c in zip(got, want, est.predict(seqs)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-13, atol=1e-15)
    assert abs(cdask.score(est, bX, by, client=client)
               - est.score(seqs, targets)) < 1e-12
    assert same.n_iter_ == 3 and np.isfinite(same.loss_curve_).all()


# -- prediction and scoring ------------------------------------------------------

@pytest.mark.parametrize("kind", ["regressor-last", "regressor-multi",
                                  "regressor-sequence", "classifier-last",
                                  "classifier-sequence", "univariate-2d"])
def test_blockwise_predict_and_score_equal_in_memory(client, kind):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((90, 10, 2))
    output = "sequence" if kind.endswith("sequence") else "last"
    if kind == "univariate-2d":
        X = X[:, :, 0]
        y = X[:, -1] + 3.0 * (np.arange(90) >= 45)
    elif kind == "regressor-last":
        # blocks of very different means: a mean of per-block R^2 is wrong
        y = X[:, -1, 0] + 3.0 * (np.arange(90) >= 45)
    elif kind == "regressor-multi":
        y = np.c_[X[:, -1, 0], X[:, :, 1].sum(axis=1)]
    elif kind == "regressor-sequence":
        y = np.cumsum(X[:, :, 0], axis=1)
    elif kind == "classifier-last":
        y = np.where(X[:, :, 0].sum(axis=1) > 0, "a", "b")
    else:
        y = (np.cumsum(X[:, :, 0], axis=1) > 0).astype(int)
    cls = RNNClassifier if kind.startswith("classifier") else RNNRegressor
    with warnings.catch_warnings():
        _quiet()
        est = cls(hidden_layer_sizes=(6,), output=output, max_iter=3,
                  random_state=0).fit(X, y)
    dX = da.from_array(X, chunks=30)
    pred = cdask.predict(est, dX)
    assert isinstance(pred, da.Array) and pred.chunks[0] == (30, 30, 30)
    got = pred.compute()
    want = est.predict(X)
    assert got.shape == want.shape
    if kind == "classifier-sequence":     # object: a block may hold pads
        assert got.dtype == object and want.dtype.kind == "i"
        assert got.tolist() == want.tolist()
    else:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    s = cdask.score(est, dX, da.from_array(y, chunks=45), client=client)
    assert abs(s - est.score(X, y)) < 1e-12
    # An empty chunk predicts nothing and adds nothing to the score.
    dX0 = da.from_array(X, chunks=((40, 0, 50),) + X.shape[1:])
    got0 = cdask.predict(est, dX0).compute()
    assert got0.tolist() == want.tolist()
    assert abs(cdask.score(est, dX0, y, client=client) - s) < 1e-12
    if kind == "regressor-last":
        per_block = np.mean([r2_score(y[i:i + 30], want[i:i + 30])
                             for i in range(0, 90, 30)])
        assert abs(per_block - s) > 0.05       # the wrong statistic differs


# -- bad input -------------------------------------------------------------------

def test_bad_input_gives_clear_errors(threaded_client):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6, 2))
    y = X[:, -1, 0]
    dX = da.from_array(X, chunks=10)
    est = RNNRegressor(hidden_layer_sizes=(4,), random_state=0)
    fit = cdask.fit_incremental
    with pytest.raises(TypeError, match="dask.array.Array"):
        fit(est, X, y, epochs=1)
    with pytest.raises(ValueError, match=r"chunked along axis 1.*rechunk"):
        fit(est, da.from_array(X, chunks=(10, 3, 2)), y, epochs=1)
    with pytest.raises(ValueError, match="30 samples|40 samples"):
        fit(est, dX, y[:30], epochs=1)
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        fit(est, dX, y, epochs=0)
    with pytest.raises(ValueError, match=r"validation=1.5.*\(0, 1\)"):
        fit(est, dX, y, epochs=1, validation=1.5)
    with pytest.raises(TypeError, match="validation must be None"):
        fit(est, dX, y, epochs=1, validation="last")
    with pytest.raises(ValueError, match="leaves none to train on"):
        fit(est, da.from_array(X, chunks=40), y, epochs=1, validation=0.5)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fit(est, dX[dX[:, 0, 0] > 0], y, epochs=1)
    with pytest.raises(ValueError, match="dimensions"):
        fit(est, da.from_array(X[..., None], chunks=10), y, epochs=1)
    with pytest.raises(TypeError, match="cbptt RNNRegressor or RNNClassifier"):
        fit(SGDRegressor(), dX, y, epochs=1)
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        fit(est, dX, y, epochs=1, client="tcp://127.0.0.1:8786")
    with pytest.raises(TypeError, match="y must be a Dask or NumPy array"):
        fit(est, dX, db.from_sequence(list(y), npartitions=4), epochs=1)
    with pytest.raises(ValueError, match="y is None"):
        fit(est, dX, None, epochs=1)
    bag = db.from_sequence(list(X), npartitions=2)
    with pytest.raises(TypeError, match="y must be a Dask bag"):
        fit(est, bag, y, epochs=1)
    with pytest.raises(ValueError, match="partitions"):
        fit(est, bag, db.from_sequence(list(y), npartitions=3), epochs=1)
    with pytest.raises(ValueError, match="every block is empty"):
        fit(est, db.from_delayed([dask.delayed([])]),
            db.from_delayed([dask.delayed([])]), epochs=1)
    with pytest.raises(NotFittedError):
        cdask.predict(est, dX)
    with pytest.raises(NotFittedError):
        cdask.score(est, dX, y)

    # A failing block leaves the fitted model as it was.
    with warnings.catch_warnings():
        _quiet()
        est.fit(X, y)
    before = est.predict(X), list(est.loss_curve_), est.n_iter_
    bad_y = da.from_array(np.r_[y[:30], np.full(10, np.nan)], chunks=10)
    with pytest.raises(ValueError, match="NaN|infinity"):
        fit(est, dX, bad_y, epochs=2, client=threaded_client)
    np.testing.assert_array_equal(est.predict(X), before[0])
    assert est.loss_curve_ == before[1] and est.n_iter_ == before[2]
    with pytest.raises(TypeError, match="dask.array.Array"):
        cdask.predict(est, X)
    with pytest.raises(ValueError, match="rechunk"):
        cdask.predict(est, da.from_array(X, chunks=(10, 6, 1)))


def _overflowing(n=60, row=47):
    """A fitted regressor, sine data with one overflowing step at ``row``
    (step 3), and the targets."""
    X, y = make_sine(n, 8, output="last", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = RNNRegressor(hidden_layer_sizes=(4,), max_iter=2,
                           random_state=0).fit(X, y)
    X = X.copy()
    X[row, 3] = 1e308
    return est, X, y


def test_overflow_names_the_sample_by_its_row_in_x():
    """predict and score on Dask data name the overflowing sample as the
    in-memory methods do: its row of X (the 8th of the third block, row
    47), not its place in a block; a bag names its partition."""
    est, X, y = _overflowing()
    want = "X overflows the network in float64: at sample 47, step 3"
    with pytest.raises(ValueError, match=want):
        est.predict(X)                                  # the reference
    dX = da.from_array(X, chunks=20)
    with pytest.raises(ValueError, match=want):
        cdask.predict(est, dX).compute()
    with pytest.raises(ValueError, match=want):
        cdask.score(est, dX, y)
    bag = db.from_sequence(list(X), npartitions=3)      # 20 per partition
    with pytest.raises(ValueError, match="at sample 7 of partition 2, step 3"):
        cdask.predict(est, bag).compute()


def test_fit_incremental_names_the_overflowing_row_and_rolls_back():
    est, X, y = _overflowing()
    before = est._params.copy()
    dX, dy = da.from_array(X, chunks=20), da.from_array(y, chunks=20)
    with pytest.raises(ValueError, match="at sample 47, step 3.*training on "
                       "it would fit garbage"):
        cdask.fit_incremental(est.set_params(warm_start=True), dX, dy,
                              epochs=1)
    np.testing.assert_array_equal(est._params, before)
    # an overflowing sample of the validation data: X_val's own row
    Xv = X[40:].copy()
    with pytest.raises(ValueError, match="X_val overflows the network in "
                       "float64: at sample 7, step 3"):
        cdask.fit_incremental(est, da.from_array(X[:40], chunks=20),
                              da.from_array(y[:40], chunks=20), epochs=1,
                              validation=(da.from_array(Xv, chunks=10),
                                          y[40:]))
    np.testing.assert_array_equal(est._params, before)


def test_score_names_the_non_finite_target_by_its_row():
    """cbptt.dask.score with NaN in y names its row of y, as the in-memory
    score does, instead of returning NaN."""
    est, X, y = _overflowing()
    X = X.copy()
    X[47, 3] = 0.0
    y = y.copy()
    y[45] = np.nan
    want = "y contains NaN at sample 45; expected a finite target"
    with pytest.raises(ValueError, match=want):
        est.score(X, y)                                 # the reference
    with pytest.raises(ValueError, match=want):
        cdask.score(est, da.from_array(X, chunks=20),
                    da.from_array(y, chunks=20))


def test_docstring_examples():
    import doctest
    with warnings.catch_warnings():
        _quiet()
        result = doctest.testmod(cdask, verbose=False)
    assert result.attempted >= 8 and result.failed == 0


def test_import_without_dask_says_what_to_install(monkeypatch):
    monkeypatch.delitem(sys.modules, "cbptt.dask")
    for name in ("dask", "dask.array", "dask.bag", "dask.delayed"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'pip install "cbptt\[dask\]"'):
        __import__("cbptt.dask")


# -- the "More data, more machines" page ------------------------------------------

def test_more_data_page_runs(tmp_path, monkeypatch, capsys):
    """Every block of docs/user_guide/more_data.md runs as
    written, in order in one namespace, against the local cluster it starts
    (the Ray block only where Ray is installed)."""
    from pathlib import Path
    import re
    page = Path(__file__).resolve().parent.parent / "docs" / "user_guide"
    section = (page / "more_data.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 4
    try:
        import ray                                          # noqa: F401
    except ImportError:
        blocks = [b for b in blocks if "import ray" not in b
                  and "from ray" not in b]
    monkeypatch.chdir(tmp_path)                  # the first block writes .npy
    environ = dict(os.environ)                   # the nanny sets OMP_NUM_THREADS
    namespace = {}
    try:
        with warnings.catch_warnings():
            _quiet()
            warnings.filterwarnings("ignore", message="Port .* is already in use")
            for i, block in enumerate(blocks):
                exec(compile(block, f"more_data.md block {i}", "exec"),
                     namespace)
    finally:
        for name in ("client", "cluster"):
            if name in namespace:
                namespace[name].close()
        if "ray" in sys.modules:
            sys.modules["ray"].shutdown()
        os.environ.clear()
        os.environ.update(environ)
    out = capsys.readouterr().out
    assert "R^2:" in out and "'cell'" in out
    est = namespace["est"]
    assert est.best_validation_score_ > 0.9      # the streamed model learnt
