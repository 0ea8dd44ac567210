"""Dask helpers: train on data that does not fit in memory, predict and score
where the data lives.

Contract
--------
* Optional: importing this module without Dask raises ``ImportError`` with
  the install command (``pip install "cbptt[dask]"``). Nothing else in cbptt
  imports it.
* Input is a Dask array ``(n_samples, n_timesteps, n_features)`` (or
  ``(n_samples, n_timesteps)`` of univariate series) chunked along samples
  only, with ``y`` a Dask or NumPy array of as many samples (re-chunked like
  ``X``); or a Dask bag of sequences ``(n_timesteps_i, n_features)`` (ragged
  lengths), with ``y`` a bag of as many partitions. A block is one chunk of
  the array or one partition of the bag.
* :func:`fit_incremental` trains with ``partial_fit`` in the calling process,
  the one that holds the model: one block at a time is materialised there
  (gathered from the workers while the next block is computed on them);
  blocks are shuffled every epoch with the estimator's ``random_state``.
* :func:`predict` and :func:`score` ship the (small) fitted model to the
  blocks: each block is predicted where it lives, and only predictions
  (``predict``) or a few sums per block (``score``) travel. ``score`` combines
  the blocks' sums into the statistic itself (R^2 from the pooled total and
  residual sums of squares, accuracy from the pooled counts), not a mean of
  per-block scores.
* Threads: a block task limits cbptt's OpenMP and BLAS threads to its share
  of the worker's cores (see :func:`task_threads`), never above the limit it
  found.
"""
import contextlib
import copy
import numbers
import os
import warnings

try:
    import dask
    import dask.array as da
    import dask.bag as db
    from dask.delayed import delayed
except ImportError as exc:                                  # pragma: no cover
    raise ImportError(
        "cbptt.dask needs Dask (dask[array] and distributed); install them "
        'with: pip install "cbptt[dask]"') from exc

import numpy as np
from sklearn.base import is_classifier
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_info, threadpool_limits

from cbptt._estimators import _R2_SCALE_ABOVE, _BaseRNN, interrupted_message
from cbptt._network import OverflowInX, restated
from cbptt._sequences import NonFiniteTargets, check_real_numbers

__all__ = ["fit_incremental", "predict", "score", "task_threads"]


# ------------------------------------------------------------------ threads --
def task_threads():
    """The threads cbptt's kernels may use in the current Dask task.

    A worker runs ``nthreads`` tasks at once; on a machine whose cores are
    shared by all the task threads of the workers in this process, each task
    gets ``max(1, cores // task_threads_in_process)``, and never more than
    the OpenMP limit already in force (a worker started by a nanny has
    ``OMP_NUM_THREADS=1`` unless configured otherwise).

    Returns
    -------
    n : int or None
        The share, or None outside a Dask worker (nothing to share).

    Examples
    --------
    >>> from cbptt.dask import task_threads
    >>> task_threads() is None                  # not inside a Dask task
    True
    """
    try:
        from distributed import get_worker
        from distributed.worker import Worker
        worker = get_worker()
    except (ImportError, ValueError):
        return None
    slots = sum(w.state.nthreads for w in list(Worker._instances)
                if w.status.name in ("running", "paused", "init"))
    slots = max(slots, worker.state.nthreads, 1)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:                                   # pragma: no cover
        cores = os.cpu_count() or 1
    share = max(1, cores // slots)
    limits = [i["num_threads"] for i in threadpool_info()
              if i["user_api"] == "openmp"]
    return min([share] + limits)


class _TaskThreads:
    """``with _TaskThreads():`` limits OpenMP and BLAS to :func:`task_threads`
    inside a Dask task (no limit elsewhere). OpenMP's limit belongs to the
    calling thread; OpenBLAS's is process-wide, so tasks running at once in
    one process share it."""

    def __enter__(self):
        n = task_threads()
        self._limits = None if n is None else threadpool_limits(limits=n)
        return self

    def __exit__(self, *exc):
        if self._limits is not None:
            self._limits.restore_original_limits()


# ------------------------------------------------------------------- input --
def _check_estimator(estimator, fitted):
    if not isinstance(estimator, _BaseRNN):
        raise TypeError(
            f"estimator must be a cbptt RNNRegressor or RNNClassifier, got "
            f"{type(estimator).__name__}")
    if fitted:
        check_is_fitted(estimator)


def _check_array_x(X):
    if X.ndim not in (2, 3):
        raise ValueError(
            f"X has {X.ndim} dimensions with shape {X.shape}; expected a Dask "
            "array (n_samples, n_timesteps, n_features) or (n_samples, "
            "n_timesteps)")
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            "X has unknown chunk sizes along samples; call "
            "X.compute_chunk_sizes() first")
    split = [axis for axis in range(1, X.ndim) if len(X.chunks[axis]) > 1]
    if split:
        spec = ", ".join(f"{a}: -1" for a in range(1, X.ndim))
        raise ValueError(
            f"X is chunked along axis {split[0]} (chunks {X.chunks[split[0]]}); "
            "a block must hold whole sequences: chunk along samples only, "
            f"e.g. X.rechunk({{{spec}}})")


def _blocks(X, y, name="X"):
    """``[(x_block, y_block, n_samples or None)]``: lazy blocks of the input."""
    if isinstance(X, da.Array):
        _check_array_x(X)
        xs = [X.blocks[i] for i in range(X.numblocks[0])]
        if y is None:
            return [(b, None, n) for b, n in zip(xs, X.chunks[0])]
        if isinstance(y, db.Bag):
            raise TypeError(
                f"{name} is a Dask array, so y must be a Dask or NumPy array "
                "of as many samples, got a Dask bag")
        if not hasattr(y, "shape"):
            y = np.asarray(y)
        if y.ndim < 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"y has shape {y.shape} but {name} has {X.shape[0]} samples; "
                "expected one target (or one per step) per sample")
        if not isinstance(y, da.Array):
            y = da.from_array(y, chunks=(X.chunks[0],) + y.shape[1:])
        else:
            y = y.rechunk((X.chunks[0],) + y.shape[1:])
        return list(zip(xs, [y.blocks[i] for i in range(y.numblocks[0])],
                        X.chunks[0]))
    if isinstance(X, db.Bag):
        xs = X.to_delayed()
        if y is None:
            return [(b, None, None) for b in xs]
        if not isinstance(y, db.Bag):
            raise TypeError(
                f"{name} is a Dask bag, so y must be a Dask bag of targets "
                f"with as many partitions, got {type(y).__name__}")
        if y.npartitions != X.npartitions:
            raise ValueError(
                f"y has {y.npartitions} partitions but {name} has "
                f"{X.npartitions}; the targets of a partition must be in the "
                "partition of the same number")
        return list(zip(xs, y.to_delayed(), [None] * len(xs)))
    raise TypeError(
        f"{name} must be a dask.array.Array chunked along samples or a "
        f"dask.bag.Bag of sequences, got {type(X).__name__}; fit in-memory "
        "data with estimator.fit")


def _origins(X):
    """Where each block of ``X`` starts: the row of its first sample (an
    array), or ``("partition", k)`` (a bag: its partitions' lengths are not
    known without a pass over them)."""
    if isinstance(X, da.Array):
        return [int(o) for o in np.cumsum((0,) + X.chunks[0][:-1])]
    return [("partition", k) for k in range(X.npartitions)]


@contextlib.contextmanager
def _named(origin, data="X"):
    """An :class:`OverflowInX` or :class:`NonFiniteTargets` raised for one
    block (its sample counted within the block) restated with the sample's
    place in ``data``: its row, or its number in its bag partition."""
    try:
        yield
    except OverflowInX as e:
        raise restated(e, n=_place(e.parts["n"], origin), data=data) from None
    except NonFiniteTargets as e:
        raise e.restated(n=_place(e.parts["n"], origin)) from None


def _place(n, origin):
    """Sample ``n`` of the block starting at ``origin`` (see :func:`_origins`)
    as its place in the whole data."""
    if isinstance(origin, int):
        return n + origin
    return f"{n} of partition {origin[1]}"


def _client(client):
    """The distributed client to use: ``client``, else the default one if any
    (None: Dask's local scheduler)."""
    if client is not None:
        from distributed import Client
        if not isinstance(client, Client):
            raise TypeError(f"client must be a distributed.Client or None, "
                            f"got {type(client).__name__}")
        return client
    try:
        from distributed import default_client
        return default_client()
    except (ImportError, ValueError):
        return None


def _as_block_y(yb, estimator):
    """A bag partition's targets as ``partial_fit``/``score`` take them."""
    if isinstance(yb, list) and estimator.output == "last":
        return np.asarray(yb)
    return yb


# ---------------------------------------------------------------- training --
def _classes(y_parts, client):
    """Every label of the targets, computed on the workers."""
    @delayed
    def labels(part):
        if isinstance(part, list):
            part = [np.ravel(v) for v in part] or [np.empty(0)]
            return np.unique(np.concatenate(part))
        return np.unique(np.ravel(part))

    parts = [labels(p) for p in y_parts]
    found = client.gather(client.compute(parts)) if client else \
        dask.compute(*parts)
    return np.unique(np.concatenate(found))


def _check_validation(validation, estimator, n_blocks):
    """(number of held-out blocks, explicit (X, y) or None)."""
    if validation is None:
        if not estimator.early_stopping:
            return 0, None
        fraction = estimator.validation_fraction
    elif isinstance(validation, tuple) and len(validation) == 2:
        return 0, validation
    elif isinstance(validation, numbers.Real) and not isinstance(validation, bool):
        fraction = float(validation)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation={validation!r}: a fraction of the "
                             "blocks must be in (0, 1)")
    else:
        raise TypeError(
            "validation must be None, a fraction of the blocks in (0, 1) or "
            f"a tuple (X_val, y_val), got {type(validation).__name__}")
    k = max(1, int(round(fraction * n_blocks)))
    if k >= n_blocks:
        raise ValueError(
            f"holding out {k} of the {n_blocks} block(s) for validation "
            "leaves none to train on; use more blocks (rechunk X, or more "
            "bag partitions) or pass validation=(X_val, y_val)")
    return k, None


def _validation_score(estimator, val, client, origins=None):
    """The score on the validation data: held-out blocks of X (whose
    ``origins`` in X name an overflowing sample), or the given X_val."""
    X_val, y_val = val
    data = "X" if origins is not None else "X_val"
    if isinstance(X_val, (da.Array, db.Bag)):
        return _score(estimator, X_val, y_val, client, origins, data)
    with _named(0, data):
        return estimator.score(X_val, y_val)


def _materialise(block, client):
    """Start computing one block: a future on the workers, or a thunk."""
    xb, yb, _ = block
    if client is not None:
        return client.compute([xb, yb])
    return (xb, yb)


def _gather(started, client):
    if client is not None:
        return client.gather(started)
    return dask.compute(*started)


def fit_incremental(estimator, X, y, *, epochs, validation=None, client=None,
                    classes=None):
    """Train ``estimator`` with ``partial_fit`` over the blocks of Dask data.

    Each epoch passes once over the training blocks in an order shuffled
    with the estimator's ``random_state``; each block is one
    :meth:`partial_fit` call (one epoch over the block, in mini-batches of
    ``batch_size``). Only the block being trained on is materialised in this
    process; the next one is computed on the workers meanwhile.

    Parameters
    ----------
    estimator : RNNRegressor or RNNClassifier
        Trained in place and returned. It starts from new weights unless
        ``warm_start=True`` (then it continues the fitted model), as
        :meth:`fit` does. ``early_stopping``, ``validation_fraction``,
        ``n_iter_no_change`` and ``tol`` keep their meaning (see
        Notes); ``max_iter`` is replaced by ``epochs``.
    X : dask.array.Array or dask.bag.Bag
        ``(n_samples, n_timesteps, n_features)`` or ``(n_samples,
        n_timesteps)`` chunked along samples only (every chunk holds whole
        sequences), or a bag of ``(n_timesteps_i, n_features)`` arrays.
    y : dask.array.Array, ndarray or dask.bag.Bag
        The targets, as :meth:`fit` takes them: with an array ``X``, an
        array of ``X.shape[0]`` rows (re-chunked like ``X``); with a bag, a
        bag of one target (or one per step) per sequence, partitioned like
        ``X``.
    epochs : int
        The most passes over the training blocks.
    validation : None, float or tuple (X_val, y_val), default=None
        Data for early stopping. None: hold out
        ``estimator.validation_fraction`` of the blocks when
        ``estimator.early_stopping`` is True, else train on every block.
        A float in (0, 1): hold out that fraction of the blocks (at least
        one, drawn with ``random_state``) and stop early on them. A tuple:
        stop early on that data (Dask collections are scored on the
        workers, block by block; in-memory data in this process).
    client : distributed.Client or None, default=None
        Where the blocks are computed; None uses the default client if one
        exists, else Dask's local scheduler.
    classes : array-like or None, default=None
        For a classifier: every label. None computes them from ``y`` (one
        pass over ``y`` on the workers; with ``output="sequence"`` also the
        labels at padded steps of a Dask array).

    Returns
    -------
    estimator : RNNRegressor or RNNClassifier
        The trained estimator. ``n_iter_`` counts the epochs of this call,
        ``loss_curve_`` has one entry per epoch (the blocks' losses weighted
        by their samples), and with validation ``validation_scores_`` and
        ``best_validation_score_`` are set and the best epoch's weights are
        restored.

    Raises
    ------
    TypeError
        If the estimator is not a cbptt estimator, ``X`` is not a Dask array
        or bag, ``y`` does not match it, or ``validation``/``client`` have
        the wrong type.
    ValueError
        If ``X`` is chunked along time or features, has unknown chunk sizes,
        ``y`` has another number of samples, ``epochs < 1``, or validation
        would leave no block to train on; when the network overflows on a
        training or validation sample (as :meth:`RNNRegressor.fit` refuses
        it), named by its row of ``X`` (or of ``X_val``), or for a bag by
        its place in its partition. The estimator is then unchanged.

    See Also
    --------
    predict, score : Block-wise prediction and scoring.
    RNNRegressor.partial_fit : One epoch over in-memory data.

    Notes
    -----
    Stopping follows :meth:`fit`: with validation, an epoch whose score does
    not beat the best by ``tol`` counts against ``n_iter_no_change``, and
    training stops when the count exceeds it; the best epoch's weights are
    kept. Without validation the same holds for the epoch's training loss
    (lower by ``tol``). If training raises (a bad block), the estimator is
    put back as it was before the call. Ctrl-C (``KeyboardInterrupt``) stops
    training as in :meth:`fit`: at the end of the current mini-batch, with
    no further block trained, keeping the weights of the last finished
    update (``n_iter_`` counts the complete epochs), with a warning; the
    call then returns normally. Before the call's first update it rolls
    the estimator back and is raised.

    Examples
    --------
    >>> import dask.array as da
    >>> from cbptt import RNNRegressor
    >>> from cbptt.dask import fit_incremental
    >>> from cbptt.datasets import make_sine
    >>> X, y = make_sine(200, 20, output="last", random_state=0)
    >>> dX, dy = da.from_array(X, chunks=50), da.from_array(y, chunks=50)
    >>> est = fit_incremental(RNNRegressor(hidden_layer_sizes=(8,),
    ...                                    random_state=0), dX, dy, epochs=2)
    >>> est.n_iter_, len(est.loss_curve_)
    (2, 2)
    """
    _check_estimator(estimator, fitted=False)
    if (isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral)
            or epochs < 1):
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if y is None:
        raise ValueError("y is None; fit_incremental needs targets")
    blocks = _blocks(X, y)
    n_held, val = _check_validation(validation, estimator, len(blocks))
    client = _client(client)
    saved = copy.deepcopy(estimator.__dict__)
    early_stopping = estimator.early_stopping
    try:
        _fit_blocks(estimator, blocks, _origins(X), epochs, n_held, val,
                    client, classes)
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise
    finally:
        estimator.early_stopping = early_stopping
    return estimator


def _fit_blocks(estimator, blocks, origins, epochs, n_held, val, client,
                classes):
    cold = not (estimator.warm_start and hasattr(estimator, "_params"))
    if cold:                                   # as fit: new weights
        params = estimator.get_params(deep=False)
        estimator.__dict__.clear()
        estimator.__dict__.update(params)
    rng = check_random_state(estimator.random_state)
    order = rng.permutation(len(blocks))
    held, train = sorted(order[:n_held]), order[n_held:]
    val_origins = None                  # X_val given: its own rows
    if n_held:
        Xh = [blocks[i] for i in held]
        val = (_concat([b[0] for b in Xh]), _concat([b[1] for b in Xh]))
        val_origins = [origins[i] for i in held]
    kwargs = {}
    if is_classifier(estimator) and cold:
        if classes is None:
            classes = _classes([blocks[i][1] for i in train] + (
                [blocks[i][1] for i in held]), client)
        kwargs["classes"] = classes
    estimator.early_stopping = False           # partial_fit refuses it
    history = list(getattr(estimator, "loss_curve_", []))
    tol, patience = estimator.tol, estimator.n_iter_no_change
    best_loss, best_score, best_params, stall = np.inf, -np.inf, None, 0
    scores = list(getattr(estimator, "validation_scores_", None) or []) \
        if val is not None else None
    n_epochs, trained, where = 0, False, None
    try:
        for epoch in range(1, epochs + 1):
            turn = rng.permutation(train)
            sequence = [blocks[i] for i in turn]
            total = count = 0.0
            started = _materialise(sequence[0], client)
            for j, block in enumerate(sequence):
                where = f"in epoch {epoch} at block {j + 1} of {len(sequence)}"
                xb, yb = _gather(started, client)
                if j + 1 < len(sequence):       # computed while we train
                    started = _materialise(sequence[j + 1], client)
                if len(xb) == 0:                # an empty chunk or partition
                    continue
                yb = _as_block_y(yb, estimator)
                with _named(origins[turn[j]]):
                    _partial_fit_block(estimator, xb, yb, kwargs)
                trained = True
                kwargs.pop("classes", None)
                n = len(xb)
                if estimator.loss_ is not None:  # None: stopped non-finite
                    total += estimator.loss_ * n
                    count += n
                del xb, yb
                if estimator._interrupted is not None:
                    raise KeyboardInterrupt     # kept by partial_fit: stop
            if not hasattr(estimator, "_params"):
                raise ValueError("X holds no sequences: every block is empty")
            loss = total / count if count else np.nan
            # The epoch counts once its score is in: n_iter_, loss_curve_
            # and validation_scores_ always have one entry per epoch.
            if val is not None:
                where = f"while scoring epoch {epoch} on the validation data"
                s = _validation_score(estimator, val, client, val_origins)
                scores.append(s)
                stall = stall + 1 if s < best_score + tol else 0
                if s > best_score:
                    best_score, best_params = s, estimator._params.copy()
            else:
                stall = stall + 1 if loss > best_loss - tol else 0
                best_loss = min(best_loss, loss)
            n_epochs += 1
            history.append(loss)
            where = f"after epoch {epoch}"
            if stall > patience:
                break
    except KeyboardInterrupt:
        # As fit: Ctrl-C after an update of this call keeps the weights of
        # the last finished update (not the best epoch's) and warns; before
        # any, it rolls the estimator back (fit_incremental) and goes on.
        if not trained:
            raise
        best_params = None
        estimator._interrupted = interrupted_message(
            "fit_incremental", where, n_epochs,
            "Call fit_incremental with warm_start=True")
        warnings.warn(estimator._interrupted, UserWarning)
    estimator.n_iter_ = n_epochs
    estimator.loss_ = history[-1] if history else None
    estimator.loss_curve_ = history
    estimator._no_improvement_count = stall
    if val is not None:
        if best_params is not None:             # None: no score was a number
            np.copyto(estimator._params, best_params)
        estimator.validation_scores_ = scores
        estimator.best_validation_score_ = best_score
        estimator.best_loss_ = None
    else:
        estimator.validation_scores_ = None
        estimator.best_validation_score_ = None
        estimator.best_loss_ = best_loss


def _partial_fit_block(estimator, xb, yb, kwargs):
    """One block's ``partial_fit``, without its own Ctrl-C warning: the
    block's epoch is not the caller's, and :func:`_fit_blocks` warns once
    for the whole call (``estimator._interrupted`` tells it to stop)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="fit was interrupted by KeyboardInterrupt",
            category=UserWarning)
        estimator.partial_fit(xb, yb, **kwargs)


def _concat(parts):
    """Held-out blocks as one Dask collection (array or bag)."""
    if isinstance(parts[0], da.Array):
        return da.concatenate(parts)
    return db.from_delayed(parts)


# ------------------------------------------------------------ predicting --
def _predict_block(xb, estimator, dtype, tail, block_info=None):
    if xb.shape[0] == 0:                         # an empty chunk
        return np.empty((0,) + tail, dtype)
    # the block's first row in X (Dask passes block_info)
    origin = block_info[0]["array-location"][0][0] if block_info else 0
    with _TaskThreads(), _named(int(origin)):
        return estimator.predict(xb).astype(dtype, copy=False)


def _predict_partition(seqs, estimator, origin):
    if not seqs:
        return []
    with _TaskThreads(), _named(origin):
        return list(estimator.predict(list(seqs)))


def predict(estimator, X):
    """Predict block by block where the data lives.

    Parameters
    ----------
    estimator : RNNRegressor or RNNClassifier
        A fitted estimator (shipped to the workers with each block's task).
    X : dask.array.Array or dask.bag.Bag
        As for :func:`fit_incremental`.

    Returns
    -------
    y_pred : dask.array.Array or dask.bag.Bag
        For an array ``X``, a Dask array chunked like ``X`` along samples,
        whose computed value equals ``estimator.predict(X.compute())``:
        ``(n_samples,)`` or ``(n_samples, n_outputs)`` with
        ``output="last"``, ``(n_samples, n_timesteps[, n_outputs])`` with
        ``output="sequence"``. For a bag, a bag of one prediction per
        sequence, each equal to predicting its partition in memory (the
        whole list, padded to its own longest sequence, agrees to rounding).
        A classifier with ``output="sequence"`` and labels that are not
        floats gives an object array (whether or not a block holds padded
        sequences, whose padded steps are None, as with ``predict``): the
        same values as in-memory ``predict``.

    Raises
    ------
    TypeError
        If ``X`` is not a Dask array or bag, or the estimator is not a cbptt
        estimator.
    ValueError
        If ``X`` is chunked along time or features or has unknown chunks;
        when computed, if the network overflows on a sample (as
        :meth:`RNNRegressor.predict` refuses it), named by its row of ``X``,
        or for a bag by its place in its partition.
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> from cbptt import RNNRegressor
    >>> from cbptt.dask import predict
    >>> X = np.random.default_rng(0).standard_normal((60, 10, 2))
    >>> est = RNNRegressor(hidden_layer_sizes=(4,), max_iter=2,
    ...                    random_state=0).fit(X, X[:, -1, 0])
    >>> y = predict(est, da.from_array(X, chunks=20))
    >>> y.shape, bool((y.compute() == est.predict(X)).all())
    ((60,), True)
    """
    _check_estimator(estimator, fitted=True)
    if isinstance(X, db.Bag):
        return db.from_delayed([
            delayed(_predict_partition)(part, estimator, origin)
            for part, origin in zip(X.to_delayed(), _origins(X))])
    if not isinstance(X, da.Array):
        raise TypeError(
            "X must be a dask.array.Array chunked along samples or a "
            f"dask.bag.Bag of sequences, got {type(X).__name__}; predict "
            "in-memory data with estimator.predict")
    _check_array_x(X)
    # The layout of one prediction, from one sequence of zeros.
    probe = estimator.predict(np.zeros((1,) + X.shape[1:], X.dtype))
    tail, out_ndim, dtype = probe.shape[1:], probe.ndim, probe.dtype
    if (is_classifier(estimator) and estimator._output == "sequence"
            and estimator.classes_.dtype.kind != "f"):
        dtype = np.dtype(object)     # None at the padded steps of a block
    kwargs = {}
    if out_ndim < X.ndim:
        kwargs["drop_axis"] = list(range(out_ndim, X.ndim))
    elif out_ndim > X.ndim:
        kwargs["new_axis"] = list(range(X.ndim, out_ndim))
    return X.map_blocks(_predict_block, estimator, dtype, tail, dtype=dtype,
                        chunks=(X.chunks[0],) + tuple((s,) for s in tail),
                        meta=np.empty((0,) * out_ndim, dtype), **kwargs)


# ----------------------------------------------------------------- scoring --
def _block_sums(xb, yb, estimator, origin=0, data="X"):
    """Sums of one block from which ``score`` is pooled (``origin``: where
    the block starts in ``data``, see :func:`_origins`).

    Classifier: ``(correct, count)``. Regressor: ``(n, mean, m2, ssr, e)``
    per output, with ``m2 = sum (y - mean)^2`` about the block's own mean
    and ``ssr = sum (y - y_pred)^2``, of the values times ``2^-e``: ``e``
    is 0, or where their squares could overflow float64 the exponent that
    brings them below 1 (exact, as ``r2_float64`` scales).
    """
    if len(xb) == 0:                             # an empty chunk or partition
        return None
    with _TaskThreads(), _named(origin, data):
        yb = _as_block_y(yb, estimator)
        if not is_classifier(estimator):
            check_real_numbers(yb, "y")
        if estimator._output == "last":
            true, pred = np.asarray(yb), estimator.predict(xb)
            estimator._check_finite_targets(true, None)
            if len(true) != len(pred):
                raise ValueError(f"y has {len(true)} samples in a block whose "
                                 f"X has {len(pred)}")
        else:
            true, pred, _ = estimator._step_pairs(xb, yb)
    if is_classifier(estimator):
        return float(np.sum(true == pred)), float(true.shape[0])
    true = np.asarray(true, np.float64).reshape(true.shape[0], -1)
    pred = np.asarray(pred, np.float64).reshape(true.shape)
    big = max(np.abs(true).max(initial=0.0), np.abs(pred).max(initial=0.0))
    e = int(np.ceil(np.log2(big))) if _R2_SCALE_ABOVE < big < np.inf else 0
    if e:
        true, pred = np.ldexp(true, -e), np.ldexp(pred, -e)
    mean = true.mean(axis=0)
    return (float(true.shape[0]), mean, ((true - mean) ** 2).sum(axis=0),
            ((true - pred) ** 2).sum(axis=0), e)


def _pool_r2(sums):
    """R^2 (uniform average over outputs, as ``r2_score``) from block sums.

    Pools the blocks' means and squared deviations pairwise (Chan, Golub and
    LeVeque): with ``d = mean_b - mean_a``, ``m2 = m2_a + m2_b + d^2 n_a n_b
    / n``; R^2 = 1 - ssr / m2 per output, 1 when both are 0, 0 when only
    m2 is (scikit-learn's ``force_finite``). Two blocks' sums of values
    scaled by ``2^-e_a`` and ``2^-e_b`` are first brought to the larger
    exponent (means times ``2^(e - E)``, squares times ``4^(e - E)``).
    """
    def rescaled(mean, m2, ssr, e, E):
        return (np.ldexp(mean, e - E), np.ldexp(m2, 2 * (e - E)),
                np.ldexp(ssr, 2 * (e - E)))

    n, mean, m2, ssr, e = sums[0]
    for nb, mb, m2b, ssrb, eb in sums[1:]:
        E = max(e, eb)
        if e != E:
            mean, m2, ssr = rescaled(mean, m2, ssr, e, E)
        if eb != E:
            mb, m2b, ssrb = rescaled(mb, m2b, ssrb, eb, E)
        e = E
        total = n + nb
        d = mb - mean
        mean = mean + d * (nb / total)
        m2 = m2 + m2b + d * d * (n * nb / total)
        ssr = ssr + ssrb
        n = total
    if n < 2:
        warnings.warn("R^2 score is not well-defined with less than two "
                      "samples.", UndefinedMetricWarning)
        return float("nan")
    r2 = np.ones_like(m2)
    nonzero = m2 != 0
    r2[nonzero] = 1.0 - ssr[nonzero] / m2[nonzero]
    r2[~nonzero & (ssr != 0)] = 0.0
    return float(np.mean(r2))


def score(estimator, X, y, *, client=None):
    """The estimator's score (R^2 or accuracy) over Dask data, block by block.

    Each block's task predicts its sequences and returns a few sums; they
    are pooled into the statistic over all the data: accuracy from the
    counts of correct and all targets, R^2 from the pooled residual and
    total sums of squares (about the overall mean), so the result equals
    ``estimator.score(X.compute(), y.compute())`` up to rounding. A mean of
    per-block R^2 would not.

    Parameters
    ----------
    estimator : RNNRegressor or RNNClassifier
        A fitted estimator.
    X : dask.array.Array or dask.bag.Bag
        As for :func:`fit_incremental`.
    y : dask.array.Array, ndarray or dask.bag.Bag
        The true targets, as for :func:`fit_incremental`.
    client : distributed.Client or None, default=None
        Where the blocks are scored; None uses the default client if one
        exists, else Dask's local scheduler.

    Returns
    -------
    score : float
        R^2 (uniform average over outputs; over every valid step with
        ``output="sequence"``) for the regressor, accuracy for the
        classifier.

    Raises
    ------
    TypeError, ValueError
        As :func:`predict`, and if ``y`` does not match ``X``.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> from cbptt import RNNRegressor
    >>> from cbptt.dask import score
    >>> X = np.random.default_rng(0).standard_normal((60, 10, 2))
    >>> y = X[:, -1, 0]
    >>> est = RNNRegressor(hidden_layer_sizes=(4,), max_iter=2,
    ...                    random_state=0).fit(X, y)
    >>> s = score(est, da.from_array(X, chunks=20), y)
    >>> bool(abs(s - est.score(X, y)) < 1e-12)
    True
    """
    _check_estimator(estimator, fitted=True)
    if y is None:
        raise ValueError("y is None; score needs the true targets")
    return _score(estimator, X, y, _client(client))


def _score(estimator, X, y, client, origins=None, data="X"):
    """:func:`score` on checked arguments; ``origins`` (default: ``X``'s
    own, :func:`_origins`) place each block's samples in ``data``."""
    blocks = _blocks(X, y)
    if origins is None:
        origins = _origins(X)
    tasks = [delayed(_block_sums)(xb, yb, estimator, origin, data)
             for (xb, yb, _), origin in zip(blocks, origins)]
    sums = client.gather(client.compute(tasks)) if client else \
        dask.compute(*tasks)
    sums = [s for s in sums if s is not None]
    if not sums:
        raise ValueError("X holds no sequences")
    if is_classifier(estimator):
        return sum(s[0] for s in sums) / sum(s[1] for s in sums)
    return _pool_r2(sums)
