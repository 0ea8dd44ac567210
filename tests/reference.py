"""Plain NumPy reference BPTT (min-char-rnn style) that the kernels are tested against.

Batch-first arrays, PyTorch weight layout, float64 throughout. Written for
clarity, not speed: cache every step, walk back in reverse, carry the
hidden-state gradient, take derivatives from stored outputs.
"""
import numpy as np


def act_fn(name):
    """The activation and its derivative expressed through the output y."""
    if name == "tanh":
        return np.tanh, lambda y: 1.0 - y * y
    if name == "logistic":
        return (lambda z: 1.0 / (1.0 + np.exp(-z))), (lambda y: y * (1.0 - y))
    if name == "relu":
        return (lambda z: np.maximum(z, 0.0)), (lambda y: (y > 0).astype(y.dtype))
    if name == "identity":
        return (lambda z: z), (lambda y: np.ones_like(y))
    raise ValueError(name)


def rnn_forward_ref(x, w_ih, w_hh, b, h0=None, activation="tanh"):
    f, _ = act_fn(activation)
    B, T, _ = x.shape
    H = w_ih.shape[0]
    h_prev = np.zeros((B, H)) if h0 is None else h0
    hs = np.empty((B, T, H))
    for t in range(T):
        h_prev = f(x[:, t] @ w_ih.T + h_prev @ w_hh.T + b)
        hs[:, t] = h_prev
    return hs


def rnn_backward_ref(x, w_ih, w_hh, b, h0, hs, grad_h, activation="tanh",
                     truncate=None):
    _, fprime = act_fn(activation)
    B, T, _ = x.shape
    H = w_ih.shape[0]
    h0 = np.zeros((B, H)) if h0 is None else h0
    d_w_ih = np.zeros_like(w_ih)
    d_w_hh = np.zeros_like(w_hh)
    d_b = np.zeros_like(b)
    d_x = np.zeros_like(x)
    delta = np.zeros((B, T, H))
    carry = np.zeros((B, H))
    for t in reversed(range(T)):
        d = fprime(hs[:, t]) * (grad_h[:, t] + carry)
        delta[:, t] = d
        h_prev = hs[:, t - 1] if t > 0 else h0
        d_w_ih += d.T @ x[:, t]
        d_w_hh += d.T @ h_prev
        d_b += d.sum(0)
        d_x[:, t] = d @ w_ih
        carry = d @ w_hh
        if truncate is not None and t % truncate == 0 and t > 0:
            carry = np.zeros((B, H))
    d_h0 = delta[:, 0] @ w_hh
    return dict(weight_ih=d_w_ih, weight_hh=d_w_hh, bias=d_b, h0=d_h0, x=d_x,
                delta=delta)
