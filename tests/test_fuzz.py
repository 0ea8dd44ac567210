"""Property-based fuzzing of the functional API (hypothesis).

Random shapes, memory layouts (Fortran order, strided, negative-stride and
zero-stride views, read-only arrays, nested lists), dtypes and values
(including extreme magnitudes and subnormals) drive the public functions.
Every call must either return a result that matches the NumPy reference
(``tests/reference.py``) within a rounding-error bound, or raise a
``ValueError``/``TypeError`` that the input justifies. It must never crash,
never return a non-finite value from finite input and never write to its
inputs.

The error bound
---------------
A result ``r`` computed in working precision ``eps`` is compared with the
float64 reference ``ref`` elementwise::

    |r - ref| <= rtol * S + E,     rtol = 4 eps (n + 2) (T + 1)

``S`` is the same computation on absolute values with the identity activation
(every |f| <= |z| and every |f'| <= 1, so ``S`` bounds every partial sum,
cancellation included), ``n`` the length of the longest dot product and ``E``
the flush-to-zero floor: kernels run with FTZ/DAZ, so subnormal inputs count
as zero (the reference flushes them too) and subnormal results flush to zero
(at most ``n * tiny`` per step, propagated like ``S``).

An overflow refusal is justified when the computation really gets near the
dtype's largest value: ``(I + H + 2) * max(S) >= max / 4`` for the forward
pass (the kernel-side bound is within that factor of ``S``), ``max(S) >=
max / 2`` for the backward pass (a non-finite output means some partial sum
of absolute values passed the largest finite value).

``CBPTT_FUZZ_EXAMPLES`` (default 60) sets the number of examples per test;
raise it for a long local run.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from cbptt import _elman, rnn_backward, rnn_forward
from reference import rnn_backward_ref, rnn_forward_ref

ACTS = ["identity", "logistic", "tanh", "relu"]
ACT_CODE = {"identity": 0, "logistic": 1, "tanh": 2, "relu": 3}
LAYOUTS = ["C", "F", "strided", "negative", "zero_stride", "readonly", "list"]
VALID_DTYPES = ["float32", "float64", "float16", "int8", "int64", "uint8"]
# Special values placed into arrays in extreme mode (cast to each dtype).
SPECIALS = [0.0, -0.0, 5e-324, 1e-310, 2.3e-308, 1e-300, 1e-45, 1e-40,
            1.2e-38, 1e-30, 1e30, -1e30, 3e38, -3e38, 1e300, -1e300, 1.7e308]

FUZZ = settings(max_examples=int(os.environ.get("CBPTT_FUZZ_EXAMPLES", 60)),
                deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- building arrays --------------------------------------------------------

def _values(seed, shape, exp, specials):
    """Standard normal values times 10**exp with some entries replaced."""
    with np.errstate(over="ignore"):     # inf is clipped by _cast
        v = np.random.default_rng(seed).standard_normal(shape) * 10.0 ** exp
    flat = v.reshape(-1)
    for pos, val in specials:
        if flat.size:
            flat[int(pos * flat.size) % flat.size] = val
    return v


def _cast(v, dtype):
    """``v`` in ``dtype``, clipped into its range (no inf from the cast)."""
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return np.clip(np.rint(v), float(info.min // 2),
                       float(info.max // 2)).astype(dt)
    big = float(np.finfo(dt).max) / 2
    return np.clip(v, -big, big).astype(dt)


def _layout(a, layout):
    """The same shape in another memory layout (values may change only for
    zero_stride, which repeats the first entry along axis 0)."""
    every = tuple(slice(None, None, 2) for _ in a.shape)
    back = tuple(slice(None, None, -1) for _ in a.shape)
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
        view = big[every]
        view[...] = a
        return view
    if layout == "negative":
        return np.ascontiguousarray(a[back])[back]
    if layout == "zero_stride":
        return np.broadcast_to(a[:1], a.shape)
    if layout == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    if layout == "list":
        return a.tolist()
    raise AssertionError(layout)


@st.composite
def array_specs(draw, extreme):
    """How to make one array: dtype, layout, magnitude, special entries."""
    dtype = draw(st.sampled_from(VALID_DTYPES))
    layout = draw(st.sampled_from(LAYOUTS))
    if extreme:
        exp = draw(st.integers(-320, 308))
        specials = draw(st.lists(st.tuples(st.floats(0, 1),
                                           st.sampled_from(SPECIALS)),
                                 max_size=3))
    else:
        exp = draw(st.sampled_from([-1, 0]))
        specials = []
    return dict(dtype=dtype, layout=layout, exp=exp, specials=specials,
                seed=draw(st.integers(0, 2**32 - 1)))


def make_array(spec, shape, scale=1.0, dtype=None):
    with np.errstate(over="ignore"):
        v = _values(spec["seed"], shape, spec["exp"], spec["specials"]) * scale
    return _layout(_cast(v, dtype or spec["dtype"]), spec["layout"])


@st.composite
def problems(draw):
    """A valid Elman problem: sizes, activation, arrays, loss gradient."""
    B, T = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    I, H = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    extreme = draw(st.booleans())
    all_f32 = draw(st.booleans())
    specs = {name: draw(array_specs(extreme))
             for name in ["x", "weight_ih", "weight_hh", "bias", "h0", "grad_h"]}
    if all_f32:
        for s in specs.values():
            s["dtype"] = "float32"
            if s["layout"] == "list":
                s["layout"] = "C"
    return dict(B=B, T=T, I=I, H=H, specs=specs,
                activation=draw(st.sampled_from(ACTS)),
                with_h0=draw(st.booleans()),
                truncate=draw(st.sampled_from([None, 1, 2, 3, 10])))


def build(p):
    """The arguments of rnn_forward for problem ``p`` (weights scaled so that
    moderate problems stay moderate)."""
    B, T, I, H, s = p["B"], p["T"], p["I"], p["H"], p["specs"]
    args = dict(x=make_array(s["x"], (B, T, I)),
                weight_ih=make_array(s["weight_ih"], (H, I), 0.5),
                weight_hh=make_array(s["weight_hh"], (H, H), 0.5),
                bias=make_array(s["bias"], (H,), 0.1),
                h0=make_array(s["h0"], (B, H), 0.5) if p["with_h0"] else None,
                activation=p["activation"])
    return args


# -- the reference and its error bound --------------------------------------

def working_dtype(arrays):
    return (np.dtype(np.float32) if all(a.dtype == np.float32 for a in arrays)
            else np.dtype(np.float64))


def flushed(a, dtype):
    """What the kernel sees: ``a`` in ``dtype`` with subnormals as zero (DAZ),
    returned in float64."""
    with np.errstate(over="ignore"):
        a = np.asarray(a).astype(dtype)
    a = np.where(np.abs(a) < np.finfo(dtype).tiny, 0, a)
    return a.astype(np.float64)


def assert_close(name, got, ref, tol):
    """|got - ref| <= tol wherever the reference is finite."""
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    with np.errstate(all="ignore"):
        err = np.abs(got.astype(np.float64) - ref)
        tol = np.where(np.isnan(tol), np.inf, tol)   # inf * 0 in the bound
        bad = np.isfinite(ref) & ~(err <= tol)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{name}{list(i)}: got {got[i]!r}, reference "
                             f"{ref[i]!r}, |diff| {err[i]:.3g} > tol {tol[i]:.3g}")


def forward_reference(v, act, dtype):
    """Reference h, its bound S and floor E (float64) for values ``v``."""
    fl = {k: flushed(a, dtype) for k, a in v.items() if a is not None}
    h0 = fl.get("h0")
    B, T, I = fl["x"].shape
    H = fl["weight_ih"].shape[0]
    tiny = float(np.finfo(dtype).tiny)
    with np.errstate(all="ignore"):
        ref = rnn_forward_ref(fl["x"], fl["weight_ih"], fl["weight_hh"],
                              fl["bias"], h0, act)
        # logistic is not bounded by |z| but by 1: add 1 to every step's bound.
        S = rnn_forward_ref(np.abs(fl["x"]), np.abs(fl["weight_ih"]),
                            np.abs(fl["weight_hh"]),
                            np.abs(fl["bias"]) + (act == "logistic"),
                            None if h0 is None else np.abs(h0), "identity")
        E = rnn_forward_ref(np.zeros_like(fl["x"]), np.abs(fl["weight_ih"]),
                            np.abs(fl["weight_hh"]),
                            np.full(H, (I + H + 2) * tiny), None, "identity")
    return fl, ref, S, E


def bound_max(*arrays):
    """The largest entry of error bounds; NaN (inf * 0) counts as inf."""
    return max(float(np.nan_to_num(a, nan=np.inf).max()) for a in arrays)


def rtol(dtype, n, T):
    return 4 * float(np.finfo(dtype).eps) * (n + 2) * (T + 1)


# -- the properties ---------------------------------------------------------

@FUZZ
@given(p=problems())
def test_forward_and_backward_match_reference_or_refuse(p):
    args = build(p)
    B, T, I, H = p["B"], p["T"], p["I"], p["H"]
    act = p["activation"]
    names = ["x", "weight_ih", "weight_hh", "bias", "h0"]
    v = {k: None if args[k] is None else np.asarray(args[k]) for k in names}
    before = {k: a.copy() for k, a in v.items() if a is not None}
    dtype = working_dtype([a for a in v.values() if a is not None])
    fmax = float(np.finfo(dtype).max)
    fl, ref, S, E = forward_reference(v, act, dtype)
    note(f"dtype {dtype}, max S {bound_max(S):.3g}")

    try:
        res = rnn_forward(**args)
    except ValueError as exc:
        assert "too large" in str(exc), exc
        assert (I + H + 2) * bound_max(S) * 1.01 >= fmax / 4, (
            f"refused without cause: max S {bound_max(S):.3g}: {exc}")
        return
    for k, a in before.items():          # inputs untouched
        np.testing.assert_array_equal(np.asarray(args[k]), a, err_msg=k)
    assert res.h.dtype == dtype and res.h.shape == (B, T, H)
    assert np.isfinite(res.h).all(), "non-finite h from finite input"
    assert_close("h", res.h, ref, rtol(dtype, I + H, T) * S + E)

    # Backward, against the reference run on the kernel's own h (so that a
    # relu unit sitting exactly at 0 is judged by the same f').
    g = make_array(p["specs"]["grad_h"], (B, T, H))
    g_v = np.asarray(g)
    h = res.h.astype(np.float64)
    h_saved = res.h.copy()
    gf = flushed(g_v, dtype)
    h0 = fl.get("h0")
    trunc = p["truncate"]
    tiny = float(np.finfo(dtype).tiny)
    with np.errstate(all="ignore"):
        gref = rnn_backward_ref(fl["x"], fl["weight_ih"], fl["weight_hh"],
                                fl["bias"], h0, h, gf, act, trunc)
        absargs = (np.abs(fl["x"]), np.abs(fl["weight_ih"]),
                   np.abs(fl["weight_hh"]), fl["bias"],
                   None if h0 is None else np.abs(h0), np.abs(h))
        gS = rnn_backward_ref(*absargs, np.abs(gf), "identity", trunc)
        gE = rnn_backward_ref(*absargs, np.full_like(gf, (H + 2) * tiny),
                              "identity", trunc)
    try:
        grads = rnn_backward(res, g, truncate=trunc)
    except ValueError as exc:
        assert "overflowed" in str(exc), exc
        worst = bound_max(*gS.values())
        assert worst >= fmax / 2, f"refused without cause: max S {worst:.3g}: {exc}"
        return
    np.testing.assert_array_equal(res.h, h_saved)
    np.testing.assert_array_equal(np.asarray(g), g_v)
    n = T * B + I + H
    for name in ["weight_ih", "weight_hh", "bias", "h0", "x", "delta"]:
        got = getattr(grads, name)
        assert got.dtype == dtype, name
        assert np.isfinite(got).all(), f"non-finite {name} from finite input"
        assert_close(name, got, gref[name],
                     rtol(dtype, n, T) * gS[name] + gE[name] + n * tiny)


# -- bad input: one fault at a time ------------------------------------------

BAD_DTYPES = {
    "bool": lambda a: a > 0,
    "complex": lambda a: a.astype(np.complex128),
    "object": lambda a: a.astype(object),
    "str": lambda a: a.astype(str),
    "bytes": lambda a: a.astype("S8"),
    "datetime": lambda a: a.astype("int64").astype("datetime64[s]"),
}


@st.composite
def faults(draw):
    kind = draw(st.sampled_from(["dtype", "ndim", "size", "empty", "nonfinite",
                                 "activation", "truncate", "grad_h",
                                 "forward_result"]))
    arg = draw(st.sampled_from(["x", "weight_ih", "weight_hh", "bias", "h0"]))
    return dict(kind=kind, arg=arg,
                bad_dtype=draw(st.sampled_from(sorted(BAD_DTYPES))),
                axis=draw(st.integers(0, 2)),
                delta=draw(st.sampled_from([-1, 1, 2])),
                value=draw(st.sampled_from([np.nan, np.inf, -np.inf])),
                pos=draw(st.floats(0, 1)),
                activation=draw(st.sampled_from(
                    ["TANH", "sigmoid", "", None, 2, ["tanh"]])),
                truncate=draw(st.sampled_from([0, -1, 2.0, True, "3", []])))


# Which argument names an error for a size fault may name (the argument, or
# the one whose size it is checked against).
SIZE_PARTNERS = {"x": {"x", "weight_ih", "h0"}, "weight_ih": {"weight_ih", "x",
                 "weight_hh", "bias", "h0"}, "weight_hh": {"weight_hh"},
                 "bias": {"bias"}, "h0": {"h0"}}


def _mutate(a, f):
    """``a`` with fault ``f`` applied (shape, ndim, emptiness or a value)."""
    kind, ax = f["kind"], f["axis"] % a.ndim
    if kind == "dtype":
        return BAD_DTYPES[f["bad_dtype"]](a)
    if kind == "ndim":
        return a[..., None] if f["delta"] > 0 else np.take(a, 0, axis=-1)
    if kind == "size":
        n = max(a.shape[ax] + f["delta"], 1)
        if n == a.shape[ax]:
            n += 1
        return np.resize(a, a.shape[:ax] + (n,) + a.shape[ax + 1:])
    if kind == "empty":
        return np.take(a, [], axis=ax)
    if kind == "nonfinite":
        b = np.array(a, np.float64, order="C")
        b.reshape(-1)[int(f["pos"] * b.size) % b.size] = f["value"]
        return b
    raise AssertionError(kind)


@FUZZ
@given(p=problems(), f=faults())
def test_one_bad_argument_is_refused_clearly(p, f):
    for s in p["specs"].values():        # moderate values: the fault is the only problem
        s["exp"], s["specials"] = 0, []
    p["with_h0"] = True
    args = build(p)
    kind = f["kind"]
    if kind in ("dtype", "ndim", "size", "empty", "nonfinite"):
        a = f["arg"]
        args[a] = _mutate(np.asarray(args[a]), f)
        expect = TypeError if kind == "dtype" else ValueError
        names = SIZE_PARTNERS[a] if kind in ("size", "ndim", "empty") else {a}
        if kind == "size" and a == "x" and f["axis"] == 1:
            rnn_forward(**args)          # another T is no fault
            return
        with pytest.raises(expect) as info:
            rnn_forward(**args)
        msg = str(info.value)
        assert any(n in msg for n in names), msg
        if kind in ("ndim", "size", "empty"):
            assert "shape" in msg or "dimension" in msg, msg
        return
    if kind == "activation":
        args["activation"] = f["activation"]
        with pytest.raises(ValueError, match="activation"):
            rnn_forward(**args)
        return
    res = rnn_forward(**args)
    g = np.ones_like(res.h)
    if kind == "truncate":
        with pytest.raises((TypeError, ValueError), match="truncate"):
            rnn_backward(res, g, truncate=f["truncate"])
    elif kind == "grad_h":
        bad = _mutate(g, dict(f, kind=["dtype", "ndim", "size", "empty",
                                        "nonfinite"][int(f["pos"] * 4.999)]))
        with pytest.raises((TypeError, ValueError), match="grad_h"):
            rnn_backward(res, bad)
    else:
        with pytest.raises(TypeError, match="forward_result"):
            rnn_backward(dict(h=res.h), g)


# -- the compiled boundary: shapes are checked before the GIL is released ----

def _consistent_forward(s):
    T, B, I = s["x"]
    H = s["w_ih"][0]
    return (min(T, B, I, H) >= 1 and s["w_ih"] == (H, I)
            and s["w_hh"] == (H, H) and s["bias"] == (H,)
            and s["h0"] == (B, H) and s["h"] == (T, B, H))


def _consistent_backward(s):
    T, B, I = s["x"]
    H = s["w_ih"][0]
    return (min(T, B, I, H) >= 1 and s["w_ih"] == (H, I)
            and s["w_hh"] == (H, H) and s["h0"] == (B, H)
            and all(s[k] == (T, B, H) for k in ("h", "grad_h", "delta"))
            and s["d_w_ih"] == (H, I) and s["d_w_hh"] == (H, H)
            and s["d_bias"] == (H,) and s["d_h0"] == (B, H)
            and s["d_x"] == (T, B, I) and s["carry"] == (B, H))


@st.composite
def kernel_shapes(draw, backward):
    """Shapes for the kernel wrappers' arguments: consistent, or each size
    replaced with a random one (0 included)."""
    T, B, I, H = (draw(st.integers(1, 4)) for _ in range(4))
    s = dict(x=(T, B, I), w_ih=(H, I), w_hh=(H, H), h0=(B, H), h=(T, B, H))
    if backward:
        s.update(grad_h=(T, B, H), delta=(T, B, H), d_w_ih=(H, I),
                 d_w_hh=(H, H), d_bias=(H,), d_h0=(B, H), d_x=(T, B, I),
                 carry=(B, H))
    else:
        s["bias"] = (H,)
    if draw(st.booleans()):
        for k in draw(st.lists(st.sampled_from(sorted(s)), min_size=1, max_size=3)):
            s[k] = tuple(draw(st.integers(0, 5)) for _ in s[k])
    return s


@FUZZ
@given(s=kernel_shapes(False), dtype=st.sampled_from([np.float32, np.float64]),
       act=st.integers(-1, 4))
def test_kernel_forward_checks_every_shape(s, dtype, act):
    arrs = {k: np.ones(v, dtype) * 0.1 for k, v in s.items()}
    ok = _consistent_forward(s) and 0 <= act <= 3
    if not ok:
        with pytest.raises(ValueError, match="inconsistent"):
            _elman.elman_forward(arrs["x"], arrs["w_ih"], arrs["w_hh"],
                                 arrs["bias"], arrs["h0"], act, arrs["h"])
        return
    _elman.elman_forward(arrs["x"], arrs["w_ih"], arrs["w_hh"], arrs["bias"],
                         arrs["h0"], act, arrs["h"])
    ref = rnn_forward_ref(arrs["x"].swapaxes(0, 1).astype(np.float64),
                          arrs["w_ih"], arrs["w_hh"], arrs["bias"],
                          arrs["h0"], ACTS[act])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(arrs["h"].swapaxes(0, 1), ref, rtol=tol, atol=tol)


@FUZZ
@given(s=kernel_shapes(True), dtype=st.sampled_from([np.float32, np.float64]),
       act=st.integers(-1, 4), truncate=st.integers(-1, 3))
def test_kernel_backward_checks_every_shape(s, dtype, act, truncate):
    arrs = {k: np.full(v, 0.1, dtype) for k, v in s.items()}
    call = lambda: _elman.elman_backward(  # noqa: E731
        arrs["x"], arrs["w_ih"], arrs["w_hh"], arrs["h0"], arrs["h"],
        arrs["grad_h"], act, truncate, arrs["delta"], arrs["d_w_ih"],
        arrs["d_w_hh"], arrs["d_bias"], arrs["d_h0"], arrs["d_x"],
        arrs["carry"])
    if not (_consistent_backward(s) and 0 <= act <= 3 and truncate >= 0):
        with pytest.raises(ValueError, match="inconsistent"):
            call()
        return
    call()
    T, B, I = s["x"]
    ref = rnn_backward_ref(arrs["x"].swapaxes(0, 1).astype(np.float64),
                           arrs["w_ih"], arrs["w_hh"], np.zeros(s["w_ih"][0]),
                           arrs["h0"],
                           arrs["h"].swapaxes(0, 1), arrs["grad_h"].swapaxes(0, 1),
                           ACTS[act], truncate or None)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(arrs["d_w_hh"], ref["weight_hh"], rtol=tol, atol=tol)
    np.testing.assert_allclose(arrs["d_x"].swapaxes(0, 1), ref["x"], rtol=tol, atol=tol)
