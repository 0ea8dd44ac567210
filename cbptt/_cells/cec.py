"""The constant error carousel (CEC), computed by :mod:`cbptt._lstm`.

    s(t) = s(t-1) + W_ih x(t) + b,      delta(t) = e(t) + delta(t+1)

an identity unit whose self-weight is fixed at 1, so the error flows back
unchanged. Exported in ``torch.nn.RNN``'s names with ``weight_hh`` the
identity (no torch module has an identity nonlinearity, so the dict carries
the weights for a re-implementation rather than for ``nn.RNN``).
"""
import numpy as np

from cbptt import _lstm, functional
from cbptt._cells.base import Cell
from cbptt._cells.init import glorot_uniform


class CECCell(Cell):
    """The carousel layer: H linear units, self-weight 1."""

    name = "cec"
    # the last state is W sum_t x(t) + T b: it sees only the sum of the
    # steps, so it cannot fit scikit-learn's tabular check problems
    poor_score = True

    @classmethod
    def param_specs(cls, I, H):
        return [("weight_ih", (H, I), True), ("bias", (H,), False)]

    def init_params(self, p, rng, forget_bias):
        H, I = p["weight_ih"].shape
        p["weight_ih"][...] = glorot_uniform(rng, H, I)
        p["bias"][...] = 0.0

    def forward(self, x, p, s0, buf):
        _lstm.cec_forward(x, p["weight_ih"], p["bias"], s0[0], buf["h"])

    def backward(self, x, p, s0, buf, grad_h, g, d_x):
        _lstm.cec_backward(x, p["weight_ih"], grad_h, 0, buf["delta"],
                           g["weight_ih"], g["bias"], buf["d_h0"], d_x)

    def final_state(self, buf):
        return (buf["h"][-1],)

    def api_forward(self, x, w, state=None):
        return functional.cec_forward(x, w["weight_ih"], w["bias"],
                                      h0=None if state is None else state[0])

    def api_backward(self, fwd, grad_h, truncate):
        return functional.cec_backward(fwd, grad_h, truncate=truncate)

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
