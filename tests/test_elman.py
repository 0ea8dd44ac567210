"""The Elman layer: forward and exact BPTT against finite differences,
a NumPy reference, PyTorch autograd, float32, edge cases and bad input.
The exactness tests run at every instruction set the CPU offers
(``isa_level``, conftest.py)."""
import numpy as np
import pytest

from cbptt import rnn_backward, rnn_forward
from cbptt import _blas

from conftest import central_diff, rel_err
from reference import rnn_backward_ref, rnn_forward_ref

ACTS = ["tanh", "logistic", "relu", "identity"]


def make_problem(rng, B=3, T=6, I=4, H=5, scale=0.5, with_h0=True):
    p = dict(
        x=rng.standard_normal((B, T, I)),
        weight_ih=rng.standard_normal((H, I)) * scale,
        weight_hh=rng.standard_normal((H, H)) * scale,
        bias=rng.standard_normal(H) * 0.1,
    )
    p["h0"] = rng.standard_normal((B, H)) * 0.5 if with_h0 else None
    p["w_out"] = rng.standard_normal((B, T, H))  # loss = sum(w_out * h)
    return p


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_blas_gemm_matches_numpy(rng, dtype, ta, tb):
    a = rng.standard_normal((5, 7) if not ta else (7, 5)).astype(dtype)
    b = rng.standard_normal((7, 3) if not tb else (3, 7)).astype(dtype)
    c = rng.standard_normal((5, 3)).astype(dtype)
    expect = 2.0 * ((a.T if ta else a) @ (b.T if tb else b)) + 0.5 * c
    _blas._gemm_check(a, b, c, ta, tb, 2.0, 0.5)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    assert rel_err(c, expect) < tol


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("with_h0", [True, False])
@pytest.mark.parametrize("truncate", [None, 2, 4])
def test_matches_numpy_reference(rng, isa_level, activation, with_h0, truncate):
    p = make_problem(rng, with_h0=with_h0)
    res = rnn_forward(p["x"], p["weight_ih"], p["weight_hh"], p["bias"],
                      p["h0"], activation)
    hs = rnn_forward_ref(p["x"], p["weight_ih"], p["weight_hh"], p["bias"],
                         p["h0"], activation)
    assert res.h.dtype == np.float64
    assert rel_err(res.h, hs) < 1e-12
    g = rnn_backward(res, p["w_out"], truncate=truncate)
    ref = rnn_backward_ref(p["x"], p["weight_ih"], p["weight_hh"], p["bias"],
                           p["h0"], hs, p["w_out"], activation, truncate)
    for name in ["weight_ih", "weight_hh", "bias", "h0", "x", "delta"]:
        assert rel_err(getattr(g, name), ref[name]) < 1e-12, name


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("with_h0", [True, False])
@pytest.mark.parametrize("truncate", [None, 3])
def test_gradients_match_finite_differences(rng, isa_level, activation, with_h0,
                                            truncate):
    p = make_problem(rng, B=2, T=5, I=3, H=4, with_h0=with_h0)
    if with_h0 is False:
        p["h0"] = None
    # The loss whose gradient truncated BPTT computes exactly: with windows,
    # the state entering a window is a constant (detached), so evaluate the
    # windows separately from the states a full forward pass gave them.
    params = {k: p[k] for k in ["x", "weight_ih", "weight_hh", "bias"]}
    if p["h0"] is not None:
        params["h0"] = p["h0"]
    B, T, _ = p["x"].shape
    k = truncate or T
    starts = list(range(0, T, k))
    res0 = rnn_forward(p["x"], p["weight_ih"], p["weight_hh"], p["bias"],
                       p["h0"], activation)
    fixed_in = {s: res0.h[:, s - 1].copy() for s in starts if s > 0}

    def loss():
        total = 0.0
        for s in starts:
            h_in = params.get("h0") if s == 0 else fixed_in[s]
            r = rnn_forward(params["x"][:, s:s + k], params["weight_ih"],
                            params["weight_hh"], params["bias"], h_in,
                            activation)
            total += float(np.sum(p["w_out"][:, s:s + k] * r.h))
        return total

    res = rnn_forward(params["x"], params["weight_ih"], params["weight_hh"],
                      params["bias"], params.get("h0"), activation)
    g = rnn_backward(res, p["w_out"], truncate=truncate)
    for name in params:
        if name == "x" and truncate is not None:
            continue  # x of a window also moves the detached states of later ones
        fd = central_diff(loss, params, name)
        assert rel_err(getattr(g, name), fd) < 1e-6, name
    if "h0" not in params:
        # gradient at the zero state
        params["h0"] = np.zeros((B, p["weight_ih"].shape[0]))
        fd = central_diff(loss, params, "h0")
        assert rel_err(g.h0, fd) < 1e-6


def test_x_gradient_with_truncation_is_windowed(rng):
    """dL/dx(t) under truncation only sees errors of t's own window."""
    p = make_problem(rng, B=2, T=6, I=3, H=4)
    res = rnn_forward(p["x"], p["weight_ih"], p["weight_hh"], p["bias"], p["h0"])
    g = np.zeros_like(res.h)
    g[:, 5] = 1.0   # loss only at the last step, window [3, 6)
    grads = rnn_backward(res, g, truncate=3)
    assert np.all(grads.x[:, :3] == 0.0)
    assert np.all(grads.delta[:, :3] == 0.0)
    assert np.abs(grads.x[:, 3:]).max() > 0


def _torch():
    return pytest.importorskip("torch", reason="torch not installed")


def _torch_loop(torch, p, activation, truncate):
    """A hand-written torch Elman loop under autograd, detaching every k steps."""
    f = {"tanh": torch.tanh, "logistic": torch.sigmoid, "relu": torch.relu,
         "identity": lambda z: z}[activation]
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
         for k, v in p.items() if k != "w_out" and v is not None}
    B, T, _ = p["x"].shape
    h = t["h0"] if "h0" in t else torch.zeros(B, p["weight_ih"].shape[0],
                                               dtype=torch.float64,
                                               requires_grad=True)
    if "h0" not in t:
        t["h0"] = h
    outs = []
    for s in range(T):
        if truncate and s > 0 and s % truncate == 0:
            h = h.detach()
        h = f(t["x"][:, s] @ t["weight_ih"].T + h @ t["weight_hh"].T + t["bias"])
        outs.append(h)
    hs = torch.stack(outs, 1)
    (hs * torch.tensor(p["w_out"])).sum().backward()
    return hs, t


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("truncate", [None, 2])
@pytest.mark.parametrize("with_h0", [True, False])
def test_matches_torch_autograd(rng, isa_level, activation, truncate, with_h0):
    torch = _torch()
    p = make_problem(rng, B=3, T=7, I=4, H=5, with_h0=with_h0)
    res = rnn_forward(p["x"], p["weight_ih"], p["weight_hh"], p["bias"],
                      p["h0"], activation)
    g = rnn_backward(res, p["w_out"], truncate=truncate)
    hs, t = _torch_loop(torch, p, activation, truncate)
    assert rel_err(res.h, hs.detach().numpy()) < 1e-10
    for name in ["weight_ih", "weight_hh", "bias", "h0", "x"]:
        assert rel_err(getattr(g, name), t[name].grad.numpy()) < 1e-10, name


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_matches_torch_nn_rnn(rng, activation):
    torch = _torch()
    p = make_problem(rng, B=3, T=8, I=4, H=6)
    rnn = torch.nn.RNN(4, 6, nonlinearity=activation, batch_first=True).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(p["weight_ih"]))
        rnn.weight_hh_l0.copy_(torch.tensor(p["weight_hh"]))
        rnn.bias_ih_l0.copy_(torch.tensor(p["bias"]))
        rnn.bias_hh_l0.zero_()
    x = torch.tensor(p["x"], requires_grad=True)
    h0 = torch.tensor(p["h0"][None], requires_grad=True)
    out, _ = rnn(x, h0)
    (out * torch.tensor(p["w_out"])).sum().backward()
    res = rnn_forward(p["x"], p["weight_ih"], p["weight_hh"], p["bias"],
                      p["h0"], activation)
    g = rnn_backward(res, p["w_out"])
    assert rel_err(res.h, out.detach().numpy()) < 1e-10
    assert rel_err(g.weight_ih, rnn.weight_ih_l0.grad.numpy()) < 1e-10
    assert rel_err(g.weight_hh, rnn.weight_hh_l0.grad.numpy()) < 1e-10
    assert rel_err(g.bias, rnn.bias_ih_l0.grad.numpy()) < 1e-10
    assert rel_err(g.h0, h0.grad.numpy()[0]) < 1e-10
    assert rel_err(g.x, x.grad.numpy()) < 1e-10


@pytest.mark.parametrize("activation", ACTS)
def test_float32_stays_float32_and_agrees(rng, isa_level, activation):
    p = make_problem(rng, B=4, T=10, I=3, H=8)
    args64 = [p["x"], p["weight_ih"], p["weight_hh"], p["bias"], p["h0"]]
    args32 = [a.astype(np.float32) for a in args64]
    r64 = rnn_forward(*args64, activation=activation)
    r32 = rnn_forward(*args32, activation=activation)
    assert r32.h.dtype == np.float32
    g64 = rnn_backward(r64, p["w_out"])
    g32 = rnn_backward(r32, p["w_out"].astype(np.float32))
    assert rel_err(r32.h, r64.h) < 1e-4
    for name in g64._fields:
        assert getattr(g32, name).dtype == np.float32
        assert rel_err(getattr(g32, name), getattr(g64, name)) < 1e-4, name


def test_mixed_dtypes_compute_in_float64(rng):
    p = make_problem(rng)
    r = rnn_forward(p["x"].astype(np.float32), p["weight_ih"], p["weight_hh"],
                    p["bias"])
    assert r.h.dtype == np.float64


@pytest.mark.parametrize("B,T,I,H", [(1, 1, 1, 1), (1, 5, 1, 1), (3, 1, 2, 4),
                                     (1, 3, 2, 1), (2, 4, 1, 3)])
@pytest.mark.parametrize("truncate", [None, 1])
def test_edge_sizes(rng, isa_level, B, T, I, H, truncate):
    p = make_problem(rng, B=B, T=T, I=I, H=H)
    res = rnn_forward(p["x"], p["weight_ih"], p["weight_hh"], p["bias"], p["h0"])
    hs = rnn_forward_ref(p["x"], p["weight_ih"], p["weight_hh"], p["bias"], p["h0"])
    assert rel_err(res.h, hs) < 1e-12
    g = rnn_backward(res, p["w_out"], truncate=truncate)
    ref = rnn_backward_ref(p["x"], p["weight_ih"], p["weight_hh"], p["bias"],
                           p["h0"], hs, p["w_out"], "tanh", truncate)
    for name in ref:
        assert rel_err(getattr(g, name), ref[name]) < 1e-12, name


def test_truncate_at_least_T_is_full_bptt(rng):
    p = make_problem(rng, T=5)
    res = rnn_forward(p["x"], p["weight_ih"], p["weight_hh"], p["bias"], p["h0"])
    full = rnn_backward(res, p["w_out"])
    for k in (5, 6, 10**9):
        g = rnn_backward(res, p["w_out"], truncate=k)
        for name in full._fields:
            np.testing.assert_array_equal(getattr(g, name), getattr(full, name))


def test_strided_fortran_readonly_inputs(rng):
    p = make_problem(rng, B=3, T=6, I=4, H=5)
    base = rnn_forward(p["x"], p["weight_ih"], p["weight_hh"], p["bias"], p["h0"])
    x_big = np.zeros((3, 12, 4))
    x_big[:, ::2] = p["x"]
    w_f = np.asfortranarray(p["weight_hh"])
    w_ro = p["weight_ih"].copy()
    w_ro.setflags(write=False)
    res = rnn_forward(x_big[:, ::2], w_ro, w_f, p["bias"], p["h0"])
    np.testing.assert_array_equal(res.h, base.h)
    g_ro = p["w_out"].copy()
    g_ro.setflags(write=False)
    g = rnn_backward(res, g_ro)
    np.testing.assert_array_equal(g.weight_hh, rnn_backward(base, p["w_out"]).weight_hh)


def test_lists_are_accepted(rng):
    p = make_problem(rng, B=1, T=2, I=1, H=1)
    r = rnn_forward(p["x"].tolist(), p["weight_ih"].tolist(),
                    p["weight_hh"].tolist(), p["bias"].tolist())
    assert r.h.shape == (1, 2, 1)


BAD_FORWARD = [
    (dict(x=np.zeros((3, 4))), ValueError, "x has 2 dimension"),
    (dict(x=np.zeros((0, 6, 4))), ValueError, "batch is 0"),
    (dict(x=np.zeros((3, 0, 4))), ValueError, "T \\(time steps\\) is 0"),
    (dict(x=np.full((3, 6, 4), np.nan)), ValueError, "x contains"),
    (dict(x=np.zeros((3, 6, 4), bool)), TypeError, "x has dtype bool"),
    (dict(x=np.zeros((3, 6, 4), complex)), TypeError, "x has dtype complex"),
    (dict(x=np.array([[["a"]]])), TypeError, "x has dtype"),
    (dict(x=np.zeros((3, 6, 7))), ValueError, r"weight_ih has shape \(5, 4\); expected \(5, 7\)"),
    (dict(weight_hh=np.zeros((5, 4))), ValueError, r"weight_hh has shape \(5, 4\); expected \(5, 5\)"),
    (dict(weight_hh=np.full((5, 5), np.inf)), ValueError, "weight_hh contains"),
    (dict(bias=np.zeros(4)), ValueError, r"bias has shape \(4,\); expected \(5,\)"),
    (dict(h0=np.zeros((2, 5))), ValueError, r"h0 has shape \(2, 5\); expected \(3, 5\)"),
    (dict(h0=np.zeros(5)), ValueError, "h0 has 1 dimension"),
    (dict(weight_ih=np.zeros((0, 4))), ValueError, "weight_ih has shape"),
    (dict(activation="softmax"), ValueError, "activation='softmax'"),
    (dict(activation=None), ValueError, "activation=None"),
    (dict(x=None), TypeError, "x is None"),
]


@pytest.mark.parametrize("override,exc,match", BAD_FORWARD)
def test_bad_forward_inputs(rng, override, exc, match):
    p = make_problem(rng)
    kw = dict(x=p["x"], weight_ih=p["weight_ih"], weight_hh=p["weight_hh"],
              bias=p["bias"], h0=p["h0"], activation="tanh")
    kw.update(override)
    with pytest.raises(exc, match=match):
        rnn_forward(**kw)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(truncate=0), ValueError, "truncate=0"),
    (dict(truncate=-3), ValueError, "truncate=-3"),
    (dict(truncate=2.5), TypeError, "truncate=2.5"),
    (dict(truncate=True), TypeError, "truncate=True"),
    (dict(grad_h=np.zeros((3, 6, 4))), ValueError, r"grad_h has shape \(3, 6, 4\); expected \(3, 6, 5\)"),
    (dict(grad_h=np.full((3, 6, 5), np.nan)), ValueError, "grad_h contains"),
    (dict(forward_result=np.zeros(3)), TypeError, "forward_result has type ndarray"),
])
def test_bad_backward_inputs(rng, kwargs, exc, match):
    p = make_problem(rng)
    res = rnn_forward(p["x"], p["weight_ih"], p["weight_hh"], p["bias"], p["h0"])
    kw = dict(forward_result=res, grad_h=p["w_out"])
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        rnn_backward(**kw)
