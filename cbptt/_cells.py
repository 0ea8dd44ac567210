"""Cell adapters: how the estimators' network drives one recurrent layer's kernels.

Contract
--------
An adapter is a small, stateless (picklable) object that knows, for one cell
type, everything the network in :mod:`cbptt._network` needs and nothing
else:

* ``param_specs(I, H)``: the layer's parameters as ``(name, shape, decay)``
  in PyTorch's layout (``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, one
  ``bias (G*H,)`` = PyTorch's ``bias_ih + bias_hh``); ``decay`` says whether
  L2 applies (weight matrices yes, biases no). The network places them in
  its single flat parameter vector and hands back views.
* ``init_params(p, rng, forget_bias)``: fill the views ``p`` in place:
  Glorot-uniform input weights, orthogonal recurrent blocks, zero biases
  (and ``forget_bias`` on a forget gate), drawn from ``rng`` (a
  ``numpy.random.RandomState``) in a fixed order so that a seed gives
  bitwise the same network.
* ``buffer_specs(I, H)``: the work arrays a layer needs, as ``(name, kind,
  width, phase)`` with ``kind`` ``"step"`` (a ``(T, B, width)`` array) or
  ``"batch"`` (``(B, width)``) and ``phase`` ``"forward"`` (needed to run the
  forward pass: outputs and caches) or ``"backward"`` (only for BPTT).
  Every adapter has a ``"step"`` buffer ``"h"`` of width ``H``: the layer's
  output, which the next layer reads as its input.
* ``infer_steps``: for a forward that will not be differentiated
  (prediction), the steps a ``"step"`` buffer other than ``"h"`` needs
  (``{}``: all of them). The LSTM needs one step of gates and two of c
  (its kernel then writes c(t) to slot t % 2): nothing of size T but h.
* ``state_names``: the recurrent state (``("h",)`` for Elman); ``forward``
  and ``backward`` take the initial state as a tuple of ``(B, H)`` arrays in
  that order, and ``final_state(buf)`` returns the state after the last step.
* ``forward(x, p, s0, buf)`` / ``backward(x, p, s0, buf, grad_h, g, d_x)``
  call the compiled kernels once over the whole ``(T, B, .)`` time-major
  window (never per step): ``grad_h`` is dL/dh(t), the gradients are
  *written* (not accumulated) into the views ``g`` and ``d_x`` receives
  dL/dx(t), the next-lower layer's ``grad_h``.
  ``d_x`` is None for the first layer when ``first_layer_dx`` is False
  (the kernel then skips that product).
* ``to_torch(p)`` / ``from_torch(p, d)``: the layer's parameters in
  ``torch.nn.RNN``/``torch.nn.LSTM`` names without the ``_l{k}`` suffix;
  ``from_torch`` raises ValueError when ``d`` is outside what the cell can
  represent.
"""
import numpy as np

from cbptt import _elman, _lstm
from cbptt._validation import ACTIVATIONS


def glorot_uniform(rng, fan_out, fan_in):
    """A (fan_out, fan_in) matrix, U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, (fan_out, fan_in))


def orthogonal(rng, n):
    """An (n, n) orthogonal matrix, uniform (Haar) over O(n): QR of a Gaussian."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


class ElmanCell:
    """The Elman (simple recurrent) layer of :mod:`cbptt._elman`.

    ``h(t) = f(W_ih x(t) + W_hh h(t-1) + b)`` with ``f`` one of scikit-learn's
    activations; exported as ``torch.nn.RNN`` (whose nonlinearities are only
    ``tanh`` and ``relu``).
    """

    name = "elman"
    state_names = ("h",)
    infer_steps = {}
    first_layer_dx = False

    def __init__(self, activation="tanh"):
        self.activation = activation
        self._act = ACTIVATIONS[activation]

    def param_specs(self, I, H):
        return [("weight_ih", (H, I), True), ("weight_hh", (H, H), True),
                ("bias", (H,), False)]

    def init_params(self, p, rng, forget_bias):
        H, I = p["weight_ih"].shape
        p["weight_ih"][...] = glorot_uniform(rng, H, I)
        p["weight_hh"][...] = orthogonal(rng, H)
        p["bias"][...] = 0.0

    def buffer_specs(self, I, H):
        return [("h", "step", H, "forward"),
                ("delta", "step", H, "backward"),
                ("d_h0", "batch", H, "backward"),
                ("carry", "batch", H, "backward")]

    def forward(self, x, p, s0, buf):
        _elman.elman_forward(x, p["weight_ih"], p["weight_hh"], p["bias"],
                             s0[0], self._act, buf["h"])

    def backward(self, x, p, s0, buf, grad_h, g, d_x):
        _elman.elman_backward(x, p["weight_ih"], p["weight_hh"], s0[0],
                              buf["h"], grad_h, self._act, 0, buf["delta"],
                              g["weight_ih"], g["weight_hh"], g["bias"],
                              buf["d_h0"], d_x, buf["carry"])

    def final_state(self, buf):
        return (buf["h"][-1],)

    def to_torch(self, p):
        return {"weight_ih": p["weight_ih"].copy(),
                "weight_hh": p["weight_hh"].copy(),
                "bias_ih": p["bias"].copy(),
                "bias_hh": np.zeros_like(p["bias"])}

    def from_torch(self, p, d):
        p["weight_ih"][...] = d["weight_ih"]
        p["weight_hh"][...] = d["weight_hh"]
        p["bias"][...] = d["bias_ih"] + d["bias_hh"]


def _stacked(blocks):
    return np.concatenate(blocks, axis=0)


class LSTMCell:
    """The LSTM layer of :mod:`cbptt._lstm`: forget-gate form or the 1997 form.

    Gates packed ``i, f, g, o`` (PyTorch's order; ``i, g, o`` without the
    forget gate). ``forget_bias`` initialises the forget gate's bias.
    Exported as ``torch.nn.LSTM``; the 1997 form (``f = 1``) as an
    ``nn.LSTM`` whose forget gate is fixed open: zero weights and bias
    :attr:`OPEN_BIAS`, where ``sigmoid(100) = 1`` exactly in float32 and
    float64.
    """

    state_names = ("h", "c")
    infer_steps = {"gates": 1, "c": 2}
    first_layer_dx = False
    OPEN_BIAS = 100.0

    def __init__(self, forget_gate=True):
        self.forget_gate = forget_gate
        self.name = "lstm" if forget_gate else "lstm1997"
        self.n_gates = 4 if forget_gate else 3

    def param_specs(self, I, H):
        G = self.n_gates
        return [("weight_ih", (G * H, I), True),
                ("weight_hh", (G * H, H), True),
                ("bias", (G * H,), False)]

    def init_params(self, p, rng, forget_bias):
        GH, I = p["weight_ih"].shape
        H = GH // self.n_gates
        p["weight_ih"][...] = _stacked([glorot_uniform(rng, H, I)
                                        for _ in range(self.n_gates)])
        p["weight_hh"][...] = _stacked([orthogonal(rng, H)
                                        for _ in range(self.n_gates)])
        p["bias"][...] = 0.0
        if self.forget_gate:
            p["bias"][H:2 * H] = forget_bias

    def buffer_specs(self, I, H):
        GH = self.n_gates * H
        return [("gates", "step", GH, "forward"),
                ("c", "step", H, "forward"),
                ("h", "step", H, "forward"),
                ("delta", "step", GH, "backward"),
                ("delta_c", "step", H, "backward"),
                ("d_h0", "batch", H, "backward"),
                ("d_c0", "batch", H, "backward")]

    def forward(self, x, p, s0, buf):
        _lstm.lstm_forward(x, p["weight_ih"], p["weight_hh"], p["bias"],
                           s0[0], s0[1], self.forget_gate, buf["gates"],
                           buf["c"], buf["h"])

    def backward(self, x, p, s0, buf, grad_h, g, d_x):
        _lstm.lstm_backward(x, p["weight_ih"], p["weight_hh"], s0[0], s0[1],
                            buf["gates"], buf["c"], buf["h"], grad_h, None,
                            self.forget_gate, 0, buf["delta"], buf["delta_c"],
                            g["weight_ih"], g["weight_hh"], g["bias"],
                            buf["d_h0"], buf["d_c0"], d_x)

    def final_state(self, buf):
        return (buf["h"][-1], buf["c"][-1])

    def _torch_rows(self, a, fill):
        """i, g, o rows (1997 form) as nn.LSTM's i, f, g, o with f = ``fill``."""
        H = a.shape[0] // 3
        f = np.full((H,) + a.shape[1:], fill, a.dtype)
        return np.concatenate([a[:H], f, a[H:]], axis=0)

    def to_torch(self, p):
        w_ih, w_hh, b = p["weight_ih"], p["weight_hh"], p["bias"]
        if not self.forget_gate:
            w_ih, w_hh = self._torch_rows(w_ih, 0.0), self._torch_rows(w_hh, 0.0)
            b = self._torch_rows(b, self.OPEN_BIAS)
        return {"weight_ih": w_ih.copy(), "weight_hh": w_hh.copy(),
                "bias_ih": b.copy(), "bias_hh": np.zeros_like(b)}

    def from_torch(self, p, d):
        w_ih, w_hh = d["weight_ih"], d["weight_hh"]
        b = d["bias_ih"] + d["bias_hh"]
        if not self.forget_gate:
            H = w_hh.shape[1]
            f = slice(H, 2 * H)
            b_f = b[f].astype(p["bias"].dtype)
            one = p["bias"].dtype.type(1.0)
            if (np.any(w_ih[f] != 0) or np.any(w_hh[f] != 0)
                    or np.any(one / (one + np.exp(-b_f)) != one)):
                raise ValueError(
                    "the lstm1997 cell has no forget gate: the state dict's "
                    "forget-gate rows must have zero weights and a bias that "
                    f"saturates the gate open (e.g. {self.OPEN_BIAS}), as "
                    "to_torch_state_dict exports them")
            keep = np.r_[0:H, 2 * H:4 * H]
            w_ih, w_hh, b = w_ih[keep], w_hh[keep], b[keep]
        p["weight_ih"][...] = w_ih
        p["weight_hh"][...] = w_hh
        p["bias"][...] = b


class CECCell:
    """The constant error carousel of :mod:`cbptt._lstm`.

    ``s(t) = s(t-1) + W_ih x(t) + b``: an identity unit whose self-weight is
    fixed at 1. Exported in ``torch.nn.RNN``'s names with ``weight_hh`` the
    identity (no torch module has an identity nonlinearity, so the dict
    carries the weights for a re-implementation rather than for
    ``nn.RNN``).
    """

    name = "cec"
    state_names = ("h",)
    infer_steps = {}
    first_layer_dx = False

    def param_specs(self, I, H):
        return [("weight_ih", (H, I), True), ("bias", (H,), False)]

    def init_params(self, p, rng, forget_bias):
        H, I = p["weight_ih"].shape
        p["weight_ih"][...] = glorot_uniform(rng, H, I)
        p["bias"][...] = 0.0

    def buffer_specs(self, I, H):
        return [("h", "step", H, "forward"),
                ("delta", "step", H, "backward"),
                ("d_h0", "batch", H, "backward")]

    def forward(self, x, p, s0, buf):
        _lstm.cec_forward(x, p["weight_ih"], p["bias"], s0[0], buf["h"])

    def backward(self, x, p, s0, buf, grad_h, g, d_x):
        _lstm.cec_backward(x, p["weight_ih"], grad_h, 0, buf["delta"],
                           g["weight_ih"], g["bias"], buf["d_h0"], d_x)

    def final_state(self, buf):
        return (buf["h"][-1],)

    def to_torch(self, p):
        H = p["bias"].shape[0]
        return {"weight_ih": p["weight_ih"].copy(),
                "weight_hh": np.eye(H, dtype=p["bias"].dtype),
                "bias_ih": p["bias"].copy(),
                "bias_hh": np.zeros_like(p["bias"])}

    def from_torch(self, p, d):
        H = p["bias"].shape[0]
        if np.any(d["weight_hh"] != np.eye(H)):
            raise ValueError("the cec cell's recurrent weight is fixed at the "
                             "identity; the state dict's weight_hh must be "
                             "the identity matrix")
        p["weight_ih"][...] = d["weight_ih"]
        p["bias"][...] = d["bias_ih"] + d["bias_hh"]


CELLS = {"elman": ElmanCell, "lstm": lambda activation: LSTMCell(True),
         "lstm1997": lambda activation: LSTMCell(False),
         "cec": lambda activation: CECCell()}


def make_cell(cell, activation):
    """The adapter for ``cell`` (one of :data:`CELLS`)."""
    if cell not in CELLS:
        raise ValueError(f"cell={cell!r} is not available in this build; "
                         f"expected one of {sorted(CELLS)}")
    return CELLS[cell](activation)
