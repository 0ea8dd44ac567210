"""The Elman (simple recurrent) cell, computed by :mod:`cbptt._elman`.

    net(t) = W_ih x(t) + W_hh h(t-1) + b,      h(t) = f(net(t))
    delta(t) = f'(net(t)) * (e(t) + W_hh^T delta(t+1))

with ``f`` any of scikit-learn's activations; exported as ``torch.nn.RNN``
(whose nonlinearities are only ``tanh`` and ``relu``) with ``bias_hh = 0``.
"""
import numpy as np

from cbptt import _elman, functional
from cbptt._activations import ACTIVATIONS, get_activation
from cbptt._cells.base import Cell
from cbptt._cells.init import glorot_uniform, orthogonal


class ElmanCell(Cell):
    """The Elman layer: one block of H units, activation ``f``."""

    name = "elman"
    activations = tuple(ACTIVATIONS)
    torch_module = "RNN"

    def __init__(self, activation="tanh"):
        super().__init__(activation)
        self._act = get_activation(activation).code
        self.bounded_state = get_activation(activation).bounded

    @classmethod
    def param_specs(cls, I, H):
        return [("weight_ih", (H, I), True), ("weight_hh", (H, H), True),
                ("bias", (H,), False)]

    def init_params(self, p, rng, forget_bias):
        H, I = p["weight_ih"].shape
        p["weight_ih"][...] = glorot_uniform(rng, H, I)
        p["weight_hh"][...] = orthogonal(rng, H)
        p["bias"][...] = 0.0

    def forward(self, x, p, s0, buf):
        _elman.elman_forward(x, p["weight_ih"], p["weight_hh"], p["bias"],
                             s0[0], self._act, buf["h"])

    def backward(self, x, p, s0, buf, grad_h, g, d_x):
        _elman.elman_backward(x, p["weight_ih"], p["weight_hh"], s0[0],
                              buf["h"], grad_h, self._act, 0, buf["delta"],
                              g["weight_ih"], g["weight_hh"], g["bias"],
                              buf["d_h0"], d_x)

    def final_state(self, buf):
        return (buf["h"][-1],)

    def api_forward(self, x, w, state=None):
        return functional.rnn_forward(
            x, w["weight_ih"], w["weight_hh"], w["bias"],
            h0=None if state is None else state[0],
            activation=self.activation)

    def api_backward(self, fwd, grad_h, truncate):
        return functional.rnn_backward(fwd, grad_h, truncate=truncate)

    def to_torch(self, p):
        return {"weight_ih": p["weight_ih"].copy(),
                "weight_hh": p["weight_hh"].copy(),
                "bias_ih": p["bias"].copy(),
                "bias_hh": np.zeros_like(p["bias"])}

    def from_torch(self, p, d):
        p["weight_ih"][...] = d["weight_ih"]
        p["weight_hh"][...] = d["weight_hh"]
        p["bias"][...] = d["bias_ih"] + d["bias_hh"]
