"""The cell registry: the one place that enumerates cbptt's recurrent cells.

Each entry of :data:`CELLS` is a cell class fulfilling the contract of
:mod:`cbptt._cells.base` (gates and their order, parameter and state shapes,
initialisation, the compiled kernels, the functional API, the PyTorch
mapping, the activations it accepts). The estimators' network, their
``cell=`` option, diagnostics, persistence and torch interop all reach a
cell through :func:`make_cell` or :func:`get_cell`, and the conformance
tests (``tests/test_cell_conformance.py``) run over every entry.

Adding a cell: one module here with its class, one line below, and its
reference equations in ``tests/reference.py``.
"""
from cbptt._cells.base import Cell
from cbptt._cells.cec import CECCell
from cbptt._cells.elman import ElmanCell
from cbptt._cells.gru import GRUCell
from cbptt._cells.init import glorot_uniform, orthogonal
from cbptt._cells.lstm import LSTM1997Cell, LSTMCell

CELLS = {cls.name: cls for cls in (LSTMCell, LSTM1997Cell, ElmanCell, CECCell,
                                   GRUCell)}

__all__ = ["CELLS", "Cell", "get_cell", "glorot_uniform", "make_cell",
           "orthogonal"]


def get_cell(cell):
    """The cell class registered as ``cell``; ValueError otherwise."""
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"cell={cell!r} is not supported; expected one of "
                         f"{list(CELLS)}")
    return CELLS[cell]


def make_cell(cell, activation="tanh"):
    """The adapter of ``cell`` for layers with the given activation.

    A cell with fixed nonlinearities (``activations == ()``) ignores
    ``activation``; any other cell refuses one it does not accept.
    """
    cls = get_cell(cell)
    if not cls.activations:
        return cls()
    if activation not in cls.activations:
        raise ValueError(f"activation={activation!r} is not supported by "
                         f"cell={cell!r}; expected one of "
                         f"{list(cls.activations)}")
    return cls(activation)
