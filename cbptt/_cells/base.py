"""What a cell is: the contract every entry of the registry fulfils.

A cell class describes one kind of recurrent layer completely; an instance
(``cell(activation)``) is the small, stateless, picklable adapter that the
estimators' network (:mod:`cbptt._network`), diagnostics, persistence and
torch interop drive. Everything they need of a cell comes from here; none
of them names a cell.

Class attributes
----------------
name : str
    The registry key and the estimators' ``cell=`` value.
gates : tuple of str
    The row blocks of ``weight_ih``, ``weight_hh`` and the biases, in
    order (PyTorch's: ``i, f, g, o`` for ``nn.LSTM``); ``()`` for a cell of
    one block (Elman, CEC).
activations : tuple of str
    The activations ``f`` the cell accepts (:mod:`cbptt._activations`);
    ``()`` for a cell with fixed nonlinearities, which ignores the
    estimators' ``activation``.
state_names : tuple of str
    The recurrent state, each ``(B, H)``: ``("h",)``, or ``("h", "c")``.
signal : str
    The functional result's field that carries the error across steps and
    that the error flow measures: ``"delta"``, or ``"delta_c"`` (the error
    in an LSTM's carousel).
torch_module : str or None
    The ``torch.nn`` module whose ``state_dict`` names :meth:`to_torch`
    produces (``"RNN"``, ``"LSTM"``), None when no torch module computes
    the cell.
bounded_state : bool
    Whether every state the layer outputs satisfies ``|h| <= 1`` when its
    initial state does (tanh, the logistic, an LSTM's ``o tanh(c)``): the
    overflow guard then bounds the next pre-activation without scanning h.
poor_score : bool
    Whether the cell cannot fit scikit-learn's tabular check problems read
    as series (the estimators' ``poor_score`` tag).
infer_steps, first_layer_dx
    Work memory of the network: see :meth:`buffer_specs`.

Methods
-------
param_specs(I, H)
    The layer's parameters as ``(name, shape, decay)`` in PyTorch's layout;
    ``decay`` says whether L2 applies (weight matrices, named ``weight_*``,
    yes; biases, named ``bias*``, no). A cell has one ``bias`` (PyTorch's
    ``bias_ih + bias_hh``, where the two only ever appear summed), or
    ``bias_ih`` and ``bias_hh`` when its equations keep the recurrent
    side's bias apart (the layer driver's ``apart``: a separate recurrent
    product, bias and error signal).
init_params(p, rng, forget_bias)
    Fill the views ``p`` in place from ``rng`` in a fixed order, so that a
    seed gives bitwise the same network.
buffer_specs(I, H)
    The work arrays, ``(name, kind, width, phase)``: ``kind`` ``"step"``
    (``(T, B, width)``) or ``"batch"`` (``(B, width)``), ``phase``
    ``"forward"`` or ``"backward"``; always a ``"step"`` buffer ``"h"``.
    ``infer_steps`` gives, for a forward that is not differentiated, the
    steps a ``"step"`` buffer other than ``"h"`` needs (``{}``: all).
forward(x, p, s0, buf) / backward(x, p, s0, buf, grad_h, g, d_x)
    The compiled kernels once over a time-major ``(T, B, .)`` window;
    gradients are written into ``g``, ``d_x`` receives dL/dx (None for a
    first layer unless ``first_layer_dx``).
final_state(buf)
    The state tuple after the last step.
api_forward(x, w, state=None) / api_backward(fwd, grad_h, truncate)
    The functional API's forward and backward (batch-first, checked), with
    ``w`` a dict of :meth:`weight_names` and the instance's activation;
    ``state`` is None or the state tuple. Diagnostics run these.
api_final_state(fwd)
    The state tuple after a functional forward result's last step.
to_torch(p) / from_torch(p, d)
    The layer's parameters in ``torch_module``'s names without the
    ``_l{k}`` suffix, and back; ``from_torch`` raises ValueError for values
    the cell cannot represent.
"""


class Cell:
    """Base of the registry's cells: the shared defaults of the contract."""

    name = None
    gates = ()
    activations = ()
    state_names = ("h",)
    signal = "delta"
    torch_module = None
    bounded_state = False
    poor_score = False
    infer_steps = {}
    first_layer_dx = False

    def __init__(self, activation="tanh"):
        self.activation = activation

    @classmethod
    def n_blocks(cls):
        """Row blocks of the stacked weights: ``len(gates)``, at least 1."""
        return max(1, len(cls.gates))

    @classmethod
    def weight_names(cls):
        """The parameters' names, in :meth:`param_specs` order."""
        return tuple(name for name, _, _ in cls.param_specs(1, 1))

    @classmethod
    def hidden_size(cls, weight_ih_shape):
        """H from the shape of ``weight_ih`` ``(n_blocks * H, I)``, or None."""
        if len(weight_ih_shape) != 2:
            return None
        rows, g = weight_ih_shape[0], cls.n_blocks()
        return rows // g if rows >= g and rows % g == 0 else None

    def buffer_specs(self, I, H):
        """A cell of one state: its outputs h, the error signals of its
        blocks, and dL/dh0."""
        return [("h", "step", H, "forward"),
                ("delta", "step", self.n_blocks() * H, "backward"),
                ("d_h0", "batch", H, "backward")]

    def api_final_state(self, fwd):
        return tuple(getattr(fwd, name)[:, -1] for name in self.state_names)
