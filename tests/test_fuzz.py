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

from cbptt import (_elman, _lstm, cec_backward, cec_forward, lstm_backward,
                   lstm_forward, rnn_backward, rnn_forward)
from reference import (cec_backward_ref, cec_forward_ref, lstm_backward_ref,
                       lstm_forward_ref, rnn_backward_ref, rnn_forward_ref)

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


LAYER_ARGS = {
    "elman": ["x", "weight_ih", "weight_hh", "bias", "h0"],
    "cec": ["x", "weight_ih", "bias", "h0"],
    "lstm": ["x", "weight_ih", "weight_hh", "bias", "h0", "c0"],
}
FORWARD = {"elman": rnn_forward, "cec": cec_forward, "lstm": lstm_forward}
BACKWARD = {"elman": rnn_backward, "cec": cec_backward, "lstm": lstm_backward}


@st.composite
def problems(draw, layer="elman"):
    """A valid problem for ``layer``: sizes, options, how to make each array."""
    B, T = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    I, H = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    extreme = draw(st.booleans())
    all_f32 = draw(st.booleans())
    specs = {name: draw(array_specs(extreme))
             for name in ["x", "weight_ih", "weight_hh", "bias", "h0", "c0",
                          "grad_h", "grad_c"]}
    if all_f32:
        for s in specs.values():
            s["dtype"] = "float32"
            if s["layout"] == "list":
                s["layout"] = "C"
    return dict(layer=layer, B=B, T=T, I=I, H=H, specs=specs,
                activation=draw(st.sampled_from(ACTS)),
                forget_gate=draw(st.booleans()),
                with_h0=draw(st.booleans()), with_c0=draw(st.booleans()),
                with_grad_c=draw(st.booleans()),
                truncate=draw(st.sampled_from([None, 1, 2, 3, 10])))


def gate_rows(p):
    """Rows of the stacked weights: H, or G*H for the LSTM."""
    if p["layer"] == "lstm":
        return (4 if p["forget_gate"] else 3) * p["H"]
    return p["H"]


def build(p):
    """The keyword arguments of the layer's forward function (weights scaled
    so that moderate problems stay moderate)."""
    B, T, I, H, s = p["B"], p["T"], p["I"], p["H"], p["specs"]
    R = gate_rows(p)
    shapes = dict(x=(B, T, I), weight_ih=(R, I), weight_hh=(R, H), bias=(R,),
                  h0=(B, H), c0=(B, H))
    scale = dict(x=1.0, weight_ih=0.5, weight_hh=0.5, bias=0.1, h0=0.5, c0=0.5)
    args = {k: make_array(s[k], shapes[k], scale[k])
            for k in LAYER_ARGS[p["layer"]]}
    if not p["with_h0"]:
        args["h0"] = None
    if p["layer"] == "elman":
        args["activation"] = p["activation"]
    if p["layer"] == "lstm":
        args["forget_gate"] = p["forget_gate"]
        if not p["with_c0"]:
            args["c0"] = None
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


def bound_max(*arrays):
    """The largest entry of error bounds; NaN (inf * 0) counts as inf."""
    return max(float(np.nan_to_num(a, nan=np.inf).max()) for a in arrays)


def rtol(dtype, n, T):
    return 4 * float(np.finfo(dtype).eps) * (n + 2) * (T + 1)


def preactivation_bound(fl, h_prev):
    """|W_ih| |x(t)| + |W_hh| |h(t-1)| + |b| for every step: the bound on the
    partial sums of the (gate) pre-activations, (B, T, rows)."""
    return (np.abs(fl["x"]) @ np.abs(fl["weight_ih"]).T
            + np.abs(h_prev) @ np.abs(fl["weight_hh"]).T + np.abs(fl["bias"]))


def states_entering(h, h0):
    """h(t-1) for t = 0..T-1: h0 then h(0..T-2), (B, T, H)."""
    return np.concatenate([h0[:, None], h[:, :-1]], axis=1)


def _zeros_if_none(a, shape):
    return np.zeros(shape) if a is None else a


def elman_forward_check(fl, p, dtype):
    """Reference outputs, tolerances and the pre-activation bound Sz."""
    B, T, I = fl["x"].shape
    H = fl["weight_ih"].shape[0]
    act, tiny = p["activation"], float(np.finfo(dtype).tiny)
    h0 = fl.get("h0")
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
    # The kernel-side bound takes |h| <= 1 for the bounded activations.
    h_seen = np.ones_like(ref) if act in ("tanh", "logistic") else ref
    Sz = preactivation_bound(fl, states_entering(h_seen, _zeros_if_none(h0, (B, H))))
    return dict(h=ref), dict(h=rtol(dtype, I + H, T) * S + E), Sz


def cec_forward_check(fl, p, dtype):
    B, T, I = fl["x"].shape
    H = fl["weight_ih"].shape[0]
    tiny = float(np.finfo(dtype).tiny)
    h0 = fl.get("h0")
    ref = cec_forward_ref(fl["x"], fl["weight_ih"], fl["bias"], h0)
    S = cec_forward_ref(np.abs(fl["x"]), np.abs(fl["weight_ih"]),
                        np.abs(fl["bias"]), None if h0 is None else np.abs(h0))
    E = (I + 3) * tiny * np.arange(1, T + 1)[None, :, None]
    return dict(h=ref), dict(h=rtol(dtype, I, T) * S + E), None


def _gate_error(z, e, kind):
    """A bound on |f(z') - f(z)| for |z' - z| <= e: the largest slope of f on
    that interval times e, at most f's range (sound however large e is)."""
    zc = np.maximum(np.abs(z) - e, 0)
    if kind == "logistic":          # sigma'(zc) = sigma(-zc) (1 - sigma(-zc)), no cancellation
        s = 1 / (1 + np.exp(zc))
        return np.minimum(s * (1 - s) * e, 1.0)
    return np.minimum(e / np.cosh(zc) ** 2, 2.0)       # tanh' = sech^2


def lstm_forward_check(fl, p, dtype):
    """Rounding errors propagated through the LSTM step with sound interval
    bounds: a gate's error is its largest slope within the pre-activation's
    error band times that band (a cancelling sum of huge terms can flip a
    saturated gate), products and sums by the triangle inequality."""
    x, wi, wh, b = fl["x"], fl["weight_ih"], fl["weight_hh"], fl["bias"]
    B, T, I = x.shape
    H = wh.shape[1]
    fg = p["forget_gate"]
    G = 4 if fg else 3
    eps, tiny = float(np.finfo(dtype).eps), float(np.finfo(dtype).tiny)
    h0 = _zeros_if_none(fl.get("h0"), (B, H))
    c0 = _zeros_if_none(fl.get("c0"), (B, H))
    hs, cs, gates = lstm_forward_ref(x, wi, wh, b, h0, c0, fg)
    h_in = states_entering(hs, h0)
    Sz = preactivation_bound(fl, states_entering(np.ones_like(hs), h0))  # |h| <= 1
    gam = 2 * eps * (I + H + 4)
    kinds = (["logistic", "logistic", "tanh", "logistic"] if fg
             else ["logistic", "tanh", "logistic"])
    eh, ec = np.zeros((B, H)), np.zeros((B, H))
    tol_h, tol_c, tol_g = np.empty_like(hs), np.empty_like(cs), np.empty_like(gates)
    for t in range(T):
        cp = cs[:, t - 1] if t else c0
        z = np.split(x[:, t] @ wi.T + h_in[:, t] @ wh.T + b, G, axis=1)
        ez = gam * Sz[:, t] + eh @ np.abs(wh).T + (I + H + 2) * tiny
        ez = np.split(ez, G, axis=1)
        val = np.split(gates[:, t], G, axis=1)
        err = [_gate_error(zk, ek, kind) + 2 * eps * np.abs(v) + tiny
               for zk, ek, kind, v in zip(z, ez, kinds, val)]
        if fg:
            (i, f, g, o), (ei, ef, eg, eo) = val, err
        else:
            (i, g, o), (ei, eg, eo), f, ef = val, err, 1.0, 0.0
        ec = (f * ec + (np.abs(cp) + ec) * ef + np.abs(g) * ei + (i + ei) * eg
              + 3 * eps * (np.abs(f * cp) + np.abs(i * g)) + tiny)
        tc = np.tanh(cs[:, t])
        eh = (np.abs(tc) * eo + (o + eo) * _gate_error(cs[:, t], ec, "tanh")
              + 3 * eps * np.abs(hs[:, t]) + tiny)
        tol_g[:, t] = np.concatenate(err, 1)
        tol_h[:, t], tol_c[:, t] = eh, ec
    return (dict(h=hs, c=cs, gates=gates),
            dict(h=2 * tol_h, c=2 * tol_c, gates=2 * tol_g), Sz)


FORWARD_CHECK = {"elman": elman_forward_check, "cec": cec_forward_check,
                 "lstm": lstm_forward_check}
GRAD_NAMES = {
    "elman": ["weight_ih", "weight_hh", "bias", "h0", "x", "delta"],
    "cec": ["weight_ih", "bias", "h0", "x", "delta"],
    "lstm": ["weight_ih", "weight_hh", "bias", "h0", "c0", "x", "delta",
             "delta_c"],
}


def lstm_backward_bound(x, w_ih, w_hh, h0, c0, hs, cs, gates, grad_h, grad_c,
                        forget_gate, truncate, k):
    """The LSTM's BPTT on absolute values with every derivative factor
    (i(1-i), 1-g^2, 1-tanh(c)^2, ...) raised by ``k``: near saturation these
    factors are differences of numbers close to 1, computed from rounded
    gates with an absolute (not relative) error of a few eps."""
    B, T, _ = x.shape
    G = 4 if forget_gate else 3
    H = w_hh.shape[1]
    out = dict(weight_ih=np.zeros_like(w_ih), weight_hh=np.zeros_like(w_hh),
               bias=np.zeros(G * H), x=np.zeros_like(x),
               delta=np.zeros((B, T, G * H)), delta_c=np.zeros((B, T, H)))
    carry_h, carry_c = np.zeros((B, H)), np.zeros((B, H))
    for t in reversed(range(T)):
        parts = np.split(gates[:, t], G, axis=1)
        if forget_gate:
            i, f, g, o = parts
        else:
            (i, g, o), f = parts, np.ones((B, H))
        c_prev = cs[:, t - 1] if t > 0 else c0
        h_prev = hs[:, t - 1] if t > 0 else h0
        dh = grad_h[:, t] + carry_h
        tc = np.tanh(cs[:, t])
        dc = dh * o * (1 - tc * tc + k) + carry_c + grad_c[:, t]
        di, dg = dc * g * (i * (1 - i) + k), dc * i * (1 - g * g + k)
        do = dh * tc * (o * (1 - o) + k)
        d = np.concatenate([di, dc * c_prev * (f * (1 - f) + k), dg, do]
                           if forget_gate else [di, dg, do], 1)
        out["delta"][:, t], out["delta_c"][:, t] = d, dc
        out["weight_ih"] += d.T @ x[:, t]
        out["weight_hh"] += d.T @ h_prev
        out["bias"] += d.sum(0)
        out["x"][:, t] = d @ w_ih
        carry_h, carry_c = d @ w_hh, dc * f
        if truncate is not None and t % truncate == 0 and t > 0:
            carry_h, carry_c = np.zeros((B, H)), np.zeros((B, H))
    out["h0"], out["c0"] = carry_h, carry_c
    return out


def backward_reference(layer, fl, res, p, g, gc, absolute, k=0.0):
    """The reference gradients on the kernel's own forward values (so that a
    relu unit sitting exactly at 0 is judged by the same f'); with
    ``absolute``, the same sums over absolute values (the bound S), the
    LSTM's derivative factors raised by ``k``."""
    A = np.abs if absolute else (lambda a: a)
    opt = lambda a: None if a is None else A(a)  # noqa: E731
    h = res.h.astype(np.float64)
    trunc = p["truncate"]
    if layer == "elman":
        return rnn_backward_ref(A(fl["x"]), A(fl["weight_ih"]),
                                A(fl["weight_hh"]), fl["bias"], opt(fl.get("h0")),
                                A(h), A(g),
                                "identity" if absolute else p["activation"], trunc)
    if layer == "cec":
        return cec_backward_ref(A(fl["x"]), A(fl["weight_ih"]), A(g), trunc)
    fwd = (A(fl["x"]), A(fl["weight_ih"]), A(fl["weight_hh"]))
    B, H = g.shape[0], g.shape[2]
    h0 = _zeros_if_none(fl.get("h0"), (B, H))
    c0 = _zeros_if_none(fl.get("c0"), (B, H))
    states = (A(h0), A(c0), A(h), A(res.c.astype(np.float64)),
              A(res.gates.astype(np.float64)))
    if not absolute:
        return lstm_backward_ref(*fwd, *states, g, gc, p["forget_gate"], trunc)
    return lstm_backward_bound(*fwd, *states, A(g),
                               np.zeros_like(g) if gc is None else A(gc),
                               p["forget_gate"], trunc, k)


def delta_flush_floor(layer, fl, res, p, dtype):
    """Flush-to-zero floor of the gradients: every error signal may lose up
    to ``c * tiny`` (a subnormal result flushed), which the sums over steps
    then multiply by |x|, |h(t-1)| or |W|; every product in a sum may lose
    as much again."""
    B, T, I = fl["x"].shape
    H, R = p["H"], gate_rows(p)
    c = 8 * float(np.finfo(dtype).tiny)
    ax = np.abs(fl["x"]).sum((0, 1))
    out = dict(weight_ih=c * np.outer(np.ones(R), ax), bias=np.full(R, c * T * B),
               x=np.broadcast_to(c * np.abs(fl["weight_ih"]).sum(0), (B, T, I)),
               delta=np.full((B, T, R), c), delta_c=np.full((B, T, H), c),
               h0=np.full((B, H), c), c0=np.full((B, H), c))
    if layer != "cec":
        h0 = _zeros_if_none(fl.get("h0"), (B, H))
        hp = np.abs(states_entering(res.h.astype(np.float64), h0)).sum((0, 1))
        out["weight_hh"] = c * np.outer(np.ones(R), hp)
        out["h0"] = out["h0"] + c * np.abs(fl["weight_hh"]).sum(0)
    # ... and every product in those sums may flush too.
    for k in ("weight_ih", "weight_hh", "bias", "x", "h0"):
        if k in out:
            out[k] = out[k] + c * (T * B + R + H + 2)
    return out


def call_backward(layer, res, g, gc, truncate):
    if layer == "lstm":
        return lstm_backward(res, g, grad_c=gc, truncate=truncate)
    return BACKWARD[layer](res, g, truncate=truncate)


# -- the properties ---------------------------------------------------------

@pytest.mark.parametrize("layer", ["elman", "cec", "lstm"])
@FUZZ
@given(data=st.data())
def test_forward_and_backward_match_reference_or_refuse(layer, data):
    p = data.draw(problems(layer), label="problem")
    args = build(p)
    B, T, I, H = p["B"], p["T"], p["I"], p["H"]
    names = LAYER_ARGS[layer]
    v = {k: np.asarray(args[k]) for k in names if args[k] is not None}
    before = {k: a.copy() for k, a in v.items()}
    dtype = working_dtype(list(v.values()))
    fmax, tiny = float(np.finfo(dtype).max), float(np.finfo(dtype).tiny)
    fl = {k: flushed(a, dtype) for k, a in v.items()}
    with np.errstate(all="ignore"):
        refs, tols, Sz = FORWARD_CHECK[layer](fl, p, dtype)
    note(f"dtype {dtype}, max |pre-activation| bound "
         f"{bound_max(Sz) if Sz is not None else None}")

    try:
        res = FORWARD[layer](**args)
    except ValueError as exc:
        if Sz is None:                   # the CEC: its states overflowed
            assert "overflowed" in str(exc), exc
            with np.errstate(all="ignore"):
                S = cec_forward_ref(np.abs(fl["x"]), np.abs(fl["weight_ih"]),
                                    np.abs(fl["bias"]),
                                    np.abs(fl["h0"]) if "h0" in fl else None)
            assert bound_max(S) >= fmax / 2, f"refused without cause: {exc}"
        else:
            assert "too large" in str(exc), exc
            assert (I + H + 2) * bound_max(Sz) * 1.01 >= fmax / 4, (
                f"refused without cause: bound {bound_max(Sz):.3g}: {exc}")
        return
    if Sz is not None:                   # no overflow can hide in a success
        assert bound_max(Sz) < fmax
    for k, a in before.items():          # inputs untouched
        np.testing.assert_array_equal(np.asarray(args[k]), a, err_msg=k)
    for name, ref in refs.items():
        got = getattr(res, name)
        assert got.dtype == dtype, name
        assert np.isfinite(got).all(), f"non-finite {name} from finite input"
        assert_close(name, got, ref, tols[name])

    g = make_array(p["specs"]["grad_h"], (B, T, H))
    gc = (make_array(p["specs"]["grad_c"], (B, T, H))
          if layer == "lstm" and p["with_grad_c"] else None)
    gf = flushed(g, dtype)
    gcf = None if gc is None else flushed(gc, dtype)
    saved = {k: np.array(getattr(res, k)) for k in refs}
    g_saved = np.array(g)
    with np.errstate(all="ignore"):
        gref = backward_reference(layer, fl, res, p, gf, gcf, False)
        # Derivative factors carry an absolute error of a few eps: the
        # bound's growth when they are raised by k is their share.
        k = 8 * float(np.finfo(dtype).eps)
        gS = backward_reference(layer, fl, res, p, gf, gcf, True, k)
        gS0 = backward_reference(layer, fl, res, p, gf, gcf, True)
        wh = np.abs(fl.get("weight_hh", np.zeros((1, 1)))).sum(0).max()
        floor = np.full_like(gf, 8 * tiny * (1 + wh))
        gE = backward_reference(layer, fl, res, p, floor,
                                None if gc is None else floor, True)
        flush = delta_flush_floor(layer, fl, res, p, dtype)
    try:
        grads = call_backward(layer, res, g, gc, p["truncate"])
    except ValueError as exc:
        assert "overflowed" in str(exc), exc
        worst = bound_max(*gS.values())
        assert worst >= fmax / 2, f"refused without cause: max S {worst:.3g}: {exc}"
        return
    for k, a in saved.items():           # the forward result is untouched
        np.testing.assert_array_equal(getattr(res, k), a, err_msg=k)
    np.testing.assert_array_equal(np.asarray(g), g_saved)
    n = T * B + I + gate_rows(p) + H
    for name in GRAD_NAMES[layer]:
        got = getattr(grads, name)
        assert got.dtype == dtype, name
        assert np.isfinite(got).all(), f"non-finite {name} from finite input"
        with np.errstate(all="ignore"):
            tol = (rtol(dtype, n, T) * gS[name] + (gS[name] - gS0[name])
                   + gE[name] + flush[name])
        assert_close(name, got, gref[name], tol)


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
def faults(draw, layer):
    kind = draw(st.sampled_from(["dtype", "ndim", "size", "empty", "nonfinite",
                                 "option", "truncate", "grad_h", "grad_c",
                                 "forward_result"]))
    return dict(kind=kind, arg=draw(st.sampled_from(LAYER_ARGS[layer])),
                bad_dtype=draw(st.sampled_from(sorted(BAD_DTYPES))),
                axis=draw(st.integers(0, 2)),
                delta=draw(st.sampled_from([-1, 1, 2])),
                value=draw(st.sampled_from([np.nan, np.inf, -np.inf])),
                pos=draw(st.floats(0, 1)),
                activation=draw(st.sampled_from(
                    ["TANH", "sigmoid", "", None, 2, ["tanh"]])),
                forget_gate=draw(st.sampled_from(["yes", 1, None, 0.0])),
                truncate=draw(st.sampled_from([0, -1, 2.0, True, "3", []])))


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


ARRAY_FAULTS = ["dtype", "ndim", "size", "empty", "nonfinite"]


@pytest.mark.parametrize("layer", ["elman", "cec", "lstm"])
@FUZZ
@given(data=st.data())
def test_one_bad_argument_is_refused_clearly(layer, data):
    p = data.draw(problems(layer), label="problem")
    f = data.draw(faults(layer), label="fault")
    for s in p["specs"].values():        # moderate values: the fault is the only problem
        s["exp"], s["specials"] = 0, []
    p["with_h0"] = p["with_c0"] = True
    args = build(p)
    forward, kind = FORWARD[layer], f["kind"]
    if kind in ARRAY_FAULTS:
        a = f["arg"]
        args[a] = _mutate(np.asarray(args[a]), f)
        if kind == "size" and a == "x" and f["axis"] == 1:
            forward(**args)              # another T is no fault
            return
        with pytest.raises(TypeError if kind == "dtype" else ValueError) as info:
            forward(**args)
        msg = str(info.value)
        if kind in ("dtype", "nonfinite"):
            assert a in msg, msg
        else:   # the argument, or the one its size is checked against
            assert any(n in msg for n in LAYER_ARGS[layer]), msg
            assert "shape" in msg or "dimension" in msg, msg
        assert "expected" in msg, msg
        return
    if kind == "option":
        if layer == "cec":
            return                       # the CEC has no option
        opt = "activation" if layer == "elman" else "forget_gate"
        args[opt] = f[opt]
        with pytest.raises((TypeError, ValueError), match=opt):
            forward(**args)
        return
    res = forward(**args)
    g = np.ones_like(res.h)
    backward = BACKWARD[layer]
    if kind == "truncate":
        with pytest.raises((TypeError, ValueError), match="truncate"):
            backward(res, g, truncate=f["truncate"])
    elif kind in ("grad_h", "grad_c"):
        if kind == "grad_c" and layer != "lstm":
            return
        bad = _mutate(g, dict(f, kind=ARRAY_FAULTS[int(f["pos"] * 4.999)]))
        with pytest.raises((TypeError, ValueError), match=kind):
            if kind == "grad_c":
                backward(res, g, grad_c=bad)
            else:
                backward(res, bad)
    else:
        other = rnn_forward(np.ones((1, 1, 1)), np.ones((1, 1)), np.ones((1, 1)),
                            np.ones(1)) if layer != "elman" else dict(h=res.h)
        with pytest.raises(TypeError, match="forward_result"):
            backward(other, g)


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
            and s["d_x"] == (T, B, I))


@st.composite
def kernel_shapes(draw, backward):
    """Shapes for the kernel wrappers' arguments: consistent, or each size
    replaced with a random one (0 included)."""
    T, B, I, H = (draw(st.integers(1, 4)) for _ in range(4))
    s = dict(x=(T, B, I), w_ih=(H, I), w_hh=(H, H), h0=(B, H), h=(T, B, H))
    if backward:
        s.update(grad_h=(T, B, H), delta=(T, B, H), d_w_ih=(H, I),
                 d_w_hh=(H, H), d_bias=(H,), d_h0=(B, H), d_x=(T, B, I))
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
        arrs["d_w_hh"], arrs["d_bias"], arrs["d_h0"], arrs["d_x"])
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


# Every compiled wrapper, argument by argument: a shape template over the
# sizes the wrapper derives (T, B, I from x; H from the weights; R = rows of
# the stacked weights), an int option, or a bool.
WRAPPERS = {
    "elman_forward": (_elman.elman_forward, "H:w_ih.0", [
        ("x", "TBI"), ("w_ih", "RI"), ("w_hh", "RH"), ("bias", "R"),
        ("h0", "BH"), ("act", "act"), ("h", "TBH")]),
    "elman_backward": (_elman.elman_backward, "H:w_ih.0", [
        ("x", "TBI"), ("w_ih", "RI"), ("w_hh", "RH"), ("h0", "BH"),
        ("h", "TBH"), ("grad_h", "TBH"), ("act", "act"), ("truncate", "trunc"),
        ("delta", "TBH"), ("d_w_ih", "RI"), ("d_w_hh", "RH"), ("d_bias", "R"),
        ("d_h0", "BH"), ("d_x", "TBI")]),
    "lstm_forward": (_lstm.lstm_forward, "H:w_hh.1", [
        ("x", "TBI"), ("w_ih", "RI"), ("w_hh", "RH"), ("bias", "R"),
        ("h0", "BH"), ("c0", "BH"), ("forget_gate", "bool"), ("gates", "TBR"),
        ("c", "TBH"), ("h", "TBH")]),
    "lstm_backward": (_lstm.lstm_backward, "H:w_hh.1", [
        ("x", "TBI"), ("w_ih", "RI"), ("w_hh", "RH"), ("h0", "BH"),
        ("c0", "BH"), ("gates", "TBR"), ("c", "TBH"), ("h", "TBH"),
        ("grad_h", "TBH"), ("grad_c", "TBH"), ("forget_gate", "bool"),
        ("truncate", "trunc"), ("delta", "TBR"), ("delta_c", "TBH"),
        ("d_w_ih", "RI"), ("d_w_hh", "RH"), ("d_bias", "R"), ("d_h0", "BH"),
        ("d_c0", "BH"), ("d_x", "TBI")]),
    "cec_forward": (_lstm.cec_forward, "H:w_ih.0", [
        ("x", "TBI"), ("w_ih", "RI"), ("bias", "R"), ("h0", "BH"), ("h", "TBH")]),
    "cec_backward": (_lstm.cec_backward, "H:w_ih.0", [
        ("x", "TBI"), ("w_ih", "RI"), ("grad_h", "TBH"), ("truncate", "trunc"),
        ("delta", "TBH"), ("d_w_ih", "RI"), ("d_bias", "R"), ("d_h0", "BH"),
        ("d_x", "TBI")]),
}


def _sizes(name, arrays, options):
    """The sizes the wrapper derives from its arguments."""
    _, rule, _ = WRAPPERS[name]
    src, axis = rule[2:].split(".")
    T, B, I = arrays["x"].shape
    H = arrays[src].shape[int(axis)]
    G = (4 if options.get("forget_gate", True) else 3) if name.startswith("lstm") else 1
    return dict(T=T, B=B, I=I, H=H, R=G * H)


@st.composite
def wrapper_calls(draw, name):
    """Arguments for a wrapper: consistent, or with a few shapes replaced."""
    _, _, spec = WRAPPERS[name]
    fg = draw(st.booleans())
    n = dict(T=draw(st.integers(1, 4)), B=draw(st.integers(1, 4)),
             I=draw(st.integers(1, 4)), H=draw(st.integers(1, 4)))
    n["R"] = (4 if fg else 3) * n["H"] if name.startswith("lstm") else n["H"]
    shapes = {a: tuple(n[c] for c in t) for a, t in spec
              if t not in ("act", "trunc", "bool")}
    for a in draw(st.lists(st.sampled_from(sorted(shapes)), max_size=3)):
        shapes[a] = tuple(draw(st.integers(0, 5)) for _ in shapes[a])
    options = dict(act=draw(st.integers(-1, 4)), truncate=draw(st.integers(-1, 3)),
                   forget_gate=fg)
    return shapes, options


@pytest.mark.parametrize("name", sorted(WRAPPERS))
@FUZZ
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_every_wrapper_refuses_inconsistent_shapes(name, data, dtype):
    fn, _, spec = WRAPPERS[name]
    shapes, options = data.draw(wrapper_calls(name), label="call")
    arrays = {a: np.full(s, 0.5 if a == "gates" else 0.1, dtype)
              for a, s in shapes.items()}
    args = [arrays[a] if t not in ("act", "trunc", "bool") else
            options[{"act": "act", "trunc": "truncate", "bool": "forget_gate"}[t]]
            for a, t in spec]
    ok = min(arrays["x"].shape) >= 1
    if ok:
        n = _sizes(name, arrays, options)
        ok = n["H"] >= 1 and all(arrays[a].shape == tuple(n[c] for c in t)
                                 for a, t in spec if a in arrays)
    kinds = {t for _, t in spec}
    ok = (ok and ("trunc" not in kinds or options["truncate"] >= 0)
          and ("act" not in kinds or 0 <= options["act"] <= 3))
    if ok:
        fn(*args)
    else:
        with pytest.raises(ValueError):
            fn(*args)


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_every_wrapper_refuses_none_arrays(name):
    """None where an array belongs: refused (or, for the documented optional
    grad_c / d_x, skipped), never dereferenced."""
    fn, _, spec = WRAPPERS[name]
    optional = ({"grad_c", "d_x"} if name in ("lstm_backward", "cec_backward")
                else {"d_x"} if name == "elman_backward" else set())
    n = dict(T=3, B=2, I=4, H=5, R=20 if name.startswith("lstm") else 5)
    base = [np.full(tuple(n[c] for c in t), 0.5 if a == "gates" else 0.1)
            if t not in ("act", "trunc", "bool") else
            {"act": 2, "trunc": 0, "bool": True}[t] for a, t in spec]
    fn(*base)
    for k, (a, t) in enumerate(spec):
        if t in ("act", "trunc", "bool"):
            continue
        args = list(base)
        args[k] = None
        if a in optional:
            fn(*args)
        else:
            with pytest.raises((ValueError, TypeError)):
                fn(*args)
