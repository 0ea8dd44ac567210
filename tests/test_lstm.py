"""The LSTM layers (forget-gate and 1997 forms): forward and exact BPTT against
finite differences, a NumPy reference, PyTorch, the carousel's error flow,
float32, edge cases, the kernel-level wrappers and bad input. The exactness
tests run at every instruction set the CPU offers (``isa_level``,
conftest.py)."""
import numpy as np
import pytest

from cbptt import (CECForwardResult, LSTMForwardResult, cec_forward,
                   lstm_backward, lstm_forward, rnn_forward)
from cbptt import _layer, _lstm

from conftest import central_diff, rel_err
from reference import lstm_backward_ref, lstm_forward_ref

FORMS = [True, False]          # forget_gate
GRADS = ["weight_ih", "weight_hh", "bias", "h0", "c0", "x"]


def make_problem(rng, B=3, T=6, I=4, H=5, forget_gate=True, scale=0.5):
    G = 4 if forget_gate else 3
    return dict(
        x=rng.standard_normal((B, T, I)),
        weight_ih=rng.standard_normal((G * H, I)) * scale,
        weight_hh=rng.standard_normal((G * H, H)) * scale,
        bias=rng.standard_normal(G * H) * 0.3,
        h0=rng.standard_normal((B, H)) * 0.5,
        c0=rng.standard_normal((B, H)) * 0.5,
        w_out=rng.standard_normal((B, T, H)),   # loss = sum(w_out * h)
        w_c=rng.standard_normal((B, T, H)),     #      + sum(w_c * c)
    )


def run(p, forget_gate, with_state=True, **kw):
    return lstm_forward(p["x"], p["weight_ih"], p["weight_hh"], p["bias"],
                        p["h0"] if with_state else None,
                        p["c0"] if with_state else None, forget_gate, **kw)


# --- NumPy reference and finite differences ---------------------------------

@pytest.mark.parametrize("forget_gate", FORMS)
@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("truncate", [None, 1, 2, 4])
@pytest.mark.parametrize("with_grad_c", [False, True])
def test_matches_numpy_reference(rng, isa_level, forget_gate, with_state,
                                 truncate, with_grad_c):
    p = make_problem(rng, forget_gate=forget_gate)
    h0 = p["h0"] if with_state else None
    c0 = p["c0"] if with_state else None
    res = run(p, forget_gate, with_state)
    hs, cs, gates = lstm_forward_ref(p["x"], p["weight_ih"], p["weight_hh"],
                                     p["bias"], h0, c0, forget_gate)
    assert res.h.dtype == np.float64
    assert rel_err(res.h, hs) < 1e-12
    assert rel_err(res.c, cs) < 1e-12
    assert rel_err(res.gates, gates) < 1e-12
    grad_c = p["w_c"] if with_grad_c else None
    g = lstm_backward(res, p["w_out"], grad_c, truncate=truncate)
    ref = lstm_backward_ref(p["x"], p["weight_ih"], p["weight_hh"], h0, c0,
                            hs, cs, gates, p["w_out"], grad_c, forget_gate,
                            truncate)
    for name in GRADS + ["delta", "delta_c"]:
        assert rel_err(getattr(g, name), ref[name]) < 1e-12, name


def windowed_loss(p, params, forget_gate, truncate, with_grad_c):
    """The loss whose gradient (truncated) BPTT computes exactly.

    With windows, the states (h, c) entering a window are constants
    (detached), so the windows are evaluated separately from the states a
    full forward pass gave them.
    """
    T = p["x"].shape[1]
    k = truncate or T
    starts = list(range(0, T, k))
    res0 = run(p, forget_gate)
    fixed = {s: (res0.h[:, s - 1].copy(), res0.c[:, s - 1].copy())
             for s in starts if s > 0}

    def loss():
        total = 0.0
        for s in starts:
            h_in, c_in = (params["h0"], params["c0"]) if s == 0 else fixed[s]
            r = lstm_forward(params["x"][:, s:s + k], params["weight_ih"],
                             params["weight_hh"], params["bias"], h_in, c_in,
                             forget_gate)
            total += float(np.sum(p["w_out"][:, s:s + k] * r.h))
            if with_grad_c:
                total += float(np.sum(p["w_c"][:, s:s + k] * r.c))
        return total

    return loss


@pytest.mark.parametrize("forget_gate", FORMS)
@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("truncate", [None, 2, 3])
@pytest.mark.parametrize("with_grad_c", [False, True])
def test_gradients_match_finite_differences(rng, isa_level, forget_gate,
                                            with_state, truncate, with_grad_c):
    p = make_problem(rng, B=2, T=6, I=3, H=3, forget_gate=forget_gate)
    if not with_state:      # the gradient at the zero state
        p["h0"], p["c0"] = np.zeros_like(p["h0"]), np.zeros_like(p["c0"])
    params = {k: p[k] for k in GRADS}
    loss = windowed_loss(p, params, forget_gate, truncate, with_grad_c)
    res = run(p, forget_gate, with_state)
    g = lstm_backward(res, p["w_out"], p["w_c"] if with_grad_c else None,
                      truncate=truncate)
    for name in GRADS:
        fd = central_diff(loss, params, name)
        assert rel_err(getattr(g, name), fd) < 1e-6, name


@pytest.mark.parametrize("forget_gate", FORMS)
@pytest.mark.parametrize("t", [0, 2, 4])
def test_delta_c_is_the_cell_state_gradient(rng, forget_gate, t):
    """delta_c(t) = dL/dc(t): perturb c(t) alone (h(t) = o(t) tanh(c(t))
    follows it, o(t) stays) and run the rest of the sequence on from there."""
    H = 3
    p = make_problem(rng, B=2, T=5, I=3, H=H, forget_gate=forget_gate)
    res = run(p, forget_gate)
    g = lstm_backward(res, p["w_out"], p["w_c"])
    o = res.gates[:, t, (3 if forget_gate else 2) * H:]
    state = {"c": res.c[:, t].copy()}

    def loss():
        c = state["c"]
        h = o * np.tanh(c)
        total = float(np.sum(p["w_out"][:, t] * h) + np.sum(p["w_c"][:, t] * c))
        if t + 1 < p["x"].shape[1]:
            r = lstm_forward(p["x"][:, t + 1:], p["weight_ih"],
                             p["weight_hh"], p["bias"], h, c, forget_gate)
            total += float(np.sum(p["w_out"][:, t + 1:] * r.h)
                           + np.sum(p["w_c"][:, t + 1:] * r.c))
        return total

    fd = central_diff(loss, state, "c")
    assert rel_err(g.delta_c[:, t], fd) < 1e-6


@pytest.mark.parametrize("forget_gate", FORMS)
def test_saturated_output_gates(rng, isa_level, forget_gate):
    """The backward pass takes tanh(c) as h / o unless o <= 1e-20; gates
    pinned on both sides of that threshold (and at o = 0 exactly) keep every
    unit's gradients at the reference's precision."""
    H = 5
    G = 4 if forget_gate else 3
    p = make_problem(rng, B=3, T=6, I=4, H=H, forget_gate=forget_gate)
    oo = (G - 1) * H
    p["bias"][oo:] = [-800.0, -50.0, -44.0, -30.0, 0.0]   # o = 0, 2e-22, 8e-20, ...
    p["weight_ih"][oo:] *= 1e-3
    p["weight_hh"][oo:] *= 1e-3
    res = run(p, forget_gate)
    hs, cs, gates = lstm_forward_ref(p["x"], p["weight_ih"], p["weight_hh"],
                                     p["bias"], p["h0"], p["c0"], forget_gate)
    assert res.gates[..., oo].max() == 0.0
    g = lstm_backward(res, p["w_out"], p["w_c"], truncate=4)
    ref = lstm_backward_ref(p["x"], p["weight_ih"], p["weight_hh"], p["h0"],
                            p["c0"], hs, cs, gates, p["w_out"], p["w_c"],
                            forget_gate, 4)
    for col in range(G * H):       # unit by unit, gate by gate
        assert rel_err(g.delta[..., col], ref["delta"][..., col]) < 1e-12, col
    for name in GRADS + ["delta_c"]:
        assert rel_err(getattr(g, name), ref[name]) < 1e-12, name


# --- PyTorch ----------------------------------------------------------------

def _torch():
    return pytest.importorskip("torch", reason="torch not installed")


def torch_lstm_loop(torch, p, forget_gate, truncate, with_grad_c):
    """A hand-written torch LSTM loop under autograd, detaching h and c every
    k steps."""
    t = {k: torch.tensor(p[k], dtype=torch.float64, requires_grad=True)
         for k in GRADS}
    h, c = t["h0"], t["c0"]
    T = p["x"].shape[1]
    hs, cs = [], []
    for s in range(T):
        if truncate and s > 0 and s % truncate == 0:
            h, c = h.detach(), c.detach()
        z = t["x"][:, s] @ t["weight_ih"].T + h @ t["weight_hh"].T + t["bias"]
        if forget_gate:
            i, f, g, o = z.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        else:
            i, g, o = z.chunk(3, 1)
            c = c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        hs.append(h)
        cs.append(c)
    hs, cs = torch.stack(hs, 1), torch.stack(cs, 1)
    loss = (hs * torch.tensor(p["w_out"])).sum()
    if with_grad_c:
        loss = loss + (cs * torch.tensor(p["w_c"])).sum()
    loss.backward()
    return hs, cs, t


@pytest.mark.parametrize("forget_gate", FORMS)
@pytest.mark.parametrize("truncate", [None, 2, 3])
@pytest.mark.parametrize("with_grad_c", [False, True])
def test_matches_torch_autograd_loop(rng, isa_level, forget_gate, truncate,
                                     with_grad_c):
    torch = _torch()
    p = make_problem(rng, B=3, T=7, I=4, H=5, forget_gate=forget_gate)
    res = run(p, forget_gate)
    g = lstm_backward(res, p["w_out"], p["w_c"] if with_grad_c else None,
                      truncate=truncate)
    hs, cs, t = torch_lstm_loop(torch, p, forget_gate, truncate, with_grad_c)
    assert rel_err(res.h, hs.detach().numpy()) < 1e-10
    assert rel_err(res.c, cs.detach().numpy()) < 1e-10
    for name in GRADS:
        assert rel_err(getattr(g, name), t[name].grad.numpy()) < 1e-10, name


@pytest.mark.parametrize("with_state", [True, False])
def test_matches_torch_nn_lstm(rng, with_state):
    """The forget-gate form is torch.nn.LSTM (bias_hh = 0); the loss also
    looks at the final cell state c_n, which exercises grad_c."""
    torch = _torch()
    B, T, I, H = 3, 8, 4, 6
    p = make_problem(rng, B=B, T=T, I=I, H=H)
    if not with_state:
        p["h0"], p["c0"] = np.zeros_like(p["h0"]), np.zeros_like(p["c0"])
    w_cn = rng.standard_normal((B, H))
    lstm = torch.nn.LSTM(I, H, batch_first=True).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(p["weight_ih"]))
        lstm.weight_hh_l0.copy_(torch.tensor(p["weight_hh"]))
        lstm.bias_ih_l0.copy_(torch.tensor(p["bias"]))
        lstm.bias_hh_l0.zero_()
    x = torch.tensor(p["x"], requires_grad=True)
    h0 = torch.tensor(p["h0"][None], requires_grad=True)
    c0 = torch.tensor(p["c0"][None], requires_grad=True)
    out, (h_n, c_n) = lstm(x, (h0, c0))
    ((out * torch.tensor(p["w_out"])).sum()
     + (c_n[0] * torch.tensor(w_cn)).sum()).backward()

    res = run(p, True, with_state)
    grad_c = np.zeros_like(res.c)
    grad_c[:, -1] = w_cn
    g = lstm_backward(res, p["w_out"], grad_c)
    assert rel_err(res.h, out.detach().numpy()) < 1e-10
    assert rel_err(res.h_last, h_n.detach().numpy()[0]) < 1e-10
    assert rel_err(res.c_last, c_n.detach().numpy()[0]) < 1e-10
    assert rel_err(g.weight_ih, lstm.weight_ih_l0.grad.numpy()) < 1e-10
    assert rel_err(g.weight_hh, lstm.weight_hh_l0.grad.numpy()) < 1e-10
    assert rel_err(g.bias, lstm.bias_ih_l0.grad.numpy()) < 1e-10
    assert rel_err(g.bias, lstm.bias_hh_l0.grad.numpy()) < 1e-10
    assert rel_err(g.h0, h0.grad.numpy()[0]) < 1e-10
    assert rel_err(g.c0, c0.grad.numpy()[0]) < 1e-10
    assert rel_err(g.x, x.grad.numpy()) < 1e-10


# --- The carousel -----------------------------------------------------------

def last_step_loss(res):
    g = np.zeros_like(res.h)
    g[:, -1] = 1.0
    return g


def test_1997_lstm_carries_delta_c_back_unchanged(rng):
    p = make_problem(rng, B=3, T=12, I=2, H=4, forget_gate=False)
    p["weight_hh"][:] = 0.0
    res = run(p, False)
    g = lstm_backward(res, last_step_loss(res))
    dc = g.delta_c
    assert np.abs(dc[:, -1]).min() > 0
    for t in range(res.h.shape[1] - 1):
        np.testing.assert_array_equal(dc[:, t], dc[:, -1])
    np.testing.assert_array_equal(g.c0, dc[:, 0])


def test_forget_gate_lstm_scales_delta_c_by_f_per_step(rng):
    H = 4
    p = make_problem(rng, B=3, T=12, I=2, H=H, forget_gate=True)
    p["weight_hh"][:] = 0.0
    res = run(p, True)
    g = lstm_backward(res, last_step_loss(res))
    f = res.gates[:, :, H:2 * H]
    dc = g.delta_c
    for t in range(res.h.shape[1] - 1):
        np.testing.assert_array_equal(dc[:, t], f[:, t + 1] * dc[:, t + 1])
    np.testing.assert_array_equal(g.c0, f[:, 0] * dc[:, 0])


@pytest.mark.parametrize("forget_gate", FORMS)
def test_truncation_cuts_both_carries(rng, forget_gate):
    """Loss at the last step, windows of 3 over T = 7: nothing reaches the
    steps before the last window, neither through h nor through c."""
    p = make_problem(rng, B=2, T=7, I=3, H=4, forget_gate=forget_gate)
    res = run(p, forget_gate)
    g = lstm_backward(res, last_step_loss(res), truncate=3)
    for arr in (g.delta, g.delta_c, g.x):
        assert np.all(arr[:, :6] == 0.0)
        assert np.abs(arr[:, 6:]).max() > 0
    assert np.all(g.h0 == 0.0) and np.all(g.c0 == 0.0)


# --- float32, dtypes, sizes -------------------------------------------------

@pytest.mark.parametrize("forget_gate", FORMS)
@pytest.mark.parametrize("truncate", [None, 3])
def test_float32_stays_float32_and_agrees(rng, isa_level, forget_gate, truncate):
    p = make_problem(rng, B=4, T=10, I=3, H=8, forget_gate=forget_gate)
    keys = ["x", "weight_ih", "weight_hh", "bias", "h0", "c0"]
    r64 = lstm_forward(*[p[k] for k in keys], forget_gate=forget_gate)
    r32 = lstm_forward(*[p[k].astype(np.float32) for k in keys],
                       forget_gate=forget_gate)
    for name in ("h", "c", "gates"):
        assert getattr(r32, name).dtype == np.float32
        assert rel_err(getattr(r32, name), getattr(r64, name)) < 1e-4, name
    g64 = lstm_backward(r64, p["w_out"], p["w_c"], truncate)
    g32 = lstm_backward(r32, p["w_out"].astype(np.float32),
                        p["w_c"].astype(np.float32), truncate)
    for name in g64._fields:
        assert getattr(g32, name).dtype == np.float32, name
        assert rel_err(getattr(g32, name), getattr(g64, name)) < 1e-4, name


def test_mixed_dtypes_compute_in_float64(rng):
    p = make_problem(rng)
    r = lstm_forward(p["x"].astype(np.float32), p["weight_ih"],
                     p["weight_hh"], p["bias"])
    assert r.h.dtype == np.float64
    g = lstm_backward(r, p["w_out"].astype(np.float32))
    assert g.weight_hh.dtype == np.float64


@pytest.mark.parametrize("forget_gate", FORMS)
@pytest.mark.parametrize("B,T,I,H", [(1, 1, 1, 1), (1, 5, 1, 1), (3, 1, 2, 4),
                                     (1, 3, 2, 1), (2, 4, 1, 3)])
@pytest.mark.parametrize("truncate", [None, 1])
def test_edge_sizes(rng, isa_level, forget_gate, B, T, I, H, truncate):
    p = make_problem(rng, B=B, T=T, I=I, H=H, forget_gate=forget_gate)
    res = run(p, forget_gate)
    hs, cs, gates = lstm_forward_ref(p["x"], p["weight_ih"], p["weight_hh"],
                                     p["bias"], p["h0"], p["c0"], forget_gate)
    assert rel_err(res.h, hs) < 1e-12 and rel_err(res.c, cs) < 1e-12
    g = lstm_backward(res, p["w_out"], p["w_c"], truncate=truncate)
    ref = lstm_backward_ref(p["x"], p["weight_ih"], p["weight_hh"], p["h0"],
                            p["c0"], hs, cs, gates, p["w_out"], p["w_c"],
                            forget_gate, truncate)
    for name in ref:
        assert rel_err(getattr(g, name), ref[name]) < 1e-12, name


@pytest.mark.parametrize("forget_gate", FORMS)
def test_truncate_at_least_T_is_full_bptt(rng, forget_gate):
    p = make_problem(rng, T=5, forget_gate=forget_gate)
    res = run(p, forget_gate)
    full = lstm_backward(res, p["w_out"], p["w_c"])
    for k in (5, 6, 10**9):
        g = lstm_backward(res, p["w_out"], p["w_c"], truncate=k)
        for name in full._fields:
            np.testing.assert_array_equal(getattr(g, name), getattr(full, name))


def test_strided_fortran_readonly_inputs(rng):
    p = make_problem(rng)
    base = run(p, True)
    x_big = np.zeros((3, 12, 4))
    x_big[:, ::2] = p["x"]
    w_ro = p["weight_ih"].copy()
    w_ro.setflags(write=False)
    res = lstm_forward(x_big[:, ::2], w_ro, np.asfortranarray(p["weight_hh"]),
                       p["bias"], p["h0"], np.asfortranarray(p["c0"]))
    np.testing.assert_array_equal(res.h, base.h)
    g_ro = p["w_out"].copy()
    g_ro.setflags(write=False)
    g = lstm_backward(res, g_ro, np.asfortranarray(p["w_c"]))
    np.testing.assert_array_equal(
        g.weight_hh, lstm_backward(base, p["w_out"], p["w_c"]).weight_hh)


def test_lists_and_numpy_bool_are_accepted(rng):
    p = make_problem(rng, B=1, T=2, I=1, H=1, forget_gate=False)
    r = lstm_forward(p["x"].tolist(), p["weight_ih"].tolist(),
                     p["weight_hh"].tolist(), p["bias"].tolist(),
                     forget_gate=np.False_)
    assert r.h.shape == (1, 2, 1) and r.gates.shape == (1, 2, 3)
    assert r.forget_gate is False


# --- The kernel-level wrappers (used directly by the estimators) ------------

def _buffers(T, B, I, H, G, dtype):
    e = lambda *s: np.empty(s, dtype)  # noqa: E731
    fwd = dict(gates=e(T, B, G * H), c=e(T, B, H), h=e(T, B, H))
    bwd = dict(delta=e(T, B, G * H), delta_c=e(T, B, H), d_w_ih=e(G * H, I),
               d_w_hh=e(G * H, H), d_bias=e(G * H), d_h0=e(B, H),
               d_c0=e(B, H), d_x=e(T, B, I))
    return fwd, bwd


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("forget_gate", FORMS)
def test_wrappers_stack_two_layers_on_time_major_buffers(rng, dtype,
                                                         forget_gate):
    """Layer 2 reads layer 1's (T, B, H) output buffer in place; its d_x is
    layer 1's grad_h. Same numbers as chaining the functional API."""
    B, T, I, H1, H2 = 3, 6, 4, 5, 2
    G = 4 if forget_gate else 3
    p1 = make_problem(rng, B=B, T=T, I=I, H=H1, forget_gate=forget_gate)
    p2 = make_problem(rng, B=B, T=T, I=H1, H=H2, forget_gate=forget_gate)
    def cast(a):
        return np.ascontiguousarray(a, dtype)

    def args(p):
        return [cast(p[k]) for k in ("weight_ih", "weight_hh", "bias", "h0", "c0")]

    x_tm = cast(p1["x"].swapaxes(0, 1))
    f1, b1 = _buffers(T, B, I, H1, G, dtype)
    f2, b2 = _buffers(T, B, H1, H2, G, dtype)
    _lstm.lstm_forward(x_tm, *args(p1), forget_gate, *f1.values())
    _lstm.lstm_forward(f1["h"], *args(p2), forget_gate, *f2.values())
    gh2 = cast(p2["w_out"].swapaxes(0, 1))
    w2 = args(p2)
    _lstm.lstm_backward(f1["h"], w2[0], w2[1], w2[3], w2[4], f2["gates"],
                        f2["c"], f2["h"], gh2, None, forget_gate, 2,
                        *b2.values())
    w1 = args(p1)
    _lstm.lstm_backward(x_tm, w1[0], w1[1], w1[3], w1[4], f1["gates"], f1["c"],
                        f1["h"], b2["d_x"], None, forget_gate, 2,
                        *list(b1.values())[:-1], None)   # d_x skipped

    keys = ["x", "weight_ih", "weight_hh", "bias", "h0", "c0"]
    r1 = lstm_forward(*[cast(p1[k]) for k in keys], forget_gate=forget_gate)
    r2 = lstm_forward(r1.h, *[cast(p2[k]) for k in keys[1:]],
                      forget_gate=forget_gate)
    np.testing.assert_array_equal(f2["h"].swapaxes(0, 1), r2.h)
    g2 = lstm_backward(r2, cast(p2["w_out"]), truncate=2)
    g1 = lstm_backward(r1, g2.x, truncate=2)
    np.testing.assert_array_equal(b2["d_w_hh"], g2.weight_hh)
    np.testing.assert_array_equal(b2["d_x"].swapaxes(0, 1), g2.x)
    for buf, name in [("d_w_ih", "weight_ih"), ("d_w_hh", "weight_hh"),
                      ("d_bias", "bias"), ("d_h0", "h0"), ("d_c0", "c0")]:
        np.testing.assert_array_equal(b1[buf], getattr(g1, name))


def test_wrapper_errors_name_the_argument(rng):
    T, B, I, H = 4, 2, 3, 5
    p = make_problem(rng, B=B, T=T, I=I, H=H)
    x_tm = np.ascontiguousarray(p["x"].swapaxes(0, 1))
    f, b = _buffers(T, B, I, H, 4, np.float64)
    w = [p["weight_ih"], p["weight_hh"], p["bias"], p["h0"], p["c0"]]
    with pytest.raises(ValueError, match=r"lstm_forward: w_ih has shape "
                                         r"\(20, 3\); expected \(15, 3\)"):
        _lstm.lstm_forward(x_tm, *w, False, *f.values())
    with pytest.raises(ValueError, match=r"lstm_forward: h has shape "
                                         r"\(4, 2, 4\); expected \(4, 2, 5\)"):
        _lstm.lstm_forward(x_tm, *w, True, f["gates"], f["c"],
                           np.empty((T, B, H - 1)))
    with pytest.raises(ValueError, match="lstm_forward: empty sizes T=0"):
        _lstm.lstm_forward(x_tm[:0], *w, True, *f.values())
    _lstm.lstm_forward(x_tm, *w, True, *f.values())
    fwd = [x_tm, w[0], w[1], w[3], w[4], f["gates"], f["c"], f["h"]]
    grad = np.zeros((T, B, H))
    bad = dict(b, d_c0=np.empty((B + 1, H)))
    with pytest.raises(ValueError, match=r"lstm_backward: d_c0 has shape"):
        _lstm.lstm_backward(*fwd, grad, None, True, 0, *bad.values())
    with pytest.raises(ValueError, match=r"lstm_backward: grad_c has shape"):
        _lstm.lstm_backward(*fwd, grad, np.zeros((T, B, 1)), True, 0,
                            *b.values())
    with pytest.raises(ValueError, match=r"lstm_backward: truncate=-1"):
        _lstm.lstm_backward(*fwd, grad, None, True, -1, *b.values())
    with pytest.raises(ValueError):    # a non-contiguous buffer is refused
        _lstm.lstm_forward(x_tm[:, :, ::2], *w, True, *f.values())
    with pytest.raises(ValueError):    # so is a mix of dtypes
        _lstm.lstm_forward(x_tm.astype(np.float32), *w, True, *f.values())


def test_wrappers_refuse_outputs_that_share_memory(rng):
    T, B, I, H = 4, 2, 5, 5
    p = make_problem(rng, B=B, T=T, I=I, H=H)
    x_tm = np.ascontiguousarray(p["x"].swapaxes(0, 1))
    f, b = _buffers(T, B, I, H, 4, np.float64)
    w = [p["weight_ih"], p["weight_hh"], p["bias"], p["h0"], p["c0"]]
    with pytest.raises(ValueError, match="lstm_forward: c shares memory with h"):
        _lstm.lstm_forward(x_tm, *w, True, f["gates"], f["h"], f["h"])
    with pytest.raises(ValueError, match="lstm_forward: h shares memory with x"):
        _lstm.lstm_forward(x_tm, *w, True, f["gates"], f["c"], x_tm)
    zeros = np.zeros((B, H))       # inputs may share memory: h0 = c0
    _lstm.lstm_forward(x_tm, *w[:3], zeros, zeros, True, *f.values())
    fwd = [x_tm, w[0], w[1], zeros, zeros, f["gates"], f["c"], f["h"]]
    grad = np.ones((T, B, H))
    with pytest.raises(ValueError, match="lstm_backward: d_h0 shares memory "
                                         "with d_c0"):
        _lstm.lstm_backward(*fwd, grad, None, True, 0,
                            *dict(b, d_c0=b["d_h0"]).values())
    with pytest.raises(ValueError, match="lstm_backward: delta_c shares "
                                         "memory with grad_h"):
        _lstm.lstm_backward(*fwd, grad, None, True, 0,
                            *dict(b, delta_c=grad).values())
    with pytest.raises(ValueError, match="lstm_backward: d_x shares memory "
                                         "with grad_c"):
        _lstm.lstm_backward(*fwd, grad, b["d_x"], True, 0, *b.values())


# --- Bad input --------------------------------------------------------------

BAD_FORWARD = [
    (dict(x=np.zeros((3, 4))), ValueError, "x has 2 dimension"),
    (dict(x=np.zeros((0, 6, 4))), ValueError, "batch is 0"),
    (dict(x=np.zeros((3, 0, 4))), ValueError, r"T \(time steps\) is 0"),
    (dict(x=np.full((3, 6, 4), np.nan)), ValueError, "x contains"),
    (dict(x=np.zeros((3, 6, 4), complex)), TypeError, "x has dtype complex"),
    (dict(x=None), TypeError, "x is None"),
    (dict(x=np.zeros((3, 6, 7))), ValueError,
     r"weight_ih has shape \(20, 4\); expected \(20, 7\)"),
    (dict(weight_ih=np.zeros((10, 4))), ValueError,
     r"weight_ih has shape \(10, 4\); expected \(4\*H, I\).*i, f, g, o"),
    (dict(weight_ih=np.zeros((20, 4)), forget_gate=False), ValueError,
     r"weight_ih has shape \(20, 4\); expected \(3\*H, I\).*forget_gate=False"),
    (dict(weight_ih=np.zeros((0, 4))), ValueError, "weight_ih has shape"),
    (dict(weight_ih=np.zeros((20, 0))), ValueError, "weight_ih has shape"),
    (dict(weight_ih=np.zeros((20, 4), bool)), TypeError, "weight_ih has dtype bool"),
    (dict(weight_hh=np.zeros((20, 4))), ValueError,
     r"weight_hh has shape \(20, 4\); expected \(20, 5\)"),
    (dict(weight_hh=np.full((20, 5), np.inf)), ValueError, "weight_hh contains"),
    (dict(bias=np.zeros(5)), ValueError, r"bias has shape \(5,\); expected \(20,\)"),
    (dict(h0=np.zeros((2, 5))), ValueError, r"h0 has shape \(2, 5\); expected \(3, 5\)"),
    (dict(c0=np.zeros((3, 4))), ValueError, r"c0 has shape \(3, 4\); expected \(3, 5\)"),
    (dict(c0=np.zeros(5)), ValueError, "c0 has 1 dimension"),
    (dict(c0=np.full((3, 5), np.nan)), ValueError, "c0 contains"),
    (dict(forget_gate="yes"), TypeError, "forget_gate='yes' has type str"),
    (dict(forget_gate=1), TypeError, "forget_gate=1 has type int"),
    (dict(forget_gate=None), TypeError, "forget_gate=None"),
]


@pytest.mark.parametrize("override,exc,match", BAD_FORWARD)
def test_bad_forward_inputs(rng, override, exc, match):
    p = make_problem(rng)
    kw = dict(x=p["x"], weight_ih=p["weight_ih"], weight_hh=p["weight_hh"],
              bias=p["bias"], h0=p["h0"], c0=p["c0"], forget_gate=True)
    kw.update(override)
    with pytest.raises(exc, match=match):
        lstm_forward(**kw)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(truncate=0), ValueError, "truncate=0"),
    (dict(truncate=2.5), TypeError, "truncate=2.5"),
    (dict(truncate=True), TypeError, "truncate=True"),
    (dict(grad_h=np.zeros((3, 6, 4))), ValueError,
     r"grad_h has shape \(3, 6, 4\); expected \(3, 6, 5\)"),
    (dict(grad_h=None), TypeError, "grad_h is None"),
    (dict(grad_c=np.zeros((3, 5, 5))), ValueError,
     r"grad_c has shape \(3, 5, 5\); expected \(3, 6, 5\)"),
    (dict(grad_c=np.full((3, 6, 5), np.nan)), ValueError, "grad_c contains"),
    (dict(grad_c=np.zeros((3, 6, 5), complex)), TypeError, "grad_c has dtype"),
    (dict(forward_result=np.zeros(3)), TypeError,
     "forward_result has type ndarray; expected the LSTMForwardResult"),
])
def test_bad_backward_inputs(rng, kwargs, exc, match):
    p = make_problem(rng)
    res = run(p, True)
    kw = dict(forward_result=res, grad_h=p["w_out"])
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        lstm_backward(**kw)


def test_results_of_other_layers_are_refused(rng):
    p = make_problem(rng)
    rnn = rnn_forward(p["x"], np.zeros((5, 4)), np.zeros((5, 5)), np.zeros(5))
    cec = cec_forward(p["x"], np.zeros((5, 4)), np.zeros(5))
    assert isinstance(cec, CECForwardResult)
    for other in (rnn, cec):
        with pytest.raises(TypeError, match="expected the LSTMForwardResult"):
            lstm_backward(other, p["w_out"])
    assert isinstance(run(p, True), LSTMForwardResult)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("forget_gate", [True, False])
@pytest.mark.parametrize("T", [2, 3, 8])
@pytest.mark.parametrize("threads", [1, 2])
def test_wrapper_forward_without_cache_is_bitwise_the_full_one(
        rng, dtype, forget_gate, T, threads):
    """gates (1, B, G*H) and c (2, B, H): the forward that will not be
    differentiated gives the same h, the same last two c and last gates."""
    B, I, H = 32, 5, 16
    G = 4 if forget_gate else 3
    x = rng.standard_normal((T, B, I)).astype(dtype)
    w = [(rng.standard_normal(s) * 0.3).astype(dtype)
         for s in ((G * H, I), (G * H, H), (G * H,))]
    h0, c0 = (rng.standard_normal((B, H)).astype(dtype) for _ in range(2))
    old = _layer._set_parallel_min_work(
        "lstm", *((0, 0) if threads == 2 else (1 << 40, 1 << 40)))
    try:
        g, c, h = (np.empty(s, dtype) for s in ((T, B, G * H), (T, B, H),
                                                (T, B, H)))
        _lstm.lstm_forward(x, *w, h0, c0, forget_gate, g, c, h)
        g1, c2, h2 = (np.full(s, np.nan, dtype)
                      for s in ((1, B, G * H), (2, B, H), (T, B, H)))
        _lstm.lstm_forward(x, *w, h0, c0, forget_gate, g1, c2, h2)
    finally:
        _layer._set_parallel_min_work("lstm", *old)
    np.testing.assert_array_equal(h2, h)
    np.testing.assert_array_equal(c2[(T - 1) % 2], c[T - 1])
    np.testing.assert_array_equal(c2[(T - 2) % 2], c[T - 2])
    np.testing.assert_array_equal(g1[0], g[T - 1])
    if T == 2:      # c (2, B, H) is both the full and the rolling shape
        return
    # a rolling c with full gates (or the reverse) is a shape error
    with pytest.raises(ValueError, match="gates has shape"):
        _lstm.lstm_forward(x, *w, h0, c0, forget_gate, g1, c, h2)
    with pytest.raises(ValueError, match="c has shape"):
        _lstm.lstm_forward(x, *w, h0, c0, forget_gate, g, c2, h2)


@pytest.mark.parametrize("cell", ["lstm", "lstm1997"])
@pytest.mark.parametrize("T", [1, 2, 9])
@pytest.mark.parametrize("output", ["last", "sequence"])
def test_prediction_without_cache_is_bitwise_the_training_forward(
        rng, cell, T, output):
    """Prediction (a Workspace without training buffers) keeps one step of
    gates and two of c; its outputs are bitwise those of the training
    forward, with two layers and sequences of several lengths."""
    from cbptt._cells import make_cell
    from cbptt._network import Network, Workspace, forward_stack, predict_raw
    N, F = 7, 3
    net = Network(make_cell(cell, "tanh"), F, (6, 5), 2)
    params = rng.standard_normal(net.size) * 0.4
    x = rng.standard_normal((T, N, F))
    lengths = np.array([T, max(1, T - 1), 1, T, max(1, T // 2), T, 1])
    for t in range(T):                  # time-major, zero beyond the length
        x[t, lengths <= t] = 0.0
    z = predict_raw(net, params, x, lengths, output)
    inf = Workspace(net, T, N, x.dtype, train=False).views(T, N)
    assert inf.layers[0]["gates"].shape[0] == 1
    assert inf.layers[0]["c"].shape[0] == min(T, 2)
    p_layers, p_out = net.views(params)
    v = Workspace(net, T, N, x.dtype).views(T, N)
    np.copyto(v.x, x)
    h = forward_stack(net, p_layers, v.x, v, v.zero_states)
    W, b = p_out["weight"], p_out["bias"]
    if output == "last":
        want = h[lengths - 1, np.arange(N)] @ W.T + b
        np.testing.assert_array_equal(z, want)
    else:
        np.testing.assert_array_equal(z, h @ W.T + b)


@pytest.mark.parametrize("forget_gate", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("T", [1, 2, 5])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_without_cache(rng, forget_gate, batch_first, T, with_state,
                               dtype):
    """cache=False: bitwise the same h and c_last, no c or gates, and a
    result lstm_backward refuses."""
    B, I, H = 3, 4, 5
    G = 4 if forget_gate else 3
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    w = [(rng.standard_normal(s) * 0.4).astype(dtype)
         for s in ((G * H, I), (G * H, H), (G * H,))]
    st = {}
    if with_state:
        st = {"h0": rng.standard_normal((B, H)).astype(dtype),
              "c0": rng.standard_normal((B, H)).astype(dtype)}
    full = lstm_forward(x, *w, **st, forget_gate=forget_gate,
                        batch_first=batch_first)
    inf = lstm_forward(x, *w, **st, forget_gate=forget_gate,
                       batch_first=batch_first, cache=False)
    np.testing.assert_array_equal(inf.h, full.h)
    np.testing.assert_array_equal(inf.h_last, full.h_last)
    np.testing.assert_array_equal(inf.c_last, full.c_last)
    assert inf.h.dtype == dtype and inf.c_last.shape == (B, H)
    assert inf.c is None and inf.gates is None
    assert not inf.h.flags.writeable and not inf.c_last.flags.writeable
    with pytest.raises(ValueError, match="cache=False"):
        lstm_backward(inf, np.ones_like(full.h))


def test_cache_must_be_a_bool(rng):
    x = rng.standard_normal((2, 3, 1))
    w = [np.zeros(s) for s in ((4, 1), (4, 1), (4,))]
    with pytest.raises(TypeError, match="cache"):
        lstm_forward(x, *w, cache="no")
