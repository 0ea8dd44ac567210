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


# --- The constant error carousel and LSTM (forget-gate and 1997 forms) ---

from scipy.special import expit  # noqa: E402  (section appended for issue 3)

def logistic(z):
    """The logistic function, without overflow for very negative z."""
    return expit(z)


def cec_forward_ref(x, w_ih, b, h0=None):
    """s(t) = s(t-1) + W_ih x(t) + b."""
    B, T, _ = x.shape
    s = np.zeros((B, w_ih.shape[0])) if h0 is None else h0
    hs = np.empty((B, T, w_ih.shape[0]))
    for t in range(T):
        s = s + x[:, t] @ w_ih.T + b
        hs[:, t] = s
    return hs


def cec_backward_ref(x, w_ih, grad_h, truncate=None):
    """delta(t) = grad_h(t) + delta(t+1), cut at window starts."""
    B, T, _ = x.shape
    H = w_ih.shape[0]
    delta = np.zeros((B, T, H))
    carry = np.zeros((B, H))
    for t in reversed(range(T)):
        delta[:, t] = grad_h[:, t] + carry
        carry = delta[:, t]
        if truncate is not None and t % truncate == 0 and t > 0:
            carry = np.zeros((B, H))
    return dict(weight_ih=np.einsum("bth,bti->hi", delta, x),
                bias=delta.sum((0, 1)), h0=delta[:, 0].copy(),
                x=delta @ w_ih, delta=delta)


def lstm_forward_ref(x, w_ih, w_hh, b, h0=None, c0=None, forget_gate=True):
    """h, c and the activated gates (i, f, g, o or i, g, o) of every step."""
    B, T, _ = x.shape
    G = 4 if forget_gate else 3
    H = w_hh.shape[1]
    h = np.zeros((B, H)) if h0 is None else h0
    c = np.zeros((B, H)) if c0 is None else c0
    hs, cs = np.empty((B, T, H)), np.empty((B, T, H))
    gates = np.empty((B, T, G * H))
    for t in range(T):
        z = np.split(x[:, t] @ w_ih.T + h @ w_hh.T + b, G, axis=1)
        if forget_gate:
            i, f, g, o = logistic(z[0]), logistic(z[1]), np.tanh(z[2]), logistic(z[3])
            c = f * c + i * g
            gates[:, t] = np.concatenate([i, f, g, o], 1)
        else:
            i, g, o = logistic(z[0]), np.tanh(z[1]), logistic(z[2])
            c = c + i * g
            gates[:, t] = np.concatenate([i, g, o], 1)
        h = o * np.tanh(c)
        hs[:, t], cs[:, t] = h, c
    return hs, cs, gates


def lstm_backward_ref(x, w_ih, w_hh, h0, c0, hs, cs, gates, grad_h,
                      grad_c=None, forget_gate=True, truncate=None):
    """Exact (windowed) BPTT through the LSTM, one step at a time."""
    B, T, _ = x.shape
    G = 4 if forget_gate else 3
    H = w_hh.shape[1]
    h0 = np.zeros((B, H)) if h0 is None else h0
    c0 = np.zeros((B, H)) if c0 is None else c0
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
        dc = dh * o * (1 - tc * tc) + carry_c
        if grad_c is not None:
            dc = dc + grad_c[:, t]
        di, dg, do = dc * g * i * (1 - i), dc * i * (1 - g * g), dh * tc * o * (1 - o)
        if forget_gate:
            d = np.concatenate([di, dc * c_prev * f * (1 - f), dg, do], 1)
        else:
            d = np.concatenate([di, dg, do], 1)
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


# ---------------------------------------------------------------------------
# One interface over every cell of the registry (the conformance tests):
# the final states and every step's h from a dict of PyTorch-named weights.
# ---------------------------------------------------------------------------

def _elman_ref(x, w, activation, state):
    h0 = None if state is None else state[0]
    hs = rnn_forward_ref(x, w["weight_ih"], w["weight_hh"], w["bias"], h0,
                         activation)
    return hs, (hs[:, -1],)


def _cec_ref(x, w, activation, state):
    hs = cec_forward_ref(x, w["weight_ih"], w["bias"],
                         None if state is None else state[0])
    return hs, (hs[:, -1],)


def _lstm_ref(forget_gate):
    def ref(x, w, activation, state):
        h0, c0 = (None, None) if state is None else state
        hs, cs, _ = lstm_forward_ref(x, w["weight_ih"], w["weight_hh"],
                                     w["bias"], h0, c0, forget_gate)
        return hs, (hs[:, -1], cs[:, -1])
    return ref


def gru_forward_ref(x, w_ih, w_hh, b_ih, b_hh, h0=None):
    """PyTorch's GRU, step by step (batch-first, float64): h of every step
    and the activated gates r, z, n."""
    B, T, _ = x.shape
    H = w_hh.shape[1]
    h = np.zeros((B, H)) if h0 is None else np.asarray(h0, np.float64)
    hs, gates = np.empty((B, T, H)), np.empty((B, T, 3 * H))
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    for t in range(T):
        gi = x[:, t] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        r = sig(gi[:, :H] + gh[:, :H])
        z = sig(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h = (1 - z) * n + z * h
        hs[:, t], gates[:, t] = h, np.concatenate([r, z, n], 1)
    return hs, gates


def _gru_ref(x, w, activation, state):
    hs, _ = gru_forward_ref(x, w["weight_ih"], w["weight_hh"], w["bias_ih"],
                            w["bias_hh"], None if state is None else state[0])
    return hs, (hs[:, -1],)


# cell name -> f(x, weights, activation, state) -> (h of every step, the
# state tuple after the last step); batch-first, float64.
CELL_FORWARD_REF = {"elman": _elman_ref, "cec": _cec_ref,
                    "lstm": _lstm_ref(True), "lstm1997": _lstm_ref(False),
                    "gru": _gru_ref}
