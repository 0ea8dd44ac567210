"""The GRU layer against torch.nn.GRU and autograd: the forward pass, every
gradient, the error signals and truncation to 1e-10 in float64; float32;
thread counts; the kernel-level wrappers and bad input. (The conformance
suite, tests/test_cell_conformance.py, adds the NumPy reference, central
differences, edge sizes and the estimators.)"""
import numpy as np
import pytest

from cbptt import (GRUForwardResult, GRUGradients, gru_backward, gru_forward,
                   lstm_forward)
from cbptt import _layer, _lstm

from conftest import rel_err
from reference import gru_forward_ref

GRADS = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "h0", "x"]


def make_problem(rng, B=3, T=7, I=4, H=5, scale=0.5):
    return dict(
        x=rng.standard_normal((B, T, I)),
        weight_ih=rng.standard_normal((3 * H, I)) * scale,
        weight_hh=rng.standard_normal((3 * H, H)) * scale,
        bias_ih=rng.standard_normal(3 * H) * 0.3,
        bias_hh=rng.standard_normal(3 * H) * 0.3,
        h0=rng.standard_normal((B, H)) * 0.5,
        w_out=rng.standard_normal((B, T, H)),   # loss = sum(w_out * h)
    )


def run(p, with_state=True, dtype=np.float64, **kw):
    a = {k: np.asarray(v, dtype) for k, v in p.items()}
    return gru_forward(a["x"], a["weight_ih"], a["weight_hh"], a["bias_ih"],
                       a["bias_hh"], a["h0"] if with_state else None, **kw)


def _torch():
    return pytest.importorskip("torch", reason="torch not installed")


def torch_gru(torch, p, truncate=None):
    """torch.nn.GRU under autograd, detaching h every ``truncate`` steps
    (one module call per window); returns the outputs, the module, x and h0
    as leaves."""
    B, T, I = p["x"].shape
    H = p["weight_hh"].shape[1]
    gru = torch.nn.GRU(I, H, batch_first=True).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(gru, f"{name}_l0").copy_(torch.tensor(p[name]))
    x = torch.tensor(p["x"], requires_grad=True)
    h0 = torch.tensor(p["h0"][None], requires_grad=True)
    k = truncate or T
    h, outs = h0, []
    for t0 in range(0, T, k):
        out, h = gru(x[:, t0:t0 + k], h if t0 == 0 else h.detach())
        outs.append(out)
    out = torch.cat(outs, 1)
    (out * torch.tensor(p["w_out"])).sum().backward()
    return out, {"weight_ih": gru.weight_ih_l0.grad,
                 "weight_hh": gru.weight_hh_l0.grad,
                 "bias_ih": gru.bias_ih_l0.grad,
                 "bias_hh": gru.bias_hh_l0.grad,
                 "h0": h0.grad[0], "x": x.grad}


@pytest.mark.parametrize("truncate", [None, 1, 2, 3, 5, 7, 50])
@pytest.mark.parametrize("with_state", [True, False])
def test_matches_torch_nn_gru(rng, with_state, truncate):
    torch = _torch()
    p = make_problem(rng)
    if not with_state:
        p["h0"] = np.zeros_like(p["h0"])
    res = run(p, with_state)
    g = gru_backward(res, p["w_out"], truncate=truncate)
    out, grads = torch_gru(torch, p, truncate)
    assert isinstance(res, GRUForwardResult) and isinstance(g, GRUGradients)
    assert res.h.dtype == np.float64
    assert rel_err(res.h, out.detach().numpy()) < 1e-10
    assert rel_err(res.h_last, out.detach().numpy()[:, -1]) < 1e-10
    for name in GRADS:
        assert rel_err(getattr(g, name), grads[name].numpy()) < 1e-10, name


@pytest.mark.parametrize("B, T, I, H", [(40, 12, 8, 64), (34, 6, 3, 256),
                                        (20, 9, 2, 8), (36, 7, 4, 5)])
def test_matches_torch_at_every_weight_gradient_path(rng, B, T, I, H):
    # H = 64: the weight gradients summed in the time loop; H = 256 and
    # H = 8 (rows narrower than the in-loop threshold): after it, in
    # all-steps products, dW_hh's n rows from delta_hn (H = 5: its columns
    # start inside a vector of the r, z ones); B >= 32 also runs on two
    # threads
    torch = _torch()
    p = make_problem(rng, B=B, T=T, I=I, H=H, scale=1.0 / np.sqrt(H))
    g = gru_backward(run(p), p["w_out"], truncate=4)
    _, grads = torch_gru(torch, p, truncate=4)
    for name in GRADS:
        assert rel_err(getattr(g, name), grads[name].numpy()) < 1e-10, name


def test_delta_is_the_input_sides_error_signal(rng):
    # delta = dL/d(W_ih x(t) + b_ih), autograd's gradient of each step's
    # input-side pre-activations in a hand-written torch loop
    torch = _torch()
    p = make_problem(rng, T=6)
    H = p["weight_hh"].shape[1]
    t = {k: torch.tensor(v) for k, v in p.items()}
    h, gis, hs = t["h0"], [], []
    for s in range(p["x"].shape[1]):
        gi = (t["x"][:, s] @ t["weight_ih"].T + t["bias_ih"]).requires_grad_()
        gh = h @ t["weight_hh"].T + t["bias_hh"]
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h = (1 - z) * n + z * h
        gis.append(gi)
        hs.append(h)
    (torch.stack(hs, 1) * t["w_out"]).sum().backward()
    g = gru_backward(run(p), p["w_out"])
    expected = torch.stack([gi.grad for gi in gis], 1).numpy()
    assert g.delta.shape == expected.shape
    assert rel_err(g.delta, expected) < 1e-10
    # the activated gates, in torch's order r, z, n
    hs, gates = gru_forward_ref(p["x"], p["weight_ih"], p["weight_hh"],
                                p["bias_ih"], p["bias_hh"], p["h0"])
    res = run(p)
    assert rel_err(res.gates, gates) < 1e-12
    assert rel_err(res.h, hs) < 1e-12


def test_float32_follows_torch(rng):
    torch = _torch()
    p = make_problem(rng, B=16, T=20, I=4, H=32, scale=0.2)
    res = run(p, dtype=np.float32)
    g = gru_backward(res, p["w_out"].astype(np.float32), truncate=8)
    out, grads = torch_gru(torch, p, truncate=8)
    assert res.h.dtype == np.float32
    assert rel_err(res.h, out.detach().numpy()) < 1e-5
    for name in GRADS:
        assert getattr(g, name).dtype == np.float32
        assert rel_err(getattr(g, name), grads[name].numpy()) < 1e-4, name


def test_time_major_layout_gives_the_same_numbers(rng):
    p = make_problem(rng)
    a = run(p)
    ga = gru_backward(a, p["w_out"], truncate=3)
    q = dict(p, x=np.swapaxes(p["x"], 0, 1).copy())
    b = run(q, batch_first=False)
    gb = gru_backward(b, np.swapaxes(p["w_out"], 0, 1).copy(), truncate=3)
    np.testing.assert_array_equal(a.h, np.swapaxes(b.h, 0, 1))
    for name in GRADS[:5]:
        np.testing.assert_array_equal(getattr(ga, name), getattr(gb, name))
    np.testing.assert_array_equal(ga.x, np.swapaxes(gb.x, 0, 1))
    np.testing.assert_array_equal(ga.delta, np.swapaxes(gb.delta, 0, 1))


def test_input_grad_false_skips_dx_only(rng):
    p = make_problem(rng)
    res = run(p)
    full = gru_backward(res, p["w_out"])
    part = gru_backward(res, p["w_out"], input_grad=False)
    assert part.x is None
    for name in GRADS[:5]:
        np.testing.assert_array_equal(getattr(full, name), getattr(part, name))


def test_inputs_are_copied(rng):
    # the result keeps private copies: later in-place updates change nothing
    p = make_problem(rng)
    res = run(p)
    g1 = gru_backward(res, p["w_out"])
    for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "h0", "x"):
        p[k] += 1.0
    g2 = gru_backward(res, p["w_out"])
    for name in GRADS:
        np.testing.assert_array_equal(getattr(g1, name), getattr(g2, name))


@pytest.mark.parametrize("H", [5, 8, 64, 256])
def test_thread_count_changes_no_bit(rng, H):
    threadpoolctl = pytest.importorskip("threadpoolctl",
                                        reason="threadpoolctl not installed")
    p = make_problem(rng, B=48, T=10, I=5, H=H, scale=1.0 / np.sqrt(H))
    assert _layer.threads_used("gru", 10, 48, H, 8) >= 1

    def once():
        res = run(p)
        return [res.h, res.gates] + list(gru_backward(res, p["w_out"],
                                                      truncate=3))

    with threadpoolctl.threadpool_limits(1):
        one = once()
    with threadpoolctl.threadpool_limits(2):
        two = once()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


# --- Bad input ---------------------------------------------------------------

def test_bad_inputs_are_refused_by_name(rng):
    p = make_problem(rng)
    x, wi, wh, bi, bh, h0 = (p[k] for k in ("x", "weight_ih", "weight_hh",
                                            "bias_ih", "bias_hh", "h0"))
    with pytest.raises(ValueError, match=r"weight_ih has shape \(14, 4\); "
                       r"expected \(3\*H, I\).*r, z, n stacked"):
        gru_forward(x, wi[:-1], wh, bi, bh)
    with pytest.raises(ValueError, match="weight_hh"):
        gru_forward(x, wi, wh[:, :-1], bi, bh)
    with pytest.raises(ValueError, match="bias_ih"):
        gru_forward(x, wi, wh, bi[:-1], bh)
    with pytest.raises(ValueError, match="bias_hh"):
        gru_forward(x, wi, wh, bi, bh[:-1])
    bad = bh.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match="bias_hh"):
        gru_forward(x, wi, wh, bi, bad)
    with pytest.raises(ValueError, match="h0"):
        gru_forward(x, wi, wh, bi, bh, h0[:, :-1])
    with pytest.raises(ValueError, match=r"weight_ih has shape \(15, 4\); "
                       r"expected \(15, 3\)"):
        gru_forward(x[..., :-1], wi, wh, bi, bh)
    bad = x.copy()
    bad[1, 2, 0] = np.inf
    with pytest.raises(ValueError, match=r"\bx\b"):
        gru_forward(bad, wi, wh, bi, bh)
    with pytest.raises(TypeError, match="batch_first"):
        gru_forward(x, wi, wh, bi, bh, batch_first=1)
    with pytest.raises(TypeError, match="dtype"):
        gru_forward(x.astype(complex), wi, wh, bi, bh)
    with pytest.raises(ValueError, match="too large for float32"):
        gru_forward((x * 1e30).astype(np.float32),
                    (wi * 1e10).astype(np.float32), wh.astype(np.float32),
                    bi.astype(np.float32), bh.astype(np.float32))
    res = gru_forward(x, wi, wh, bi, bh, h0)
    with pytest.raises(TypeError, match="GRUForwardResult"):
        gru_backward(lstm_forward(x, np.zeros((20, 4)), np.zeros((20, 5)),
                                  np.zeros(20)), p["w_out"])
    with pytest.raises(ValueError, match="grad_h"):
        gru_backward(res, p["w_out"][:, :-1])
    with pytest.raises(ValueError, match="truncate"):
        gru_backward(res, p["w_out"], truncate=0)
    with pytest.raises(TypeError, match="input_grad"):
        gru_backward(res, p["w_out"], input_grad="yes")
    with pytest.raises(ValueError, match="overflowed"):
        gru_backward(res, np.full_like(p["w_out"], 1e308))


def test_kernel_wrappers_check_shapes_and_overlap(rng):
    T, B, I, H = 4, 3, 2, 5
    z = lambda *s: np.zeros(s)  # noqa: E731
    x, wi, wh, b, h0 = z(T, B, I), z(3 * H, I), z(3 * H, H), z(3 * H), z(B, H)
    gates, hn, h = z(T, B, 3 * H), z(T, B, H), z(T, B, H)
    with pytest.raises(ValueError, match=r"gru_forward: b_hh has shape"):
        _lstm.gru_forward(x, wi, wh, b, z(H), h0, gates, hn, h)
    with pytest.raises(ValueError, match="gru_forward: hn shares memory with h"):
        _lstm.gru_forward(x, wi, wh, b, b, h0, gates, hn, hn)
    _lstm.gru_forward(x, wi, wh, b, b, h0, gates, hn, h)
    out = [z(T, B, 3 * H), z(T, B, H), z(3 * H, I), z(3 * H, H),
           z(3 * H), z(3 * H), z(B, H), z(T, B, I)]
    with pytest.raises(ValueError, match=r"gru_backward: truncate=-1"):
        _lstm.gru_backward(x, wi, wh, h0, gates, hn, h, h, -1, *out)
    with pytest.raises(ValueError, match="gru_backward: delta_hn has shape"):
        _lstm.gru_backward(x, wi, wh, h0, gates, hn, h, h, 0, out[0],
                           z(T, B, 3 * H), *out[2:])
    with pytest.raises(ValueError, match="delta shares memory with delta_hn"):
        _lstm.gru_backward(x, wi, wh, h0, gates, hn, h, h, 0, out[0],
                           out[0].reshape(-1)[:T * B * H].reshape(T, B, H),
                           *out[2:])
