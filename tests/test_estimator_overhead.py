"""The estimators' per-fit fast paths change no result and no error.

A warm ``fit`` no longer makes a time-major copy of the whole ``X``: the
mini-batches are gathered straight from the validated batch-first data
(:func:`cbptt._train.gather_batch_first`), and scikit-learn's parameter
validation is remembered per set of immutable values. These tests pin both
against reference paths kept here: the former pipeline (a time-major,
zero-padded copy of the data set, then a gather of its rows)
and scikit-learn's own validation.
"""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from cbptt import RNNClassifier, RNNRegressor, _estimators, _train
from cbptt._sequences import validate_sequences

_gather_batch_first = _train.gather_batch_first


def _reference_gather(src, rows, lengths, out):
    """The former pipeline: the whole data set time-major with its NaN
    padding zeroed, then the time-major gather of the rows (``lengths`` is
    not needed: the zeros are already in the copy)."""
    x = np.ascontiguousarray(np.swapaxes(src, 0, 1))
    if x.dtype.kind == "f":
        np.nan_to_num(x, copy=False, nan=0.0)
    out[...] = x[:out.shape[0], rows]


def _nan_padded(rng, n, T, F, dtype, min_len=1):
    X = rng.standard_normal((n, T, F)).astype(dtype)
    lengths = rng.integers(min_len, T + 1, n)
    for i, L in enumerate(lengths):
        X[i, L:] = np.nan
    return X, lengths


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_gather_batch_first_matches_reference(rng, dtype):
    n, T, F = 9, 12, 3
    if dtype == np.int32:
        src = rng.integers(-50, 50, (n, T, F)).astype(dtype)
        lengths = np.full(n, T)
    else:
        src, lengths = _nan_padded(rng, n, T, F, dtype)
    rows = np.array([7, 0, 3, 3, 8], np.intp)        # shuffled, repeated
    lb = lengths[rows].astype(np.intp)
    Tb = int(lb.max())
    out = np.full((Tb, rows.size, F), 99, dtype)
    _gather_batch_first(src, rows, lb if dtype != np.int32 else None, out)
    want = np.full((Tb, rows.size, F), 99, dtype)
    _reference_gather(src, rows, lb, want)
    np.testing.assert_array_equal(out, want)
    if dtype != np.int32:
        assert not np.isnan(out).any()
        for b, L in enumerate(lb):
            assert np.all(out[L:, b] == 0) and not np.signbit(out[L:, b]).any()


def test_gather_batch_first_full_length_and_errors(rng):
    src = rng.standard_normal((6, 10, 4))
    rows = np.array([5, 1, 2], np.intp)
    out = np.empty((7, 3, 4))
    _gather_batch_first(src, rows, None, out)        # a prefix of the steps
    np.testing.assert_array_equal(out, np.swapaxes(src[rows], 0, 1)[:7])
    with pytest.raises(ValueError, match="out of range"):
        _gather_batch_first(src, np.array([0, 6, 1], np.intp), None, out)
    with pytest.raises(ValueError, match="negative length"):
        _gather_batch_first(src, rows, np.array([3, -1, 2], np.intp), out)
    with pytest.raises(ValueError, match="inconsistent"):
        _gather_batch_first(src, rows, np.array([3, 2], np.intp), out)
    with pytest.raises(ValueError, match="inconsistent"):
        _gather_batch_first(src, rows, None, np.empty((11, 3, 4)))


def test_sequences_x_and_take_are_the_former_copies(rng):
    X, lengths = _nan_padded(rng, 7, 9, 2, np.float64, min_len=2)
    X[2, :] = rng.standard_normal((9, 2))              # one at full length
    before = X.copy()
    seqs = validate_sequences(RNNRegressor(), X, reset=True)
    assert seqs.data is X                               # no copy of X
    want = np.nan_to_num(np.swapaxes(X, 0, 1).copy(), nan=0.0)
    x = seqs.x
    np.testing.assert_array_equal(x, want)
    assert x.flags.c_contiguous and not np.shares_memory(x, X)
    assert seqs.x is x                                  # made once
    idx = np.array([4, 0, 5])
    sub = seqs.take(idx)
    Tm = int(sub.lengths.max())
    np.testing.assert_array_equal(sub.x, want[:Tm, idx])
    np.testing.assert_array_equal(sub.lengths, seqs.lengths[idx])
    np.testing.assert_array_equal(X, before)            # never written
    assert np.isnan(X).any()


def _fit_twice(est, X, y, X2, y2):
    """fit, then a warm fit on X2 (ConvergenceWarnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        first = ([{k: v.copy() for k, v in d.items()} for d in est.coefs_],
                 list(est.loss_curve_))
        est.fit(X2, y2)
    return first, ([{k: v.copy() for k, v in d.items()} for d in est.coefs_],
                   list(est.loss_curve_))


def _assert_same(a, b):
    for (ca, la), (cb, lb) in zip(a, b):
        assert la == lb                                 # bitwise
        for da, db in zip(ca, cb):
            for k in da:
                np.testing.assert_array_equal(da[k], db[k])


CASES = [
    # cell, dtype, output, padded, classifier, extra parameters
    ("elman", np.float32, "last", False, False, {}),
    ("elman", np.float64, "last", True, False, {"bptt_truncate": 3}),
    ("lstm", np.float32, "last", True, False, {"early_stopping": True,
                                               "record_error_flow": "epoch"}),
    ("lstm", np.float64, "sequence", True, False, {}),
    ("elman", np.float64, "sequence", True, True, {}),
    ("lstm", np.float32, "last", False, True, {"early_stopping": True}),
]


@pytest.mark.parametrize("cell, dtype, output, padded, classifier, extra",
                         CASES)
def test_fit_equals_former_pipeline(rng, monkeypatch, cell, dtype, output,
                                    padded, classifier, extra):
    n, T, F = 40, 8, 3
    if padded:
        X, lengths = _nan_padded(rng, n, T, F, dtype, min_len=2)
    else:
        X, lengths = rng.standard_normal((n, T, F)).astype(dtype), None
    X2 = X.copy()
    X2[np.isfinite(X2)] *= 0.5
    if output == "last":
        base = np.nansum(X[:, :, 0], axis=1)
        base2 = np.nansum(X2[:, :, 0], axis=1)
    else:
        base = np.nancumsum(X[:, :, 0], axis=1)
        base2 = np.nancumsum(X2[:, :, 0], axis=1)
    y, y2 = ((base > 0).astype(int), (base2 > 0).astype(int)) if classifier \
        else (base.astype(dtype), base2.astype(dtype))
    cls = RNNClassifier if classifier else RNNRegressor
    params = dict(hidden_layer_sizes=(5,), cell=cell, output=output,
                  batch_size=7, max_iter=3, shuffle=True, random_state=3,
                  warm_start=True, solver="adam", **extra)
    fast = _fit_twice(cls(**params), X, y, X2, y2)
    monkeypatch.setattr(_estimators, "gather_batch_first", _reference_gather)
    former = _fit_twice(cls(**params), X, y, X2, y2)
    _assert_same(fast, former)


def test_warm_fit_reads_x_anew_after_in_place_changes(rng):
    """Nothing derived from X survives a fit: an X changed in place between
    warm fits trains exactly like a fresh array with those values."""
    X, _ = _nan_padded(rng, 30, 6, 2, np.float64, min_len=3)
    y = np.nansum(X, axis=(1, 2))
    params = dict(hidden_layer_sizes=(4,), cell="elman", batch_size=8,
                  max_iter=2, random_state=0, warm_start=True)
    a, b = RNNRegressor(**params), RNNRegressor(**params)
    X_b = X.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(X, y)
        b.fit(X_b, y)
        X[np.isfinite(X)] += 1.0          # in place: same object, new values
        a.fit(X, y)
        b.fit(X_b + np.where(np.isfinite(X_b), 1.0, 0.0), y)
    for da, db in zip(a.coefs_, b.coefs_):
        for k in da:
            np.testing.assert_array_equal(da[k], db[k])
    assert a.loss_curve_ == b.loss_curve_


def test_fit_accepts_read_only_and_strided_x(rng):
    X = rng.standard_normal((20, 5, 2))
    y = X.sum(axis=(1, 2))
    ro = X.copy()
    ro.flags.writeable = False
    strided = np.asfortranarray(X)
    params = dict(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ests = [RNNRegressor(**params).fit(a, y) for a in (X, ro, strided)]
    for e in ests[1:]:
        for da, db in zip(ests[0].coefs_, e.coefs_):
            for k in da:
                np.testing.assert_array_equal(da[k], db[k])


def _sklearn_error(est):
    """The error scikit-learn's own validation raises for est's parameters."""
    with pytest.raises(InvalidParameterError) as info:
        super(_estimators._BaseRNN, est)._validate_params()
    return str(info.value)


@pytest.mark.parametrize("name, good, bad", [
    ("shuffle", True, 1),              # 1 == True, but not a bool
    ("max_iter", 2, 2.0),              # 2 == 2.0, but not an int
    ("alpha", 0.0, -1.0),
    ("hidden_layer_sizes", (3,), 0),
    ("solver", "sgd", "SGD"),
])
def test_remembered_validation_still_refuses(rng, name, good, bad):
    X = rng.standard_normal((12, 4, 2))
    y = X.sum(axis=(1, 2))
    params = dict(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    params[name] = good
    est = RNNRegressor(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        est.fit(X, y)                  # the remembered set passes again
    setattr(est, name, bad)            # bypassing set_params
    want = _sklearn_error(est)
    with pytest.raises(InvalidParameterError) as info:
        est.fit(X, y)
    assert str(info.value) == want
    with pytest.raises(InvalidParameterError) as info:
        est.partial_fit(X, y)
    assert str(info.value) == want


def test_params_key():
    key = _estimators._params_key
    assert key((1,)) != key((True,)) != key((1.0,))
    assert key(((1, 2),)) != key(((True, 2),))
    assert key(([3],)) is None                          # mutable: not kept
    assert key((np.random.RandomState(0),)) is None
    assert key((None, "adam", 0.5, (4, 4))) == key((None, "adam", 0.5, (4, 4)))


@pytest.mark.parametrize("seed", [None, np.random, 0, True, np.int64(7),
                                  2**32 - 1, 2**32, -1, np.int8(-1), 1.5,
                                  "0", np.random.RandomState(1)])
def test_is_valid_seed_agrees_with_check_random_state(seed):
    from sklearn.utils import check_random_state
    try:
        check_random_state(seed)
        ok = True
    except ValueError:
        ok = False
    assert _estimators._is_valid_seed(seed) is ok


@pytest.mark.parametrize("shuffle", [False, True])
def test_invalid_seed_still_raises_on_warm_fit(rng, shuffle):
    """With parameter validation switched off, a warm fit that draws no
    random numbers still refuses an invalid random_state, as before."""
    from sklearn import config_context
    from sklearn.utils import check_random_state
    X = rng.standard_normal((10, 4, 2))
    y = X.sum(axis=(1, 2))
    est = RNNRegressor(hidden_layer_sizes=(3,), max_iter=1, shuffle=shuffle,
                       warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        before = est.coefs_[0]["weight_ih"].copy()
        est.random_state = -3
        with pytest.raises(ValueError) as want:
            check_random_state(-3)
        with config_context(skip_parameter_validation=True):
            with pytest.raises(ValueError) as info:
                est.fit(X, y)
    assert str(info.value) == str(want.value)
    np.testing.assert_array_equal(est.coefs_[0]["weight_ih"], before)


def test_warm_shuffled_fits_draw_like_one_random_state(rng):
    """The warm fits' shuffling draws from a RandomState(seed) made anew per
    fit: two warm fits equal two fits given fresh RandomState(seed)s."""
    X = rng.standard_normal((30, 5, 2))
    y = X.sum(axis=(1, 2))
    params = dict(hidden_layer_sizes=(4,), cell="elman", batch_size=7,
                  max_iter=2, shuffle=True, warm_start=True)
    a = RNNRegressor(random_state=11, **params)
    b = RNNRegressor(random_state=np.random.RandomState(11), **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            a.fit(X, y)
            b.set_params(random_state=np.random.RandomState(11)).fit(X, y)
    for da, db in zip(a.coefs_, b.coefs_):
        for k in da:
            np.testing.assert_array_equal(da[k], db[k])


@pytest.mark.parametrize("a, dtype, ndims, finite", [
    (np.zeros((4, 3, 2)), np.float64, (3,), False),
    (np.zeros((4, 3, 2), np.float32), np.float32, (3,), False),
    (np.full((4, 3, 2), np.nan), np.float64, (3,), False),
    (np.zeros(5), np.float64, (1, 2), True),
    (np.zeros((5, 2), np.float32), np.float32, (1, 2), True),
])
def test_checked_array_fast_path_is_check_array(a, dtype, ndims, finite):
    """Where the fast path returns its input, check_array returns it too."""
    from sklearn.utils.validation import check_array
    from cbptt._sequences import _unchanged_by_check_array
    assert _unchanged_by_check_array(a, (np.dtype(dtype),), ndims, finite)
    assert check_array(a, dtype=dtype, allow_nd=True, ensure_2d=False,
                       ensure_all_finite=finite) is a


@pytest.mark.parametrize("a", [
    np.array([1.0, np.nan]), np.array([np.inf, 1.0]), np.zeros(0),
    np.zeros((3, 0)), np.zeros(4, np.float32), np.zeros((2, 2, 2)),
    np.zeros(4, np.int64), np.asfortranarray(np.zeros((3, 2)))[:, :1],
    [1.0, 2.0],
])
def test_checked_array_refers_the_rest_to_check_array(a):
    """Every other y goes through check_array: same result, same error."""
    from sklearn.utils.validation import check_array
    from cbptt._sequences import checked_array
    kwargs = dict(ensure_2d=False, input_name="y")
    try:
        want = check_array(a, dtype=np.float64, **kwargs)
    except ValueError as exc:
        with pytest.raises(ValueError) as info:
            checked_array(a, np.float64, ndims=(1, 2), finite=True, **kwargs)
        assert str(info.value) == str(exc)
        return
    got = checked_array(a, np.float64, ndims=(1, 2), finite=True, **kwargs)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype


@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("padded", [False, True])
def test_predict_raw_batch_first_equals_time_major(rng, output, padded):
    """predict gathers its chunks from the batch-first data: bitwise the
    predictions of the time-major path, also across chunks."""
    from cbptt._network import predict_raw
    n, T, F = 23, 7, 3
    if padded:
        X, _ = _nan_padded(rng, n, T, F, np.float64, min_len=1)
    else:
        X = rng.standard_normal((n, T, F))
    y = np.nan_to_num(X[:, :, 0]).sum(axis=1)
    if output == "sequence":
        y = np.nan_to_num(X[:, :, 0])
    est = RNNRegressor(hidden_layer_sizes=(4,), cell="lstm", output=output,
                       max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    seqs = validate_sequences(est, X, reset=False, dtype=np.float64)
    for max_elements in (1 << 22, 2 * T * 4):       # one chunk; chunks of 2
        a = predict_raw(est._net, est._params, seqs.data, seqs.lengths,
                        output, max_elements, batch_first=True)
        b = predict_raw(est._net, est._params, seqs.x, seqs.lengths, output,
                        max_elements)
        if output == "sequence":                    # rows beyond lengths: any
            mask = seqs.valid_mask()
            a, b = a[mask], b[mask]
        np.testing.assert_array_equal(a, b)


class _InOrder(np.random.RandomState):
    """A RandomState whose permutations keep the order (fancy indexing of
    the rows in order, the path shuffling takes)."""

    def permutation(self, x):
        return np.array(x, copy=True)


@pytest.mark.parametrize("classifier", [False, True])
def test_unshuffled_batches_equal_the_indexed_path(rng, classifier):
    X = rng.standard_normal((29, 6, 2)).astype(np.float32)
    base = X[:, :, 0].sum(axis=1)
    y = (base > 0).astype(int) if classifier else np.stack([base, -base], 1)
    cls = RNNClassifier if classifier else RNNRegressor
    params = dict(hidden_layer_sizes=(4,), cell="lstm", batch_size=8,
                  max_iter=2, warm_start=True)
    a = cls(shuffle=False, random_state=0, **params)
    b = cls(shuffle=True, random_state=_InOrder(0), **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            a.fit(X, y)
            b.fit(X, y)
    for da, db in zip(a.coefs_, b.coefs_):
        for k in da:
            np.testing.assert_array_equal(da[k], db[k])
    assert a.loss_curve_ == b.loss_curve_
