"""The LSTM cells, computed by :mod:`cbptt._lstm`: the forget-gate form
(Gers et al., 2000) and the 1997 form (Hochreiter & Schmidhuber), f = 1.

    i, f, o = logistic(z + b),  g = tanh(z + b),  z = W_ih x(t) + W_hh h(t-1)
    c(t) = f c(t-1) + i g,      h(t) = o tanh(c(t))

Gates packed ``i, f, g, o`` (PyTorch's order; ``i, g, o`` without the
forget gate); exported as ``torch.nn.LSTM`` with ``bias_hh = 0``, the 1997
form as an ``nn.LSTM`` whose forget gate is fixed open: zero weights and
bias :attr:`LSTMCell.OPEN_BIAS`, where ``sigmoid(100) = 1`` exactly in
float32 and float64.
"""
import numpy as np

from cbptt import _lstm, functional
from cbptt._cells.base import Cell
from cbptt._cells.init import glorot_uniform, orthogonal, stacked_blocks


class LSTMCell(Cell):
    """The LSTM layer with a forget gate; ``forget_bias`` initialises its bias."""

    name = "lstm"
    gates = ("i", "f", "g", "o")
    state_names = ("h", "c")
    signal = "delta_c"
    torch_module = "LSTM"
    bounded_state = True
    infer_steps = {"gates": 1, "c": 2}
    forget_gate = True
    OPEN_BIAS = 100.0

    @classmethod
    def param_specs(cls, I, H):
        GH = len(cls.gates) * H
        return [("weight_ih", (GH, I), True), ("weight_hh", (GH, H), True),
                ("bias", (GH,), False)]

    def init_params(self, p, rng, forget_bias):
        GH, I = p["weight_ih"].shape
        G = len(self.gates)
        H = GH // G
        p["weight_ih"][...] = stacked_blocks(lambda: glorot_uniform(rng, H, I), G)
        p["weight_hh"][...] = stacked_blocks(lambda: orthogonal(rng, H), G)
        p["bias"][...] = 0.0
        if self.forget_gate:
            p["bias"][H:2 * H] = forget_bias

    def buffer_specs(self, I, H):
        GH = len(self.gates) * H
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

    def api_forward(self, x, w, state=None):
        h0, c0 = (None, None) if state is None else state
        return functional.lstm_forward(x, w["weight_ih"], w["weight_hh"],
                                       w["bias"], h0=h0, c0=c0,
                                       forget_gate=self.forget_gate)

    def api_backward(self, fwd, grad_h, truncate):
        return functional.lstm_backward(fwd, grad_h, truncate=truncate)

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


class LSTM1997Cell(LSTMCell):
    """The 1997 LSTM: input and output gates around the carousel, no forget
    gate (``c(t) = c(t-1) + i g``)."""

    name = "lstm1997"
    gates = ("i", "g", "o")
    forget_gate = False
