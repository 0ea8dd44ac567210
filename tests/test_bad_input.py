"""Bad input, systematically: every public function, every argument, every fault.

The table is generated: for each public function and each of its array
arguments, every generic fault (None, NaN, +-inf, bool/complex/object/str
dtypes, ragged lists, a missing or extra dimension, a wrong or empty size
along each axis) must raise ``ValueError`` or ``TypeError`` whose message
names the argument (for a size mismatch: the argument or the one it is
checked against) and says what was expected. Options (activation,
forget_gate, truncate) get their own rows. Then the other side: unusual but
valid memory (Fortran order, strided, negative and zero strides, read-only,
memory-mapped, nested lists, integer dtypes) must give the same result as a
plain C-contiguous float64 array, bit for bit; a forged forward result must be
refused at the compiled boundary, never crash; results are private and
read-only.
"""
import copy
import dataclasses

import numpy as np
import pytest

from cbptt import (cec_backward, cec_forward, lstm_backward, lstm_forward,
                   rnn_backward, rnn_forward)

B, T, I, H = 2, 3, 4, 5
SIZES = dict(batch=B, T=T, I=I, H=H)


def _arrays(rng, rows):
    """Valid arrays for a layer whose stacked weights have ``rows`` rows."""
    return dict(x=rng.standard_normal((B, T, I)),
                weight_ih=rng.standard_normal((rows, I)) * 0.3,
                weight_hh=rng.standard_normal((rows, H)) * 0.3,
                bias=rng.standard_normal(rows) * 0.1,
                h0=rng.standard_normal((B, H)) * 0.5,
                c0=rng.standard_normal((B, H)) * 0.5)


# name -> (function, its array arguments, optional ones, rows of the weights)
FORWARD = {
    "rnn_forward": (rnn_forward, ["x", "weight_ih", "weight_hh", "bias", "h0"],
                    {"h0"}, H),
    "cec_forward": (cec_forward, ["x", "weight_ih", "bias", "h0"], {"h0"}, H),
    "lstm_forward": (lstm_forward, ["x", "weight_ih", "weight_hh", "bias", "h0",
                                    "c0"], {"h0", "c0"}, 4 * H),
}
BACKWARD = {
    "rnn_backward": ("rnn_forward", rnn_backward, ["grad_h"]),
    "cec_backward": ("cec_forward", cec_backward, ["grad_h"]),
    "lstm_backward": ("lstm_forward", lstm_backward, ["grad_h", "grad_c"]),
}
OPTIONAL_BACKWARD = {"grad_c"}


def forward_args(name, rng):
    fn, names, _, rows = FORWARD[name]
    a = _arrays(rng, rows)
    return fn, {k: a[k] for k in names}


def _ragged(v):
    lst = v.tolist()
    if v.ndim == 1:
        lst[0] = [lst[0], 1.0]
        return lst
    inner = lst
    while isinstance(inner[0][0], list):
        inner = inner[0]
    inner[0] = inner[0][:-1]
    return lst


def _with(v, value):
    w = np.array(v, dtype=np.float64)
    w.reshape(-1)[w.size // 2] = value
    return w


# fault -> (make the bad value from a valid one, exception, words in the message)
FAULTS = {
    "None": (lambda v: None, TypeError, ["None"]),
    "nan": (lambda v: _with(v, np.nan), ValueError, ["NaN"]),
    "inf": (lambda v: _with(v, np.inf), ValueError, ["infinite"]),
    "-inf": (lambda v: _with(v, -np.inf), ValueError, ["infinite"]),
    "bool": (lambda v: v > 0, TypeError, ["bool"]),
    "complex": (lambda v: v + 1j, TypeError, ["complex"]),
    "object": (lambda v: v.astype(object), TypeError, ["object"]),
    "str": (lambda v: v.astype(str), TypeError, ["dtype"]),
    "text": (lambda v: "abc", TypeError, ["dtype"]),
    "ragged": (_ragged, ValueError, ["converted"]),
    "extra dim": (lambda v: v[None], ValueError, ["dimension"]),
    "missing dim": (lambda v: v[0], ValueError, ["dimension"]),
    "scalar": (lambda v: 1.0, ValueError, ["dimension"]),
}


def _size_faults(v):
    """(label, bad value) for a wrong and an empty size along every axis."""
    for ax in range(v.ndim):
        yield f"axis {ax} + 1", np.resize(v, v.shape[:ax] + (v.shape[ax] + 1,)
                                          + v.shape[ax + 1:])
        yield f"axis {ax} empty", np.take(v, [], axis=ax)


def _forward_cases():
    rng = np.random.default_rng(0)
    for fname, (_, names, optional, _) in FORWARD.items():
        _, args = forward_args(fname, rng)
        for arg in names:
            for fault, (make, exc, words) in FAULTS.items():
                if fault == "None" and arg in optional:
                    continue
                yield pytest.param(fname, arg, fault, None, exc, words,
                                   id=f"{fname}-{arg}-{fault}")
            for label, _ in _size_faults(args[arg]):
                if arg == "x" and label == "axis 1 + 1":
                    continue                      # another T is valid
                yield pytest.param(fname, arg, "size", label, ValueError,
                                   ["shape"], id=f"{fname}-{arg}-{label}")


def _check_message(msg, arg, names, words):
    assert "expected" in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    if words == ["shape"]:       # the argument or the one it is checked against
        assert any(n in msg for n in names), msg
    else:
        assert arg in msg, msg


@pytest.mark.parametrize("fname,arg,fault,label,exc,words", list(_forward_cases()))
def test_forward_refuses_bad_argument(fname, arg, fault, label, exc, words):
    fn, args = forward_args(fname, np.random.default_rng(1))
    if fault == "size":
        args[arg] = dict(_size_faults(args[arg]))[label]
    else:
        args[arg] = FAULTS[fault][0](args[arg])
    with pytest.raises(exc) as info:
        fn(**args)
    _check_message(str(info.value), arg, FORWARD[fname][1], words)


def _backward_cases():
    for bname, (fname, _, names) in BACKWARD.items():
        g = np.zeros((B, T, H))
        for arg in names:
            for fault, (make, exc, words) in FAULTS.items():
                if fault == "None" and arg in OPTIONAL_BACKWARD:
                    continue
                yield pytest.param(bname, arg, fault, None, exc, words,
                                   id=f"{bname}-{arg}-{fault}")
            for label, _ in _size_faults(g):
                yield pytest.param(bname, arg, "size", label, ValueError,
                                   ["shape"], id=f"{bname}-{arg}-{label}")


@pytest.mark.parametrize("bname,arg,fault,label,exc,words", list(_backward_cases()))
def test_backward_refuses_bad_argument(bname, arg, fault, label, exc, words):
    fname, bfn, names = BACKWARD[bname]
    fn, args = forward_args(fname, np.random.default_rng(2))
    res = fn(**args)
    kwargs = {k: np.ones((B, T, H)) for k in names}
    if fault == "size":
        kwargs[arg] = dict(_size_faults(kwargs[arg]))[label]
    else:
        kwargs[arg] = FAULTS[fault][0](kwargs[arg])
    with pytest.raises(exc) as info:
        bfn(res, **kwargs)
    _check_message(str(info.value), arg, names, words)


OPTIONS = [
    ("rnn_forward", "activation", v, ValueError)
    for v in ["TANH", "sigmoid", "softmax", "", None, 2, ["tanh"], b"tanh"]
] + [
    ("lstm_forward", "forget_gate", v, TypeError)
    for v in ["yes", "True", 1, 0, None, 1.0, [True]]
]


@pytest.mark.parametrize("fname,opt,value,exc", OPTIONS)
def test_forward_refuses_bad_option(fname, opt, value, exc):
    fn, args = forward_args(fname, np.random.default_rng(3))
    with pytest.raises(exc, match=opt) as info:
        fn(**args, **{opt: value})
    assert "expected" in str(info.value)


@pytest.mark.parametrize("bname", sorted(BACKWARD))
@pytest.mark.parametrize("value,exc", [
    (0, ValueError), (-1, ValueError), (-(2**40), ValueError),
    (2.0, TypeError), (np.float64(3), TypeError), (True, TypeError),
    (np.bool_(True), TypeError), ("3", TypeError), ([2], TypeError)])
def test_backward_refuses_bad_truncate(bname, value, exc):
    fname, bfn, _ = BACKWARD[bname]
    fn, args = forward_args(fname, np.random.default_rng(4))
    res = fn(**args)
    with pytest.raises(exc, match="truncate") as info:
        bfn(res, np.ones(res.h.shape), truncate=value)
    assert "expected" in str(info.value)


@pytest.mark.parametrize("bname", sorted(BACKWARD))
def test_backward_refuses_foreign_forward_result(bname):
    fname, bfn, _ = BACKWARD[bname]
    rng = np.random.default_rng(5)
    others = [None, {"h": np.zeros((B, T, H))}, (1, 2)] + [
        FORWARD[f][0](**forward_args(f, rng)[1]) for f in FORWARD if f != fname]
    for other in others:
        with pytest.raises(TypeError, match="forward_result"):
            bfn(other, np.ones((B, T, H)))


# -- forged forward results: refused at the compiled boundary ---------------

def _forgeries(res):
    """Results with private arrays that no forward pass produced."""
    f32 = {k: getattr(res, k).astype(np.float32) for k in ("_x_tm", "_h_tm")}
    yield "short h", dict(_h_tm=np.zeros((T, B, H + 1)))
    yield "short x", dict(_x_tm=np.zeros((T, B + 1, I)))
    yield "float32 x", dict(_x_tm=f32["_x_tm"])
    yield "strided h", dict(_h_tm=np.zeros((T, B, 2 * H))[:, :, ::2])
    yield "weights", dict(weight_ih=np.zeros((H + 1, I)))
    yield "h0", dict(h0=np.zeros((B + 1, H)))


@pytest.mark.parametrize("fname", sorted(FORWARD))
def test_forged_forward_results_are_refused(fname):
    fn, args = forward_args(fname, np.random.default_rng(6))
    res = fn(**args)
    bfn = {b: f for b, (fw, f, _) in BACKWARD.items() if fw == fname}
    (bfn,) = bfn.values()
    g = np.ones((B, T, H))
    honest = bfn(res, g)
    for label, change in _forgeries(res):
        if fname == "lstm_forward" and label == "weights":
            change = dict(weight_ih=np.zeros((4 * H + 1, I)))
        with pytest.raises(TypeError, match="made only by"):
            dataclasses.replace(res, **change)
        # behind the frozen dataclass's back, as replace would have built it
        forged = copy.copy(res)
        for name, value in change.items():
            object.__setattr__(forged, name, value)
        try:
            grads = bfn(forged, g)
        except (ValueError, TypeError):
            continue
        # Accepted only when the kernel never reads the forged array (the
        # CEC's backward does not need h): then nothing changed.
        for field in honest._fields:
            np.testing.assert_array_equal(getattr(grads, field),
                                          getattr(honest, field), err_msg=label)


# -- overflow is refused, never silent ---------------------------------------

@pytest.mark.parametrize("fname", sorted(FORWARD))
def test_float32_overflow_is_refused(fname):
    fn, args = forward_args(fname, np.random.default_rng(7))
    args = {k: v.astype(np.float32) for k, v in args.items()}
    args["x"] = args["x"] * np.float32(1e20)
    args["weight_ih"] = args["weight_ih"] * np.float32(1e20)
    with pytest.raises(ValueError, match="float32") as info:
        fn(**args)
    assert "expected" in str(info.value)
    # the same values in float64 compute
    res = fn(**{k: v.astype(np.float64) for k, v in args.items()})
    assert np.isfinite(res.h).all()


@pytest.mark.parametrize("bname", sorted(BACKWARD))
def test_gradient_overflow_is_refused(bname):
    fname, bfn, _ = BACKWARD[bname]
    fn, args = forward_args(fname, np.random.default_rng(8))
    res = fn(**{k: v.astype(np.float32) for k, v in args.items()})
    with pytest.raises(ValueError, match="overflowed the float32 range"):
        bfn(res, np.full((B, T, H), 3e38, np.float32))


def test_long_double_beyond_float64_is_refused():
    fn, args = forward_args("rnn_forward", np.random.default_rng(9))
    if np.finfo(np.longdouble).max <= np.finfo(np.float64).max:
        pytest.skip("long double is float64 on this platform")
    args["x"] = args["x"].astype(np.longdouble)
    args["x"][0, 0, 0] = np.longdouble("1e400")
    with pytest.raises(ValueError, match="x has values beyond the float64 range"):
        fn(**args)


def test_sizes_beyond_the_blas_index_limit_are_refused():
    """Zero-stride views make huge shapes without memory; the 32-bit BLAS
    limit is checked before anything reads them."""
    big = np.broadcast_to(np.zeros(1), (2**16, 2**15 + 1, 1))
    with pytest.raises(ValueError, match="32-bit"):
        rnn_forward(big, np.ones((1, 1)), np.ones((1, 1)), np.zeros(1))
    rows = np.broadcast_to(np.zeros((1, 1)), (2**31, 1))
    with pytest.raises(ValueError, match="32-bit"):
        rnn_forward(np.ones((1, 1, 1)), rows, np.ones((1, 1)), np.zeros(1))
    with pytest.raises(ValueError, match="32-bit"):
        lstm_forward(np.ones((1, 1, 1)), rows, np.ones((1, 1)), np.zeros(1))


# -- unusual but valid memory gives the same bits ---------------------------

def _variants(v, tmp_path, name):
    """The same values in other memory layouts and dtypes."""
    every = tuple(slice(None, None, 2) for _ in v.shape)
    back = tuple(slice(None, None, -1) for _ in v.shape)
    big = np.zeros(tuple(2 * s for s in v.shape))
    big[every] = v
    ro = v.copy()
    ro.flags.writeable = False
    mm = np.lib.format.open_memmap(tmp_path / f"{name}.npy", mode="w+",
                                   dtype=v.dtype, shape=v.shape)
    mm[...] = v
    mm.flush()
    del mm
    yield "fortran", np.asfortranarray(v)
    yield "strided", big[every]
    yield "negative", np.ascontiguousarray(v[back])[back]
    yield "readonly", ro
    yield "memmap-r", np.load(tmp_path / f"{name}.npy", mmap_mode="r")
    yield "memmap-c", np.load(tmp_path / f"{name}.npy", mmap_mode="c")
    yield "list", v.tolist()


@pytest.mark.parametrize("fname", sorted(FORWARD))
def test_unusual_memory_gives_the_same_bits(fname, tmp_path):
    fn, args = forward_args(fname, np.random.default_rng(10))
    bname = [b for b, (f, _, _) in BACKWARD.items() if f == fname][0]
    bfn = BACKWARD[bname][1]
    g = np.random.default_rng(11).standard_normal((B, T, H))
    base = fn(**args)
    base_g = bfn(base, g)
    for arg in list(args) + ["grad_h"]:
        v = g if arg == "grad_h" else args[arg]
        for label, w in _variants(v, tmp_path, arg):
            if arg == "grad_h":
                res, gw = base, w
            else:
                res, gw = fn(**dict(args, **{arg: w})), g
            np.testing.assert_array_equal(res.h, base.h, err_msg=f"{arg} {label}")
            grads = bfn(res, gw)
            for field in base_g._fields:
                np.testing.assert_array_equal(getattr(grads, field),
                                              getattr(base_g, field),
                                              err_msg=f"{arg} {label} {field}")


@pytest.mark.parametrize("fname", sorted(FORWARD))
def test_integer_and_zero_stride_inputs(fname):
    fn, args = forward_args(fname, np.random.default_rng(12))
    x_int = np.rint(args["x"] * 3).astype(np.int16)
    res = fn(**dict(args, x=x_int))
    ref = fn(**dict(args, x=x_int.astype(np.float64)))
    np.testing.assert_array_equal(res.h, ref.h)
    x0 = np.broadcast_to(args["x"][:1], args["x"].shape)   # zero stride on batch
    res = fn(**dict(args, x=x0))
    np.testing.assert_array_equal(res.h, fn(**dict(args, x=x0.copy())).h)


# -- results are private and read-only ---------------------------------------

@pytest.mark.parametrize("fname", sorted(FORWARD))
def test_results_are_private_and_read_only(fname):
    fn, args = forward_args(fname, np.random.default_rng(13))
    bname = [b for b, (f, _, _) in BACKWARD.items() if f == fname][0]
    bfn = BACKWARD[bname][1]
    kept = {k: v.copy() for k, v in args.items()}
    res = fn(**args)
    g = np.ones((B, T, H))
    expected = bfn(res, g)
    for k in kept:                       # inputs untouched
        np.testing.assert_array_equal(args[k], kept[k])
    for v in args.values():              # an SGD step in place, before backward
        v *= 2.0
    again = bfn(res, g)
    for field in expected._fields:
        np.testing.assert_array_equal(getattr(again, field),
                                      getattr(expected, field), err_msg=field)
    for f in dataclasses.fields(res):
        a = getattr(res, f.name)
        if isinstance(a, np.ndarray):
            assert not a.flags.writeable, f.name
            with pytest.raises(ValueError, match="read-only"):
                a[(0,) * a.ndim] = 1.0


# -- the estimators: every method, every fault; nothing lost ------------------

import threading as _threading                                   # noqa: E402
import warnings as _warnings                                     # noqa: E402
import re as _re                                                 # noqa: E402
import signal as _signal                                         # noqa: E402

import cbptt                                                     # noqa: E402
from conftest import interrupting_batches                        # noqa: E402

needs_estimators = pytest.mark.skipif(
    not hasattr(cbptt, "RNNRegressor"),
    reason="the estimators (RNNRegressor/RNNClassifier) are not in this build")


def _est_data(seed=0, n=24, T=6, F=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, F))
    y = X.sum(axis=(1, 2))
    return X, y, np.where(y > 0, "pos", "neg")


def _small(cls_name, **kw):
    params = dict(hidden_layer_sizes=(6,), max_iter=3, random_state=0)
    params.update(kw)
    return getattr(cbptt, cls_name)(**params)


def _fitted_est(cls_name, **kw):
    X, y, labels = _est_data()
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        return _small(cls_name, **kw).fit(X, labels if cls_name == "RNNClassifier" else y)


def _snapshot(est, X):
    """What must survive a failed call: predictions and every fitted array."""
    out = [np.array(est.predict(X))]
    out += [np.array(a) for d in est.coefs_ for a in d.values()]
    return out


def _x_faults(X):
    """(label, bad X, exception) for every fault of the input sequences."""
    bad_mid = X.copy()
    bad_mid[0, 1, 0] = np.nan                      # NaN that is not trailing padding
    inf = X.copy()
    inf[1, 2, 1] = np.inf
    ragged = [X[0], X[1][:, :2]]                   # inconsistent feature counts
    return [
        ("None", None, (ValueError, TypeError)),
        ("nan inside", bad_mid, ValueError),
        ("inf", inf, ValueError),
        ("complex", X + 1j, (ValueError, TypeError)),
        ("1-D", X[:, 0, 0], ValueError),
        ("4-D", X[..., None], ValueError),
        ("no samples", X[:0], ValueError),
        ("no steps", X[:, :0], ValueError),
        ("no features", X[:, :, :0], ValueError),
        ("ragged features", ragged, ValueError),
        ("scalar", 1.0, (ValueError, TypeError)),
        ("text", "abc", (ValueError, TypeError)),
    ]


ESTIMATOR_METHODS = [("RNNRegressor", m) for m in ("fit", "partial_fit", "predict", "score")] + [
    ("RNNClassifier", m) for m in ("fit", "partial_fit", "predict", "predict_proba", "score")]


@needs_estimators
@pytest.mark.parametrize("cls_name,method", ESTIMATOR_METHODS)
def test_estimator_methods_refuse_bad_X_and_lose_nothing(cls_name, method):
    X, y, labels = _est_data()
    target = labels if cls_name == "RNNClassifier" else y
    est = _fitted_est(cls_name)
    before = _snapshot(est, X)
    for label, bad, exc in _x_faults(X):
        call = getattr(est, method)
        n = len(bad) if isinstance(bad, list) else (
            bad.shape[0] if isinstance(bad, np.ndarray) and bad.ndim else 0)
        args = (bad,) if method in ("predict", "predict_proba") else (
            bad, target[:n] if 0 < n <= len(target) else target)
        with pytest.raises(exc) as info:
            call(*args)
        msg = str(info.value)
        assert msg, label
        after = _snapshot(est, X)
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b, err_msg=f"{method} {label} changed the model")


def _non_real_X(X):
    """(bad X, words its error must contain) for every kind of non-real X."""
    obj = X.astype(object)
    with_bool, with_dict, with_none = obj.copy(), obj.copy(), obj.copy()
    with_bool[1, 2, 0] = True
    with_dict[0, 0, 0] = {"foo": "bar"}
    with_none[2, 1, 1] = None
    return [
        (X > 0, ["X has dtype bool"]),
        (X.astype(str), ["X has dtype <U", "strings"]),
        (X.astype("S8"), ["X has dtype |S8", "bytes"]),
        (X + 1j, ["X has dtype complex128"]),
        (X.astype(str).astype(object), ["X[0, 0, 0] is the string"]),
        (X.astype(complex).astype(object), ["X[0, 0, 0] is the complex number"]),
        (with_bool, ["X[1, 2, 0] is the bool True"]),
        (with_dict, ["X[0, 0, 0] is a dict", "argument must be a string or a real number"]),
        (with_none, ["X[2, 1, 1] is a NoneType"]),
        ([X[0] > 0, X[1][:4] > 0], ["X[0] has dtype bool"]),
        ([X[0], X[1] > 0], ["X[1] has dtype bool"]),      # equal lengths too
        ([X[0], X[1][:4].astype(str)], ["X[1] has dtype <U"]),
        ([X[0], X[1][:4].astype(str).astype(object)], ["X[1][0, 0] is the string"]),
        ((X > 0).tolist(), ["X has dtype bool"]),
        ([[["1.5"] * 3] * 6] * len(X), ["X has dtype <U"]),
    ]


@needs_estimators
@pytest.mark.parametrize("cls_name,method", ESTIMATOR_METHODS)
def test_estimator_methods_refuse_bool_object_and_string_X(cls_name, method):
    """bool, string, bytes, complex and object-of-non-numbers X (numeric
    strings included), also inside ragged lists, raise TypeError (complex:
    ValueError, "Complex data not supported" as scikit-learn's checks want)
    naming X, what was seen and what is expected; nothing fitted is lost."""
    X, y, labels = _est_data()
    target = labels if cls_name == "RNNClassifier" else y
    est = _fitted_est(cls_name)
    before = _snapshot(est, X)
    for bad, words in _non_real_X(X):
        args = (bad,) if method in ("predict", "predict_proba") else (bad, target)
        complex_ = any("complex" in w for w in words)
        with pytest.raises(ValueError if complex_ else TypeError) as info:
            getattr(est, method)(*args)
        msg = str(info.value)
        if complex_:
            assert "Complex data not supported" in msg, msg
        assert "expected real floating-point or integer numbers" in msg, msg
        for w in words:
            assert w in msg, (w, msg)
    for a, b in zip(before, _snapshot(est, X)):
        np.testing.assert_array_equal(a, b)


@needs_estimators
@pytest.mark.parametrize("cls_name,method", ESTIMATOR_METHODS)
def test_list_X_names_a_scalar_or_an_empty_sequence(cls_name, method):
    """A list X holding a scalar, or a sequence of 0 steps, is refused with a
    ValueError naming the item (not NumPy's "inhomogeneous shape" or
    scikit-learn's "Found array with 0 sample(s)"); nothing is lost."""
    X, y, labels = _est_data()
    target = labels if cls_name == "RNNClassifier" else y
    est = _fitted_est(cls_name)
    before = _snapshot(est, X)
    for bad, words in [
            ([X[0], 3.0], "X[1] is a scalar (3.0); expected each sequence as "
                          "an array of shape (n_timesteps, n_features)"),
            ([np.float32(2), X[1][:4]], "X[0] is a scalar"),
            ([X[0], X[1][:0], X[2]], "X[1] has 0 time steps (shape (0, 3)); "
                                     "expected at least 1 time step"),
            ([X[0][:, 0], np.zeros(0)], "X[1] has 0 time steps (shape (0, 1))"),
            ([X[0][:0], X[1]], "X[0] has 0 time steps")]:
        args = (bad,) if method in ("predict", "predict_proba") else (
            bad, target[:len(bad)])
        with pytest.raises(ValueError, match=_re.escape(words)):
            getattr(est, method)(*args)
    for a, b in zip(before, _snapshot(est, X)):
        np.testing.assert_array_equal(a, b)


@needs_estimators
@pytest.mark.parametrize("cls_name", ["RNNRegressor", "RNNClassifier"])
def test_estimators_take_object_arrays_of_numbers(cls_name):
    """Object arrays of real numbers (as scikit-learn's check_dtype_object
    requires) and integer X give the bits of the float64 array."""
    from decimal import Decimal
    X, y, labels = _est_data()
    target = labels if cls_name == "RNNClassifier" else y
    obj = X.astype(object)
    obj[0, 0, 0] = Decimal(float(X[0, 0, 0]))      # exact
    obj[1, 0, 0] = np.float32(X[1, 0, 0])
    obj[2, 0, 0] = 3
    X[1, 0, 0], X[2, 0, 0] = np.float32(X[1, 0, 0]), 3.0
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        ref = _small(cls_name).fit(X, target)
        est = _small(cls_name).fit(obj, target)
    np.testing.assert_array_equal(est._params, ref._params)
    np.testing.assert_array_equal(est.predict(obj), ref.predict(X))
    np.testing.assert_array_equal(est.predict(X.round().astype(int)),
                                  ref.predict(X.round()))


@needs_estimators
def test_regressor_refuses_non_real_y():
    """The regressor's targets are real numbers too (a classifier's labels
    may be anything, bools included)."""
    X, y, labels = _est_data()
    est = _fitted_est("RNNRegressor")
    before = _snapshot(est, X)
    for bad, words in [(y > 0, "y has dtype bool"), (y.astype(str), "y has dtype <U"),
                       (y.astype(str).astype(object), "y[0] is the string"),
                       (y.astype(object) + 1j, "y[0] is the complex number")]:
        for method in ("fit", "partial_fit", "score"):
            with pytest.raises((TypeError, ValueError), match=_re.escape(words)):
                getattr(est, method)(X, bad)
    for a, b in zip(before, _snapshot(est, X)):
        np.testing.assert_array_equal(a, b)
    seq = _small("RNNRegressor", output="sequence")
    with pytest.raises(TypeError, match=_re.escape("y[1] has dtype bool")):
        seq.fit([X[0], X[1][:4]], [X[0].sum(1), X[1][:4].sum(1) > 0])
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        clf = _small("RNNClassifier").fit(X, y > 0)
    assert clf.classes_.dtype == bool and clf.predict(X).dtype == bool


@needs_estimators
@pytest.mark.parametrize("cls_name", ["RNNRegressor", "RNNClassifier"])
def test_estimator_methods_refuse_bad_y_and_wrong_features(cls_name):
    X, y, labels = _est_data()
    est = _fitted_est(cls_name)
    before = _snapshot(est, X)
    target = labels if cls_name == "RNNClassifier" else y
    bad_ys = [("None", None), ("short", target[:-3]), ("3-D", np.zeros((len(X), 2, 2, 2)))]
    if cls_name == "RNNRegressor":
        yn = y.copy()
        yn[3] = np.nan
        bad_ys += [("nan", yn), ("complex", y + 1j)]
    for label, bad in bad_ys:
        for method in ("fit", "partial_fit"):
            with pytest.raises((ValueError, TypeError)):
                getattr(est, method)(X, bad)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :, :2])
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :, :2], target)
    for a, b in zip(before, _snapshot(est, X)):
        np.testing.assert_array_equal(a, b)


BAD_PARAMS = [("hidden_layer_sizes", v) for v in (0, -1, (), (0,), "abc", (4, -2))] + [
    ("cell", "rnn"), ("activation", "softmax"), ("solver", "lbfgs"),
    ("learning_rate_init", 0.0), ("learning_rate_init", -1.0), ("batch_size", 0),
    ("max_iter", 0), ("alpha", -1.0), ("clip_norm", 0.0), ("bptt_truncate", 0),
    ("output", "all"), ("tol", -1.0), ("validation_fraction", 1.0)]


@needs_estimators
@pytest.mark.parametrize("cls_name", ["RNNRegressor", "RNNClassifier"])
@pytest.mark.parametrize("param,value", BAD_PARAMS)
def test_bad_parameters_are_refused_and_lose_nothing(cls_name, param, value):
    X, y, labels = _est_data()
    target = labels if cls_name == "RNNClassifier" else y
    est = _fitted_est(cls_name)
    before = _snapshot(est, X)
    est.set_params(**{param: value})
    with pytest.raises((ValueError, TypeError), match=param):
        est.fit(X, target)
    with pytest.raises(ValueError, match="bogus"):
        est.set_params(bogus=1)
    for a, b in zip(before, _snapshot(est, X)):
        np.testing.assert_array_equal(a, b)


@needs_estimators
@pytest.mark.parametrize("cls_name", ["RNNRegressor", "RNNClassifier"])
@pytest.mark.parametrize("param,value", [("solver", "lbfgs"),
                                         ("learning_rate_init", 0.0),
                                         ("alpha", -1.0), ("clip_norm", 0.0),
                                         ("beta_1", 1.5), ("momentum", -0.1),
                                         ("batch_size", 0), ("verbose", "loud")])
def test_partial_fit_validates_parameters(cls_name, param, value):
    """partial_fit validates the parameters on every call (set_params may
    have changed them since the fit), names the bad one, and loses nothing."""
    X, y, labels = _est_data()
    target = labels if cls_name == "RNNClassifier" else y
    est = _fitted_est(cls_name)
    before = _snapshot(est, X)
    state = {k: v for k, v in vars(est).items() if k != "coefs_"}
    est.set_params(**{param: value})
    with pytest.raises(ValueError, match=f"'{param}' parameter"):
        est.partial_fit(X, target)
    for a, b in zip(before, _snapshot(est, X)):
        np.testing.assert_array_equal(a, b)
    assert {k: v for k, v in vars(est).items() if k != "coefs_"}.keys() == state.keys()
    assert est.n_iter_ == state["n_iter_"]
    fresh = _small(cls_name, **{param: value})          # and on a first call
    with pytest.raises(ValueError, match=f"'{param}' parameter"):
        fresh.partial_fit(X, target, **({"classes": ["neg", "pos"]}
                                        if cls_name == "RNNClassifier" else {}))
    assert not hasattr(fresh, "coefs_")


@needs_estimators
def test_partial_fit_refuses_unseen_labels_and_loses_nothing():
    X, y, labels = _est_data()
    labels = labels.astype(object)
    est = _fitted_est("RNNClassifier")
    before = _snapshot(est, X)
    unseen = labels.copy()
    unseen[0] = "zebra"
    with pytest.raises(ValueError, match="zebra"):
        est.partial_fit(X, unseen)
    for a, b in zip(before, _snapshot(est, X)):
        np.testing.assert_array_equal(a, b)
    fresh = _small("RNNClassifier")
    with pytest.raises(ValueError, match="classes"):
        fresh.partial_fit(X, labels)             # the first call needs classes
    fresh.partial_fit(X, labels, classes=["neg", "pos"])
    with pytest.raises(ValueError, match="classes"):
        fresh.partial_fit(X, labels, classes=["neg", "pos", "other"])


@needs_estimators
@pytest.mark.parametrize("cell", ["elman", "cec"])
def test_divergence_warns_and_keeps_the_last_finite_weights(cell):
    X, y, _ = _est_data()
    est = _small("RNNRegressor", cell=cell, solver="sgd", learning_rate_init=1e8,
                 clip_norm=None, max_iter=30, activation="identity")
    from sklearn.exceptions import ConvergenceWarning
    with pytest.warns(ConvergenceWarning) as record:
        est.fit(X * 100, y * 1e12)
    msgs = [str(w.message) for w in record if issubclass(w.category, ConvergenceWarning)]
    assert any("epoch" in m and "clip_norm" in m and "learning_rate_init" in m
               for m in msgs), msgs
    assert all(np.isfinite(a).all() for d in est.coefs_ for a in d.values())
    assert np.isfinite(est.predict(X)).all()


@needs_estimators
@pytest.mark.parametrize("cls_name", ["RNNRegressor", "RNNClassifier"])
def test_huge_inputs_never_give_silent_nan(cls_name):
    X, _, _ = _est_data()
    est = _fitted_est(cls_name)
    for scale in (1e30, 1e300):
        try:
            pred = est.predict(X * scale)
        except ValueError as exc:
            assert "X" in str(exc) or "large" in str(exc)
            continue
        if cls_name == "RNNRegressor":
            assert np.isfinite(pred).all(), f"NaN/inf predictions for X * {scale}"
        else:
            assert np.isfinite(est.predict_proba(X * scale)).all()


def _interrupt_data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 8, 3))
    return X, X.sum(axis=(1, 2))


INTERRUPTIBLE = dict(cell="lstm", hidden_layer_sizes=(6,), max_iter=50, tol=0.0,
                     n_iter_no_change=np.inf, batch_size=8)   # 5 batches/epoch


def _fit_interrupted(est, X, y):
    with _warnings.catch_warnings(record=True) as record:
        _warnings.simplefilter("always")
        est.fit(X, y)
    said = [str(w.message) for w in record if "KeyboardInterrupt" in str(w.message)]
    assert len(said) == 1, "fit did not say (once) that it was interrupted"
    assert _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler
    return said[0]


@needs_estimators
@pytest.mark.parametrize("how,at,kept", [
    ("signal", 8, 8),        # Ctrl-C: stops after the mini-batch it arrived in
    ("signal", 10, 10),      # ... the last of epoch 2
    ("signal2", 8, 7),       # pressed twice: stops at once
    ("raise", 8, 7),         # a KeyboardInterrupt raised inside the update
])
def test_keyboard_interrupt_keeps_the_last_finished_update(monkeypatch, how,
                                                           at, kept):
    """Ctrl-C during fit: the fit stops at a mini-batch boundary, returns,
    and the estimator keeps a usable model with the weights of the last
    finished update, and says so (a warning)."""
    if _signal.getsignal(_signal.SIGINT) is not _signal.default_int_handler:
        pytest.skip("SIGINT has a non-default handler in this test process")
    X, y = _interrupt_data()
    est = _small("RNNRegressor", **INTERRUPTIBLE)
    after = interrupting_batches(monkeypatch, at, how)
    msg = _fit_interrupted(est, X, y)
    epoch, batch = divmod(kept - 1, 5)
    assert f"in epoch {epoch + 1} after mini-batch {batch + 1};" in msg, msg
    assert "keeps the weights of the last finished update" in msg
    np.testing.assert_array_equal(est._params, after[kept - 1])
    assert est.n_iter_ == len(est.loss_curve_) == (kept - 1) // 5
    assert all(np.isfinite(a).all() for d in est.coefs_ for a in d.values())
    pred = est.predict(X)
    assert pred.shape == y.shape and np.isfinite(pred).all()
    monkeypatch.undo()
    if kept % 5 == 0:        # the same weights as a fit stopped by max_iter
        ref = _small("RNNRegressor", **dict(INTERRUPTIBLE, max_iter=kept // 5))
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            ref.fit(X, y)
        np.testing.assert_array_equal(est._params, ref._params)
        np.testing.assert_array_equal(est.predict(X), ref.predict(X))
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        est.partial_fit(X, y)                 # and training can go on
    assert est.n_iter_ == (kept - 1) // 5 + 1


@needs_estimators
def test_keyboard_interrupt_in_partial_fit_keeps_the_finished_updates(monkeypatch):
    X, y = _interrupt_data()
    est = _fitted_est("RNNRegressor", **dict(INTERRUPTIBLE, max_iter=2))
    X, y = _interrupt_data()
    n_iter = est.n_iter_
    after = interrupting_batches(monkeypatch, 3, "raise")
    with _warnings.catch_warnings(record=True) as record:
        _warnings.simplefilter("always")
        est.partial_fit(X, y)
    assert any("KeyboardInterrupt" in str(w.message) for w in record)
    np.testing.assert_array_equal(est._params, after[-1])
    assert len(after) == 2 and est.n_iter_ == n_iter


@needs_estimators
def test_keyboard_interrupt_between_truncated_windows_keeps_their_updates(monkeypatch):
    """With truncated BPTT every window is an update: an interrupt raised
    after the first window's update of the first mini-batch keeps it."""
    from cbptt._optim import Optimizer
    X, _ = _interrupt_data()
    y = np.cumsum(X.sum(axis=2), axis=1)       # a target at every step
    est = _small("RNNRegressor", **dict(INTERRUPTIBLE, bptt_truncate=4,
                                        output="sequence"))
    original, kept = Optimizer.step, []

    def step(self, params, grads):
        if kept:
            raise KeyboardInterrupt
        original(self, params, grads)
        kept.append(params.copy())

    monkeypatch.setattr(Optimizer, "step", step)
    msg = _fit_interrupted(est, X, y)
    assert "in its first mini-batch" in msg, msg
    np.testing.assert_array_equal(est._params, kept[0])
    assert est.n_iter_ == 0 and est._optimizer.t == 1
    assert np.isfinite(est.predict(X)).all()


@needs_estimators
@pytest.mark.parametrize("how", ["signal2", "raise"])
def test_keyboard_interrupt_before_any_update_is_raised_and_changes_nothing(
        monkeypatch, how):
    """With no finished update there is nothing to keep: the interrupt goes
    on to the caller, an unfitted estimator stays unfitted and a fitted one
    keeps its model."""
    X, y = _interrupt_data()
    fresh = _small("RNNRegressor", **INTERRUPTIBLE)
    fitted = _fitted_est("RNNRegressor", **dict(INTERRUPTIBLE, max_iter=2))
    before = _snapshot(fitted, X)
    state = dict(vars(fitted))
    interrupting_batches(monkeypatch, 1, how)
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(X, y)
    assert not hasattr(fresh, "coefs_") and not hasattr(fresh, "n_iter_")
    for call in (lambda: fitted.fit(X, y), lambda: fitted.partial_fit(X, y)):
        with pytest.raises(KeyboardInterrupt):
            call()
        assert vars(fitted).keys() == state.keys()
        assert fitted.n_iter_ == state["n_iter_"]
        for a, b in zip(before, _snapshot(fitted, X)):
            np.testing.assert_array_equal(a, b)
    assert _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler


@needs_estimators
def test_an_error_after_some_updates_still_rolls_back(monkeypatch):
    """Only KeyboardInterrupt keeps a partly trained model; an error in the
    middle of a fit leaves the previous model exactly as it was."""
    from cbptt._network import Trainer
    X, y = _interrupt_data()
    est = _fitted_est("RNNRegressor", **dict(INTERRUPTIBLE, max_iter=2))
    before = _snapshot(est, X)
    original, calls = Trainer.batch, []

    def batch(self, *args):
        calls.append(1)
        if len(calls) == 4:
            raise MemoryError("out of memory in the 4th mini-batch")
        return original(self, *args)

    monkeypatch.setattr(Trainer, "batch", batch)
    for call in (lambda: est.fit(X, y), lambda: est.partial_fit(X, y)):
        calls.clear()
        with pytest.raises(MemoryError):
            call()
        for a, b in zip(before, _snapshot(est, X)):
            np.testing.assert_array_equal(a, b)


@needs_estimators
@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_failed_warm_fit_leaves_the_training_history_as_it_was(
        monkeypatch, early_stopping):
    """loss_curve_ and validation_scores_ grow in place during a fit: an error
    in a later epoch of a warm fit must not leave the earlier epochs' entries
    behind."""
    from cbptt._network import Trainer
    X, y = _interrupt_data()
    est = _fitted_est("RNNRegressor", **dict(
        INTERRUPTIBLE, max_iter=2, warm_start=True,
        early_stopping=early_stopping, validation_fraction=0.2))
    history = (list(est.loss_curve_), est.n_iter_,
               None if est.validation_scores_ is None
               else list(est.validation_scores_))
    original, calls = Trainer.batch, []

    def batch(self, *args):
        calls.append(1)
        if len(calls) == 6:       # the second epoch's first or second batch
            raise MemoryError("out of memory in the 6th mini-batch")
        return original(self, *args)

    monkeypatch.setattr(Trainer, "batch", batch)
    with pytest.raises(MemoryError):
        est.fit(X, y)
    assert (est.loss_curve_, est.n_iter_, est.validation_scores_) == history


@needs_estimators
@pytest.mark.parametrize("method", ["fit", "partial_fit", "predict", "score"])
def test_nan_padded_input_is_never_written(method):
    """The zeros that replace the NaN padding go into cbptt's own copy, also
    when the time-major view of X would be contiguous (one sequence)."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((20, 6, 2))
    y = X.sum(axis=(1, 2))
    est = _small("RNNRegressor", cell="elman")
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        est.fit(X, y)
        for n in (1, 3):
            x = rng.standard_normal((n, 6, 2))
            x[0, 4:] = np.nan                  # a padded first sequence
            before = x.copy()
            args = (x,) if method == "predict" else (x, y[:n])
            getattr(est, method)(*args)
            np.testing.assert_array_equal(x, before)
