"""A plain NumPy BPTT for the benchmark: the baseline a user writes by hand.

Contract: one function per cell runs one training epoch of the benchmark's
job (mini-batches of sequences, one recurrent layer, a linear output on the
last step, MSE loss, full BPTT, a plain SGD update of every parameter) and
updates the parameter dict in place. Arrays are batch-first ``(B, T, I)``;
weights use PyTorch's layout (``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``,
one ``bias (G*H,)``, ``w_out (1, H)``, ``b_out (1,)``), gates in PyTorch's
order i, f, g, o. The dtype of the parameters is kept (float32 stays float32).

It is written the way a careful NumPy user would write it (min-char-rnn's
recursion, with the input projection and the weight gradients as one
matrix product over all steps), not to be slow on purpose.
"""
import numpy as np


def _logistic(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free, same dtype


def _head_backward(p, h_last, y):
    """MSE on the linear output of the last step: dL/dh_last and head grads."""
    pred = h_last @ p["w_out"].T + p["b_out"]          # (B, 1)
    err = pred - y
    d_pred = (2.0 / err.size) * err                    # dL/dpred
    d_w_out = d_pred.T @ h_last
    d_b_out = d_pred.sum(0)
    return d_pred @ p["w_out"], d_w_out, d_b_out       # dL/dh_last (B, H)


def _sgd(p, grads, lr):
    for k, g in grads.items():
        p[k] -= lr * g


def elman_forward(p, x):
    """h(t) = tanh(W_ih x(t) + W_hh h(t-1) + b), all steps, time-major (T, B, H)."""
    xs = x.transpose(1, 0, 2)
    T, B, _ = xs.shape
    H = p["weight_hh"].shape[0]
    hs = xs @ p["weight_ih"].T + p["bias"]             # (T, B, H) input part
    h = np.zeros((B, H), x.dtype)
    w_hh_t = p["weight_hh"].T
    for t in range(T):
        h = np.tanh(hs[t] + h @ w_hh_t)
        hs[t] = h
    return xs, hs


def elman_epoch(p, batches, lr):
    """One SGD epoch of a tanh Elman layer + linear head over ``batches``."""
    for x, y in batches:
        xs, hs = elman_forward(p, x)
        T, B, H = hs.shape
        dh, d_w_out, d_b_out = _head_backward(p, hs[-1], y)
        delta = np.empty_like(hs)
        w_hh = p["weight_hh"]
        for t in range(T - 1, -1, -1):
            d = (1.0 - hs[t] * hs[t]) * dh
            delta[t] = d
            dh = d @ w_hh
        d2 = delta.reshape(T * B, H)
        grads = {
            "weight_ih": d2.T @ xs.reshape(T * B, -1),
            "weight_hh": delta[1:].reshape(-1, H).T @ hs[:-1].reshape(-1, H),
            "bias": d2.sum(0),
            "w_out": d_w_out, "b_out": d_b_out,
        }
        _sgd(p, grads, lr)


def elman_infer(p, batches):
    """Forward-only predictions of the last step for every mini-batch."""
    return [elman_forward(p, x)[1][-1] @ p["w_out"].T + p["b_out"]
            for x, _ in batches]


def lstm_forward(p, x):
    """Forget-gate LSTM (PyTorch's cell); returns the caches of every step."""
    xs = x.transpose(1, 0, 2)
    T, B, _ = xs.shape
    H = p["weight_hh"].shape[1]
    gates = xs @ p["weight_ih"].T + p["bias"]          # (T, B, 4H) pre-activations
    cs = np.empty((T, B, H), x.dtype)
    hs = np.empty((T, B, H), x.dtype)
    tcs = np.empty((T, B, H), x.dtype)
    h = np.zeros((B, H), x.dtype)
    c = np.zeros((B, H), x.dtype)
    w_hh_t = p["weight_hh"].T
    for t in range(T):
        z = gates[t]
        z += h @ w_hh_t
        z[:, :2 * H] = _logistic(z[:, :2 * H])         # i, f
        z[:, 2 * H:3 * H] = np.tanh(z[:, 2 * H:3 * H])  # g
        z[:, 3 * H:] = _logistic(z[:, 3 * H:])         # o
        i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        c = f * c + i * g
        tc = np.tanh(c)
        h = o * tc
        cs[t], hs[t], tcs[t] = c, h, tc
    return xs, gates, cs, hs, tcs


def lstm_epoch(p, batches, lr):
    """One SGD epoch of a forget-gate LSTM layer + linear head over ``batches``."""
    for x, y in batches:
        xs, gates, cs, hs, tcs = lstm_forward(p, x)
        T, B, H = hs.shape
        dh, d_w_out, d_b_out = _head_backward(p, hs[-1], y)
        dc = np.zeros((B, H), x.dtype)
        dz = np.empty_like(gates)
        w_hh = p["weight_hh"]
        zero = np.zeros((B, H), x.dtype)
        for t in range(T - 1, -1, -1):
            z = gates[t]
            i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
            tc = tcs[t]
            c_prev = cs[t - 1] if t > 0 else zero
            dc = dc + dh * o * (1.0 - tc * tc)
            d = dz[t]
            d[:, :H] = dc * g * i * (1.0 - i)
            d[:, H:2 * H] = dc * c_prev * f * (1.0 - f)
            d[:, 2 * H:3 * H] = dc * i * (1.0 - g * g)
            d[:, 3 * H:] = dh * tc * o * (1.0 - o)
            dc = dc * f
            dh = d @ w_hh
        d2 = dz.reshape(T * B, 4 * H)
        grads = {
            "weight_ih": d2.T @ xs.reshape(T * B, -1),
            "weight_hh": dz[1:].reshape(-1, 4 * H).T @ hs[:-1].reshape(-1, H),
            "bias": d2.sum(0),
            "w_out": d_w_out, "b_out": d_b_out,
        }
        _sgd(p, grads, lr)


def lstm_infer(p, batches):
    """Forward-only predictions of the last step for every mini-batch."""
    return [lstm_forward(p, x)[3][-1] @ p["w_out"].T + p["b_out"]
            for x, _ in batches]
