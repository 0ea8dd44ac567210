"""The GRU cell (PyTorch's ``torch.nn.GRU``), computed by :mod:`cbptt._lstm`.

    r = logistic(W_ir x + b_ir + W_hr h(t-1) + b_hr)
    z = logistic(W_iz x + b_iz + W_hz h(t-1) + b_hz)
    n = tanh(W_in x + b_in + r (W_hn h(t-1) + b_hn))
    h(t) = (1 - z) n + z h(t-1)

Gates packed ``r, z, n`` (PyTorch's order). ``b_hn`` sits inside ``r (...)``,
so the cell keeps both of PyTorch's biases, ``bias_ih`` and ``bias_hh``, and
its state dict is ``nn.GRU``'s as it is.
"""
import numpy as np

from cbptt import _lstm, functional
from cbptt._cells.base import Cell


class GRUCell(Cell):
    """The GRU layer: gates r, z, n; fixed logistic and tanh nonlinearities."""

    name = "gru"
    gates = ("r", "z", "n")
    torch_module = "GRU"
    # h(t) = (1 - z) n + z h(t-1) with 0 < z < 1 and |n| <= 1: |h| <= 1
    bounded_state = True
    # a forward that is not differentiated keeps one step of gates and two
    # of hn = W_hn h(t-1) + b_hn
    infer_steps = {"gates": 1, "hn": 2}

    @classmethod
    def param_specs(cls, I, H):
        GH = len(cls.gates) * H
        return [("weight_ih", (GH, I), True), ("weight_hh", (GH, H), True),
                ("bias_ih", (GH,), False), ("bias_hh", (GH,), False)]

    def init_params(self, p, rng, forget_bias):
        """PyTorch's initialisation: every parameter U(-k, k), k = 1/sqrt(H)
        (``forget_bias`` concerns the LSTM only)."""
        H = p["weight_hh"].shape[1]
        k = 1.0 / np.sqrt(H)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            p[name][...] = rng.uniform(-k, k, p[name].shape)

    def buffer_specs(self, I, H):
        GH = len(self.gates) * H
        return [("gates", "step", GH, "forward"),
                ("hn", "step", H, "forward"),
                ("h", "step", H, "forward"),
                ("delta", "step", GH, "backward"),
                ("delta_hn", "step", H, "backward"),
                ("d_h0", "batch", H, "backward")]

    def forward(self, x, p, s0, buf):
        _lstm.gru_forward(x, p["weight_ih"], p["weight_hh"], p["bias_ih"],
                          p["bias_hh"], s0[0], buf["gates"], buf["hn"],
                          buf["h"])

    def backward(self, x, p, s0, buf, grad_h, g, d_x):
        _lstm.gru_backward(x, p["weight_ih"], p["weight_hh"], s0[0],
                           buf["gates"], buf["hn"], buf["h"], grad_h, 0,
                           buf["delta"], buf["delta_hn"], g["weight_ih"],
                           g["weight_hh"], g["bias_ih"], g["bias_hh"],
                           buf["d_h0"], d_x)

    def final_state(self, buf):
        return (buf["h"][-1],)

    def api_forward(self, x, w, state=None):
        return functional.gru_forward(x, w["weight_ih"], w["weight_hh"],
                                      w["bias_ih"], w["bias_hh"],
                                      h0=None if state is None else state[0])

    def api_backward(self, fwd, grad_h, truncate):
        return functional.gru_backward(fwd, grad_h, truncate=truncate)

    def to_torch(self, p):
        return {name: p[name].copy() for name in self.weight_names()}

    def from_torch(self, p, d):
        for name in self.weight_names():
            p[name][...] = d[name]
