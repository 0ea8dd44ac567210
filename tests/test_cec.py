"""The constant error carousel (CEC) layer: forward and exact BPTT against
finite differences, a NumPy reference and PyTorch; the carousel's constant
error flow against the vanishing error of a logistic Elman layer; float32,
edge cases, the kernel-level wrappers and bad input. The exactness tests run
at every instruction set the CPU offers (``isa_level``, conftest.py)."""
import numpy as np
import pytest

from cbptt import cec_backward, cec_forward, lstm_forward, rnn_backward, rnn_forward
from cbptt import _lstm

from conftest import central_diff, rel_err
from reference import cec_backward_ref, cec_forward_ref

GRADS = ["weight_ih", "bias", "h0", "x"]


def make_problem(rng, B=3, T=6, I=4, H=5):
    return dict(
        x=rng.standard_normal((B, T, I)),
        weight_ih=rng.standard_normal((H, I)) * 0.5,
        bias=rng.standard_normal(H) * 0.3,
        h0=rng.standard_normal((B, H)) * 0.5,
        w_out=rng.standard_normal((B, T, H)),   # loss = sum(w_out * s)
    )


def run(p, with_h0=True):
    return cec_forward(p["x"], p["weight_ih"], p["bias"],
                       p["h0"] if with_h0 else None)


@pytest.mark.parametrize("with_h0", [True, False])
@pytest.mark.parametrize("truncate", [None, 1, 2, 4])
def test_matches_numpy_reference(rng, isa_level, with_h0, truncate):
    p = make_problem(rng)
    res = run(p, with_h0)
    hs = cec_forward_ref(p["x"], p["weight_ih"], p["bias"],
                         p["h0"] if with_h0 else None)
    assert res.h.dtype == np.float64
    assert rel_err(res.h, hs) < 1e-12
    g = cec_backward(res, p["w_out"], truncate=truncate)
    ref = cec_backward_ref(p["x"], p["weight_ih"], p["w_out"], truncate)
    for name in GRADS + ["delta"]:
        assert rel_err(getattr(g, name), ref[name]) < 1e-12, name


@pytest.mark.parametrize("with_h0", [True, False])
@pytest.mark.parametrize("truncate", [None, 2, 3])
def test_gradients_match_finite_differences(rng, isa_level, with_h0, truncate):
    p = make_problem(rng, B=2, T=6, I=3, H=4)
    if not with_h0:             # the gradient at the zero state
        p["h0"] = np.zeros_like(p["h0"])
    params = {k: p[k] for k in GRADS}
    T = p["x"].shape[1]
    k = truncate or T
    starts = list(range(0, T, k))
    res0 = run(p)
    fixed_in = {s: res0.h[:, s - 1].copy() for s in starts if s > 0}

    def loss():   # windows evaluated from detached entry states
        total = 0.0
        for s in starts:
            s_in = params["h0"] if s == 0 else fixed_in[s]
            r = cec_forward(params["x"][:, s:s + k], params["weight_ih"],
                            params["bias"], s_in)
            total += float(np.sum(p["w_out"][:, s:s + k] * r.h))
        return total

    g = cec_backward(run(p, with_h0), p["w_out"], truncate=truncate)
    for name in GRADS:
        fd = central_diff(loss, params, name)
        assert rel_err(getattr(g, name), fd) < 1e-6, name


@pytest.mark.parametrize("truncate", [None, 2, 3])
@pytest.mark.parametrize("with_h0", [True, False])
def test_matches_torch_autograd_loop(rng, isa_level, truncate, with_h0):
    torch = pytest.importorskip("torch", reason="torch not installed")
    p = make_problem(rng, B=3, T=7, I=4, H=5)
    if not with_h0:
        p["h0"] = np.zeros_like(p["h0"])
    t = {k: torch.tensor(p[k], dtype=torch.float64, requires_grad=True)
         for k in GRADS}
    s, outs = t["h0"], []
    for step in range(p["x"].shape[1]):
        if truncate and step > 0 and step % truncate == 0:
            s = s.detach()
        s = s + t["x"][:, step] @ t["weight_ih"].T + t["bias"]
        outs.append(s)
    hs = torch.stack(outs, 1)
    (hs * torch.tensor(p["w_out"])).sum().backward()
    res = run(p, with_h0)
    g = cec_backward(res, p["w_out"], truncate=truncate)
    assert rel_err(res.h, hs.detach().numpy()) < 1e-10
    for name in GRADS:
        assert rel_err(getattr(g, name), t[name].grad.numpy()) < 1e-10, name


# --- The carousel and the error-flow contrast -------------------------------

def last_step_loss(shape, rng):
    g = np.zeros(shape)
    g[:, -1] = rng.standard_normal((shape[0], shape[2]))
    return g


def test_cec_delta_is_identical_at_every_step(rng):
    p = make_problem(rng, B=3, T=50, I=2, H=4)
    res = run(p)
    g = cec_backward(res, last_step_loss(res.h.shape, rng))
    for t in range(res.h.shape[1]):
        np.testing.assert_array_equal(g.delta[:, t], g.delta[:, -1])
    np.testing.assert_array_equal(g.h0, g.delta[:, -1])


def test_error_flow_vanishes_in_logistic_elman_but_not_in_the_cec(rng):
    """Hochreiter's analysis: with the logistic's f' <= 1/4 and every
    |w| < 4/H, each step back multiplies ||delta||_inf by at most
    rho = max_k sum_j |w_jk| / 4 < 1, so ||delta(T-1-q)||_inf <= rho^q
    ||delta(T-1)||_inf. The carousel's delta keeps its norm exactly."""
    B, T, I, H = 4, 40, 3, 6
    x = rng.standard_normal((B, T, I))
    w_ih = rng.standard_normal((H, I))
    w_hh = rng.uniform(-1.0, 1.0, (H, H)) * (4.0 / H) * 0.95
    assert np.abs(w_hh).max() < 4.0 / H
    rho = np.abs(w_hh).sum(axis=0).max() / 4.0
    assert rho < 1.0
    grad_h = last_step_loss((B, T, H), rng)

    elman = rnn_forward(x, w_ih, w_hh, np.zeros(H), activation="logistic")
    d_elman = rnn_backward(elman, grad_h).delta
    n_elman = np.abs(d_elman).max(axis=(0, 2))     # ||delta(t)||_inf
    for q in range(T):
        assert n_elman[T - 1 - q] <= rho ** q * n_elman[T - 1] * (1 + 1e-12), q
    assert n_elman[0] < 1e-6 * n_elman[T - 1]       # it does vanish

    cec = cec_forward(x, w_ih, np.zeros(H))
    d_cec = cec_backward(cec, grad_h).delta
    n_cec = np.linalg.norm(d_cec, axis=(0, 2))
    np.testing.assert_array_equal(n_cec, np.full(T, n_cec[-1]))
    assert n_cec[-1] > 0


def test_lstm_1997_carousel_matches_the_bare_cec(rng):
    """A 1997 LSTM whose input and output gates are saturated open (i = o = 1
    to double precision) and whose g is linear in its small input holds
    c(t) = c(t-1) + tanh(z_g): with z_g tiny, the CEC's s(t)."""
    B, T, I, H = 2, 8, 3, 2
    x = rng.standard_normal((B, T, I)) * 1e-9
    w = rng.standard_normal((H, I))
    big = 60.0   # sigma(60) = 1 - 9e-27: exactly 1.0 in float64
    w_ih = np.concatenate([np.zeros((H, I)), w, np.zeros((H, I))])
    bias = np.concatenate([np.full(H, big), np.zeros(H), np.full(H, big)])
    res = lstm_forward(x, w_ih, np.zeros((3 * H, H)), bias, forget_gate=False)
    cec = cec_forward(x, w, np.zeros(H))
    assert np.all(res.gates[:, :, :H] == 1.0)
    assert rel_err(res.c, cec.h) < 1e-12


# --- float32, sizes, layouts ------------------------------------------------

@pytest.mark.parametrize("truncate", [None, 3])
def test_float32_stays_float32_and_agrees(rng, isa_level, truncate):
    p = make_problem(rng, B=4, T=10, I=3, H=8)
    keys = ["x", "weight_ih", "bias", "h0"]
    r64 = cec_forward(*[p[k] for k in keys])
    r32 = cec_forward(*[p[k].astype(np.float32) for k in keys])
    assert r32.h.dtype == np.float32
    assert rel_err(r32.h, r64.h) < 1e-4
    g64 = cec_backward(r64, p["w_out"], truncate)
    g32 = cec_backward(r32, p["w_out"].astype(np.float32), truncate)
    for name in g64._fields:
        assert getattr(g32, name).dtype == np.float32, name
        assert rel_err(getattr(g32, name), getattr(g64, name)) < 1e-4, name


def test_mixed_dtypes_compute_in_float64(rng):
    p = make_problem(rng)
    r = cec_forward(p["x"].astype(np.float32), p["weight_ih"], p["bias"])
    assert r.h.dtype == np.float64


@pytest.mark.parametrize("B,T,I,H", [(1, 1, 1, 1), (1, 5, 1, 1), (3, 1, 2, 4),
                                     (1, 3, 2, 1), (2, 4, 1, 3)])
@pytest.mark.parametrize("truncate", [None, 1])
def test_edge_sizes(rng, isa_level, B, T, I, H, truncate):
    p = make_problem(rng, B=B, T=T, I=I, H=H)
    res = run(p)
    assert rel_err(res.h, cec_forward_ref(p["x"], p["weight_ih"], p["bias"],
                                          p["h0"])) < 1e-12
    g = cec_backward(res, p["w_out"], truncate=truncate)
    ref = cec_backward_ref(p["x"], p["weight_ih"], p["w_out"], truncate)
    for name in ref:
        assert rel_err(getattr(g, name), ref[name]) < 1e-12, name


def test_truncate_at_least_T_is_full_bptt(rng):
    p = make_problem(rng, T=5)
    res = run(p)
    full = cec_backward(res, p["w_out"])
    for k in (5, 6, 10**9):
        g = cec_backward(res, p["w_out"], truncate=k)
        for name in full._fields:
            np.testing.assert_array_equal(getattr(g, name), getattr(full, name))


def test_strided_fortran_readonly_inputs(rng):
    p = make_problem(rng)
    base = run(p)
    x_big = np.zeros((3, 12, 4))
    x_big[:, ::2] = p["x"]
    w_ro = np.asfortranarray(p["weight_ih"])
    w_ro.setflags(write=False)
    res = cec_forward(x_big[:, ::2], w_ro, p["bias"], p["h0"])
    np.testing.assert_array_equal(res.h, base.h)
    g_ro = p["w_out"].copy()
    g_ro.setflags(write=False)
    np.testing.assert_array_equal(cec_backward(res, g_ro).weight_ih,
                                  cec_backward(base, p["w_out"]).weight_ih)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wrappers_on_time_major_buffers(rng, dtype):
    """The kernel-level wrappers fill caller buffers; d_x may be skipped."""
    B, T, I, H = 3, 5, 4, 2
    p = make_problem(rng, B=B, T=T, I=I, H=H)
    cast = lambda a: np.ascontiguousarray(a, dtype)  # noqa: E731
    x_tm = cast(p["x"].swapaxes(0, 1))
    h = np.empty((T, B, H), dtype)
    _lstm.cec_forward(x_tm, cast(p["weight_ih"]), cast(p["bias"]),
                      cast(p["h0"]), h)
    res = cec_forward(*[cast(p[k]) for k in ["x", "weight_ih", "bias", "h0"]])
    np.testing.assert_array_equal(h.swapaxes(0, 1), res.h)
    out = [np.empty(s, dtype) for s in [(T, B, H), (H, I), (H,), (B, H)]]
    _lstm.cec_backward(x_tm, cast(p["weight_ih"]),
                       cast(p["w_out"].swapaxes(0, 1)), 2, *out, None)
    g = cec_backward(res, cast(p["w_out"]), truncate=2)
    for arr, name in zip(out, ["delta", "weight_ih", "bias", "h0"]):
        ref = getattr(g, name)
        np.testing.assert_array_equal(arr.swapaxes(0, 1) if arr.ndim == 3
                                      else arr, ref)
    with pytest.raises(ValueError, match=r"cec_backward: d_bias has shape "
                                         r"\(3,\); expected \(2,\)"):
        _lstm.cec_backward(x_tm, cast(p["weight_ih"]),
                           cast(p["w_out"].swapaxes(0, 1)), 0, out[0], out[1],
                           np.empty(3, dtype), out[3], None)
    with pytest.raises(ValueError, match="cec_backward: d_w_ih shares memory "
                                         "with d_bias"):
        _lstm.cec_backward(x_tm, cast(p["weight_ih"]),
                           cast(p["w_out"].swapaxes(0, 1)), 0, out[0], out[1],
                           out[1][0, :H], out[3], None)
    with pytest.raises(ValueError, match="cec_forward: h shares memory with x"):
        _lstm.cec_forward(x_tm, cast(p["weight_ih"]), cast(p["bias"]),
                          cast(p["h0"]), x_tm.reshape(-1)[:T * B * H].reshape(T, B, H))
    with pytest.raises(ValueError, match=r"cec_forward: h0 has shape"):
        _lstm.cec_forward(x_tm, cast(p["weight_ih"]), cast(p["bias"]),
                          np.empty((B + 1, H), dtype), h)


# --- Bad input --------------------------------------------------------------

BAD_FORWARD = [
    (dict(x=np.zeros((3, 4))), ValueError, "x has 2 dimension"),
    (dict(x=np.zeros((3, 0, 4))), ValueError, r"T \(time steps\) is 0"),
    (dict(x=np.full((3, 6, 4), np.nan)), ValueError, "x contains"),
    (dict(x=np.zeros((3, 6, 4), bool)), TypeError, "x has dtype bool"),
    (dict(x=np.zeros((3, 6, 7))), ValueError,
     r"weight_ih has shape \(5, 4\); expected \(5, 7\)"),
    (dict(weight_ih=np.zeros((0, 4))), ValueError, "weight_ih has shape"),
    (dict(weight_ih=np.zeros(4)), ValueError, "weight_ih has 1 dimension"),
    (dict(bias=np.zeros(4)), ValueError, r"bias has shape \(4,\); expected \(5,\)"),
    (dict(bias=None), TypeError, "bias is None"),
    (dict(h0=np.zeros((3, 4))), ValueError, r"h0 has shape \(3, 4\); expected \(3, 5\)"),
    (dict(h0=np.full((3, 5), np.inf)), ValueError, "h0 contains"),
]


@pytest.mark.parametrize("override,exc,match", BAD_FORWARD)
def test_bad_forward_inputs(rng, override, exc, match):
    p = make_problem(rng)
    kw = dict(x=p["x"], weight_ih=p["weight_ih"], bias=p["bias"], h0=p["h0"])
    kw.update(override)
    with pytest.raises(exc, match=match):
        cec_forward(**kw)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(truncate=0), ValueError, "truncate=0"),
    (dict(truncate="3"), TypeError, "truncate='3'"),
    (dict(grad_h=np.zeros((3, 6, 4))), ValueError,
     r"grad_h has shape \(3, 6, 4\); expected \(3, 6, 5\)"),
    (dict(grad_h=np.full((3, 6, 5), np.nan)), ValueError, "grad_h contains"),
    (dict(forward_result=None), TypeError,
     "forward_result has type NoneType; expected the CECForwardResult"),
])
def test_bad_backward_inputs(rng, kwargs, exc, match):
    p = make_problem(rng)
    kw = dict(forward_result=run(p), grad_h=p["w_out"])
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        cec_backward(**kw)


def test_lstm_result_is_refused(rng):
    p = make_problem(rng)
    res = lstm_forward(p["x"], np.zeros((20, 4)), np.zeros((20, 5)), np.zeros(20))
    with pytest.raises(TypeError, match="expected the CECForwardResult"):
        cec_backward(res, p["w_out"])
