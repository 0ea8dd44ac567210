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
* ``state_names``: the recurrent state (``("h",)`` for Elman); ``forward``
  and ``backward`` take the initial state as a tuple of ``(B, H)`` arrays in
  that order, and ``final_state(buf)`` returns the state after the last step.
* ``forward(x, p, s0, buf)`` / ``backward(x, p, s0, buf, grad_h, g, d_x)``
  call the compiled kernels once over the whole ``(T, B, .)`` time-major
  window (never per step): ``grad_h`` is dL/dh(t), the gradients are
  *written* (not accumulated) into the views ``g`` and ``d_x`` receives
  dL/dx(t), the next-lower layer's ``grad_h``.
* ``to_torch(p)`` / ``from_torch(p, d)``: the layer's parameters in
  ``torch.nn.RNN``/``torch.nn.LSTM`` names without the ``_l{k}`` suffix.
"""
import numpy as np

from cbptt import _elman
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


CELLS = {"elman": ElmanCell}


def make_cell(cell, activation):
    """The adapter for ``cell`` (one of :data:`CELLS`)."""
    if cell not in CELLS:
        raise ValueError(f"cell={cell!r} is not available in this build; "
                         f"expected one of {sorted(CELLS)}")
    return CELLS[cell](activation)
