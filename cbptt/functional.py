"""The functional API: recurrent layers forward and their exact BPTT.

Contract
--------
* Arrays are batch-first: ``x (batch, T, features)``, ``h (batch, T, H)``.
* Weights use PyTorch's layout: ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``
  and one ``bias (G*H,)`` (PyTorch's ``bias_ih + bias_hh``).
* float32 in gives float32 out; any other real input is computed in float64.
* ``*_forward`` validates, allocates and calls the compiled kernel once with
  the GIL released; the result keeps what the backward pass needs.
  ``*_backward`` takes the loss gradient with respect to every step's output
  and returns every gradient plus the error signals ``delta``.
* Internally the kernels store per-step arrays time-major ``(T, batch, .)``;
  the batch-first arrays returned here are views of that storage.
* One path per pass: every call computes through one compiled function
  (``_elman.forward_call``/``backward_call``, ``_lstm.cec_forward_call``/
  ``cec_backward_call``, ``_lstm.forward_call``/``backward_call``,
  ``_lstm.gru_forward_call``/``gru_backward_call``): the checks of the
  common case (float32 or float64 ndarrays of one dtype, consistent shapes,
  finite values; any initial states, either layout), the private copies,
  the allocations, the kernel, the bound on the pre-activations
  (``check_preactivation_range``: its decision and message; for the CEC,
  whose sum over the steps no one-step bound covers, a check that its
  states are finite) and, in place of a scan of ``grad_h`` first, a check
  that the gradients are finite. When it declines the arguments as given (a list, another
  dtype, mixed dtypes, a bad value), the Python checks run: they raise the
  precise error, or convert the arguments (to C-contiguous ndarrays of the
  working dtype) for a second call of the same function, which must accept
  them. So the results do not depend on the form of the input, only on its
  values in the working dtype, and the errors are those of the checks
  (``tests/test_one_path.py``).
"""
from collections import namedtuple
from dataclasses import dataclass, field, fields

import numpy as np

from cbptt import _elman, _scan
from cbptt import _lstm
from cbptt._validation import (as_array, check_activation, check_finite,
                               check_index_limit, check_kernel_sizes,
                               check_nonempty, check_outputs_finite,
                               check_shape, check_truncate, time_major,
                               to_kernel, working_dtype)

__all__ = ["RNNForwardResult", "RNNGradients", "rnn_forward", "rnn_backward",
           "release_buffers"]


def _made_by_forward_only(result):
    """A forward result's ``__post_init__``: refuse every construction
    through ``__init__``. The forward passes build their results without it
    (:func:`_result`); ``dataclasses.replace`` and the constructor would
    pair new arrays or settings with the old result's cached gates and
    states, whose backward pass would then be silently wrong. Copies and
    pickles do not run ``__init__``."""
    producer = {"RNNForwardResult": "rnn_forward",
                "CECForwardResult": "cec_forward",
                "LSTMForwardResult": "lstm_forward",
                "GRUForwardResult": "gru_forward"}[type(result).__name__]
    raise TypeError(
        f"{type(result).__name__} is made only by {producer}: a result "
        "built or changed by hand (the constructor, dataclasses.replace) "
        "would pair its new values with the old result's cached states, "
        f"and the backward pass would be wrong; run {producer} again for "
        "other inputs or weights")


@dataclass(frozen=True, eq=False)
class RNNForwardResult:
    """What :func:`rnn_forward` computed and what :func:`rnn_backward` needs.

    Attributes
    ----------
    h : ndarray of shape (batch, T, H)
        Hidden states h(t) = f(net(t)) for every step.
    x : ndarray of shape (batch, T, I)
        The input, in the working dtype.
    weight_ih : ndarray of shape (H, I)
    weight_hh : ndarray of shape (H, H)
    bias : ndarray of shape (H,)
    h0 : ndarray of shape (batch, H)
        The initial state (zeros when none was given).
    activation : str
        The activation's name.
    batch_first : bool
        The layout of the per-step arrays: (batch, T, .) when True,
        time-major (T, batch, .) when False (as passed to the forward pass).
    """

    h: np.ndarray
    x: np.ndarray
    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias: np.ndarray
    h0: np.ndarray
    activation: str
    _x_tm: np.ndarray = field(repr=False)
    _h_tm: np.ndarray = field(repr=False)
    batch_first: bool = True

    __post_init__ = _made_by_forward_only

    @property
    def h_last(self):
        """The final hidden state h(T-1), shape (batch, H)."""
        return self._h_tm[-1]


RNNGradients = namedtuple(
    "RNNGradients", ["weight_ih", "weight_hh", "bias", "h0", "x", "delta"])
RNNGradients.__doc__ = """Gradients of the loss returned by :func:`rnn_backward`.

Attributes
----------
weight_ih : ndarray of shape (H, I)
weight_hh : ndarray of shape (H, H)
bias : ndarray of shape (H,)
h0 : ndarray of shape (batch, H)
    Gradient with respect to the initial state (at the zero state when
    ``h0`` was None).
x : ndarray of shape (batch, T, I), or None
    dL/dx; None when ``input_grad=False``.
delta : ndarray of shape (batch, T, H)
    The error signals dL/dnet(t).
"""


def release_buffers():
    """Let go of the large buffers kept for reuse by later calls.

    The functional API's large per-step arrays (from 64 KiB: copies of x,
    ``h``, gates, ``delta``, ...) come from a pool: when every array and
    view of an earlier result is gone, its memory is handed out again for
    an array of the same size, which spares the operating system's
    zero-filling of fresh pages every mini-batch of a training loop (see
    the performance page). A buffer is reused only once
    nothing refers to it, so results never change; the pool holds at most
    256 MiB, and a call that finds no free buffer of its size lets every
    free one go. This lets them go now (e.g. after training, before other
    memory-hungry work); nothing else is needed for correctness.

    Returns
    -------
    None

    Examples
    --------
    >>> import numpy as np
    >>> import cbptt
    >>> x = np.zeros((32, 100, 8))
    >>> res = cbptt.rnn_forward(x, np.zeros((64, 8)), np.zeros((64, 64)),
    ...                         np.zeros(64))
    >>> del res
    >>> cbptt.release_buffers()
    """
    _scan._pool_clear()


def _check_flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}={value!r} has type {type(value).__name__}; "
                        "expected True or False")
    return bool(value)


def _check_layout(batch_first):
    return _check_flag("batch_first", batch_first)


def _check_input(x, batch_first=True):
    x = as_array("x", x, 3)
    labels = ("batch", "T (time steps)", "features")
    check_nonempty("x", x, labels if batch_first else
                   (labels[1], labels[0], labels[2]))
    check_index_limit("x", x.shape[0] * x.shape[1], "batch * T")
    check_index_limit("x", x.shape[2], "the number of features")
    check_finite("x", x)
    return x


def _check_weight(name, w, shape):
    w = as_array(name, w, len(shape))
    check_shape(name, w, shape)
    check_finite(name, w)
    return w


def _check_state(name, s, batch, hidden):
    if s is None:
        return None
    s = as_array(name, s, 2)
    check_shape(name, s, (batch, hidden))
    check_finite(name, s)
    return s


def _check_hidden_size(weight_ih):
    w = as_array("weight_ih", weight_ih, 2)
    if w.shape[0] < 1 or w.shape[1] < 1:
        raise ValueError(f"weight_ih has shape {w.shape}; expected (H, I) "
                         "with H >= 1 and I >= 1")
    check_index_limit("weight_ih", w.shape[0], "H (its number of rows)")
    return w


def _sizes(x, batch_first):
    """(batch, T, features) of an input in either layout."""
    return x.shape if batch_first else (x.shape[1], x.shape[0], x.shape[2])


def _checked_inputs(x, weight_ih, weight_hh, bias, h0, c0, batch_first,
                    forget_gate=None, gates=None, bias_hh=False):
    """The arguments of an Elman (``forget_gate`` and ``gates`` None), LSTM
    or GRU (``gates`` its names, ``bias_hh`` given) forward pass, checked:
    every bad one raises its precise error, in the order of the arguments.
    Valid ones are returned as the compiled one-call path accepts them,
    ``(x, w_ih, w_hh, b, h0, c0, batch_first)`` (with ``b_hh`` after ``b``
    for the GRU): C-contiguous ndarrays of the working dtype (float32 if
    every array is float32, else float64; a state given as None stays None)
    and the layout flag as a bool. Called only when that path declined the
    arguments as given; it copies them again (its copies are the result's).
    """
    batch_first = _check_layout(batch_first)
    x = _check_input(x, batch_first)
    if gates is not None:
        weight_ih, H = _check_stacked_rows(weight_ih, gates)
    elif forget_gate is not None:
        weight_ih, H = _check_gate_rows(weight_ih, forget_gate)
    else:
        weight_ih = _check_hidden_size(weight_ih)
        H = weight_ih.shape[0]
    G = weight_ih.shape[0] // H
    B, T, I = _sizes(x, batch_first)
    GH = G * H
    check_kernel_sizes("weight_ih", T, B, I, GH, H)
    weight_ih = _check_weight("weight_ih", weight_ih, (GH, I))
    weight_hh = _check_weight("weight_hh", weight_hh, (GH, H))
    biases = [_check_weight("bias_ih" if gates else "bias", bias, (GH,))]
    if bias_hh is not False:
        biases.append(_check_weight("bias_hh", bias_hh, (GH,)))
    h0 = _check_state("h0", h0, B, H)
    c0 = _check_state("c0", c0, B, H)
    dtype = working_dtype(x, weight_ih, weight_hh, *biases, h0, c0)
    return (to_kernel(x, dtype), to_kernel(weight_ih, dtype),
            to_kernel(weight_hh, dtype),
            *[to_kernel(b, dtype) for b in biases],
            None if h0 is None else to_kernel(h0, dtype),
            None if c0 is None else to_kernel(c0, dtype), batch_first)


def _accepted(out, func):
    """The compiled one-call path's answer to checked, converted arguments,
    which it must accept."""
    if out is None:
        raise RuntimeError(f"{func}: internal error: the compiled call "
                           "declined checked arguments; please report it")
    return out


def _result_accepted(out, producer):
    """The compiled backward pass's answer to a checked ``grad_h``: None
    only when the forward result's own arrays do not fit together (not
    what ``producer`` returned, e.g. built or changed by hand)."""
    if out is None:
        raise ValueError("forward_result's arrays do not fit together "
                         "(shapes, dtypes or layout); expected the result "
                         f"{producer} returned, unchanged")
    return out


def _result(cls, **values):
    """``cls(**values)`` for a frozen dataclass, without its generated
    ``__init__`` (one ``object.__setattr__`` per field, about 2 us): the
    same instance dictionary. Every field must be given."""
    assert values.keys() == _FIELDS[cls]
    res = object.__new__(cls)
    res.__dict__.update(values)
    return res


def _layout(a_tm, batch_first):
    """A time-major (T, B, .) array in the caller's layout (a view)."""
    return a_tm.swapaxes(0, 1) if batch_first and a_tm is not None else a_tm


def _check_grad(name, g, T, B, H, dtype, batch_first):
    # Checks a loss gradient (raising the precise error) and returns it
    # time-major and C-contiguous in ``dtype``: the common case (a finite
    # float ndarray of the right dtype and shape) in one compiled call.
    g_tm = _scan.grad_input(g, batch_first, T, B, H, dtype.itemsize)
    if g_tm is not None:
        return g_tm
    g = as_array(name, g, 3)
    check_shape(name, g, (B, T, H) if batch_first else (T, B, H))
    check_finite(name, g)
    return time_major(g, dtype) if batch_first else to_kernel(g, dtype)


def rnn_forward(x, weight_ih, weight_hh, bias, h0=None, activation="tanh",
                batch_first=True):
    """Forward pass of an Elman (simple recurrent) layer over a whole sequence.

    Computes, for t = 0..T-1::

        net(t) = weight_ih @ x(t) + weight_hh @ h(t-1) + bias
        h(t)   = f(net(t)),   h(-1) = h0

    in compiled code with the GIL released.

    Parameters
    ----------
    x : array-like of shape (batch, T, I), or (T, batch, I)
        Input sequences (the second form with ``batch_first=False``).
    weight_ih : array-like of shape (H, I)
        Input-to-hidden weights (PyTorch's ``weight_ih_l0``).
    weight_hh : array-like of shape (H, H)
        Hidden-to-hidden (recurrent) weights.
    bias : array-like of shape (H,)
        Bias (PyTorch's ``bias_ih_l0 + bias_hh_l0``).
    h0 : array-like of shape (batch, H), default=None
        Initial hidden state; zeros when None.
    activation : {"tanh", "logistic", "relu", "identity"}, default="tanh"
        The unit's nonlinearity f.
    batch_first : bool, default=True
        The layout of ``x`` and of every per-step array returned (and of the
        ``grad_h`` the backward pass takes): (batch, T, .) when True,
        time-major (T, batch, .) when False, like PyTorch's ``nn.RNN``. The
        kernels run time-major, so time-major arrays skip a transposing copy
        at each call.

    Returns
    -------
    result : RNNForwardResult
        ``result.h`` holds h(t) with shape (batch, T, H); the rest is what
        :func:`rnn_backward` needs. Its arrays are read-only private copies,
        so later in-place changes to the inputs do not affect the backward
        pass.

    Raises
    ------
    ValueError
        On a wrong number of dimensions, mismatched sizes, empty arrays,
        non-finite values or an unknown activation; and when the inputs and
        weights are so large that the pre-activations could overflow the
        working dtype (never a silent NaN or saturated garbage).
    TypeError
        On a non-numeric, boolean or complex dtype.

    See Also
    --------
    rnn_backward : the exact gradient of this pass (BPTT).

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt import rnn_forward
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 5, 3))
    >>> w_ih, w_hh, b = rng.standard_normal((4, 3)), np.eye(4) * 0.5, np.zeros(4)
    >>> rnn_forward(x, w_ih, w_hh, b).h.shape
    (2, 5, 4)
    """
    act = check_activation(activation)
    out = None
    if type(batch_first) is bool:
        out = _elman.forward_call(x, weight_ih, weight_hh, bias, h0,
                                  batch_first, act)
    if out is None:             # raise the precise error, or convert
        x, w_ih, w_hh, b, h0, _, batch_first = _checked_inputs(
            x, weight_ih, weight_hh, bias, h0, None, batch_first)
        out = _accepted(_elman.forward_call(x, w_ih, w_hh, b, h0,
                                            batch_first, act), "rnn_forward")
    x_tm, w_ih, w_hh, b, h0k, h_tm = out
    return _result(
        RNNForwardResult, h=_layout(h_tm, batch_first),
        x=_layout(x_tm, batch_first), weight_ih=w_ih,
        weight_hh=w_hh, bias=b, h0=h0k, activation=activation,
        _x_tm=x_tm, _h_tm=h_tm, batch_first=batch_first)


def rnn_backward(forward_result, grad_h, truncate=None, input_grad=True):
    """Backpropagation through time for an Elman layer: every exact gradient.

    With ``grad_h(t) = dL/dh(t)`` the loss's own derivative at step t, the
    error signals are::

        delta(t) = f'(net(t)) * (grad_h(t) + weight_hh.T @ delta(t+1))

    and the shared weights' gradients are sums over the unrolled copies,
    e.g. ``dL/dweight_hh = sum_t delta(t) h(t-1)^T``.

    Parameters
    ----------
    forward_result : RNNForwardResult
        What :func:`rnn_forward` returned.
    grad_h : array-like of shape (batch, T, H)
        dL/dh(t) for every step (zero where the loss does not look).
    truncate : int or None, default=None
        None for full BPTT. A positive k cuts the time axis into windows
        [0, k), [k, 2k), ...; error flows backward within a window and never
        across a boundary (PyTorch's ``h = h.detach()`` every k steps). The
        state still flows forward across windows. k >= T is full BPTT.
    input_grad : bool, default=True
        Whether to compute dL/dx (the ``x`` field). False skips that
        product, as PyTorch does for an input without ``requires_grad``:
        the first layer's input is data. ``x`` is then None.

    Returns
    -------
    grads : RNNGradients
        Named tuple ``(weight_ih, weight_hh, bias, h0, x, delta)``: the
        gradient of the loss with respect to each input of the forward pass
        and the error signals ``delta = dL/dnet`` of shape (batch, T, H).

    Raises
    ------
    ValueError
        If ``grad_h``'s shape differs from ``forward_result.h``'s, it holds
        non-finite values, or ``truncate`` is not a positive int; and when a
        gradient overflows the working dtype (finite inputs, non-finite
        result).
    TypeError
        If ``forward_result`` is not an :class:`RNNForwardResult`.

    See Also
    --------
    rnn_forward : the pass this differentiates.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt import rnn_forward, rnn_backward
    >>> rng = np.random.default_rng(0)
    >>> res = rnn_forward(rng.standard_normal((2, 5, 3)),
    ...                   rng.standard_normal((4, 3)), np.eye(4) * 0.5, np.zeros(4))
    >>> g = np.zeros_like(res.h); g[:, -1] = 1.0     # loss = sum of h(T-1)
    >>> grads = rnn_backward(res, g)
    >>> grads.weight_hh.shape, grads.delta.shape
    ((4, 4), (2, 5, 4))
    """
    if not isinstance(forward_result, RNNForwardResult):
        raise TypeError("forward_result has type "
                        f"{type(forward_result).__name__}; expected the "
                        "RNNForwardResult returned by rnn_forward")
    r = forward_result
    trunc = check_truncate(truncate)
    act = check_activation(r.activation)
    out = None
    if type(input_grad) is bool:
        out = _elman.backward_call(r._x_tm, r.weight_ih, r.weight_hh, r.h0,
                                   r._h_tm, grad_h, r.batch_first, act,
                                   trunc, input_grad, False)
    if out is not None:
        delta, d_w_ih, d_w_hh, d_b, d_h0, d_x = out
    else:                       # raise the precise error, or convert
        g_tm = _check_grad("grad_h", grad_h, *r._h_tm.shape, r._h_tm.dtype,
                           r.batch_first)
        input_grad = _check_flag("input_grad", input_grad)
        delta, d_w_ih, d_w_hh, d_b, d_h0, d_x = _result_accepted(
            _elman.backward_call(r._x_tm, r.weight_ih, r.weight_hh, r.h0,
                                 r._h_tm, g_tm, False, act, trunc,
                                 input_grad, True), "rnn_forward")
        # d_b sums every delta(t) in floating point, so a NaN or infinite
        # delta makes d_b non-finite: delta itself is scanned only then.
        check_outputs_finite(
            "rnn_backward", r._h_tm.dtype, "Scale grad_h or the weights "
            "down, truncate the backward pass (truncate=k).",
            **({} if _scan.all_finite(d_b) else {"delta": delta}),
            weight_ih=d_w_ih, weight_hh=d_w_hh, bias=d_b, h0=d_h0, x=d_x)
    return RNNGradients(weight_ih=d_w_ih, weight_hh=d_w_hh, bias=d_b, h0=d_h0,
                        x=_layout(d_x, r.batch_first),
                        delta=_layout(delta, r.batch_first))


# ---------------------------------------------------------------------------
# The constant error carousel (CEC) and the LSTM layers (issue 3)
# ---------------------------------------------------------------------------

__all__ += ["CECForwardResult", "CECGradients", "cec_forward", "cec_backward",
            "LSTMForwardResult", "LSTMGradients", "lstm_forward",
            "lstm_backward"]

_LSTM_GATES = {True: ("i", "f", "g", "o"), False: ("i", "g", "o")}


@dataclass(frozen=True, eq=False)
class CECForwardResult:
    """What :func:`cec_forward` computed and what :func:`cec_backward` needs.

    Attributes
    ----------
    h : ndarray of shape (batch, T, H)
        The carousel's states s(t) for every step.
    x : ndarray of shape (batch, T, I)
        The input, in the working dtype.
    weight_ih : ndarray of shape (H, I)
    bias : ndarray of shape (H,)
    h0 : ndarray of shape (batch, H)
        The initial state s(-1) (zeros when none was given).
    batch_first : bool
        The layout of the per-step arrays: (batch, T, .) when True,
        time-major (T, batch, .) when False (as passed to the forward pass).
    """

    h: np.ndarray
    x: np.ndarray
    weight_ih: np.ndarray
    bias: np.ndarray
    h0: np.ndarray
    _x_tm: np.ndarray = field(repr=False)
    _h_tm: np.ndarray = field(repr=False)
    batch_first: bool = True

    __post_init__ = _made_by_forward_only

    @property
    def h_last(self):
        """The final state s(T-1), shape (batch, H)."""
        return self._h_tm[-1]


CECGradients = namedtuple(
    "CECGradients", ["weight_ih", "bias", "h0", "x", "delta"])
CECGradients.__doc__ = """Gradients of the loss returned by :func:`cec_backward`.

Attributes
----------
weight_ih : ndarray of shape (H, I)
bias : ndarray of shape (H,)
h0 : ndarray of shape (batch, H)
    Gradient with respect to the initial state (at the zero state when
    ``h0`` was None); equal to ``delta[:, 0]``.
x : ndarray of shape (batch, T, I), or None
    dL/dx; None when ``input_grad=False``.
delta : ndarray of shape (batch, T, H)
    The error signals dL/ds(t).
"""


@dataclass(frozen=True, eq=False)
class LSTMForwardResult:
    """What :func:`lstm_forward` computed and what :func:`lstm_backward` needs.

    Attributes
    ----------
    h : ndarray of shape (batch, T, H)
        Outputs h(t) = o(t) * tanh(c(t)) for every step.
    c : ndarray of shape (batch, T, H), or None
        Cell states c(t) for every step (None after ``cache=False``).
    gates : ndarray of shape (batch, T, G*H), or None
        The activated gates of every step, stacked in PyTorch's order:
        i, f, g, o (``G = 4``) or, without a forget gate, i, g, o (``G = 3``)
        (None after ``cache=False``).
    x : ndarray of shape (batch, T, I)
        The input, in the working dtype.
    weight_ih : ndarray of shape (G*H, I)
    weight_hh : ndarray of shape (G*H, H)
    bias : ndarray of shape (G*H,)
    h0 : ndarray of shape (batch, H)
        The initial output (zeros when none was given).
    c0 : ndarray of shape (batch, H)
        The initial cell state (zeros when none was given).
    forget_gate : bool
        True for the forget-gate form, False for the 1997 form.
    batch_first : bool
        The layout of the per-step arrays: (batch, T, .) when True,
        time-major (T, batch, .) when False (as passed to the forward pass).
    """

    h: np.ndarray
    c: np.ndarray
    gates: np.ndarray
    x: np.ndarray
    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias: np.ndarray
    h0: np.ndarray
    c0: np.ndarray
    forget_gate: bool
    _x_tm: np.ndarray = field(repr=False)
    _h_tm: np.ndarray = field(repr=False)
    _c_tm: np.ndarray = field(repr=False)
    _gates_tm: np.ndarray = field(repr=False)
    batch_first: bool = True

    __post_init__ = _made_by_forward_only

    @property
    def h_last(self):
        """The final output h(T-1), shape (batch, H)."""
        return self._h_tm[-1]

    @property
    def c_last(self):
        """The final cell state c(T-1), shape (batch, H)."""
        return self._c_tm[-1]


#: The field names of the forward results :func:`_result` builds.
_FIELDS = {cls: {f.name for f in fields(cls)}
           for cls in (RNNForwardResult, CECForwardResult,
                       LSTMForwardResult)}

LSTMGradients = namedtuple(
    "LSTMGradients",
    ["weight_ih", "weight_hh", "bias", "h0", "c0", "x", "delta", "delta_c"])
LSTMGradients.__doc__ = """Gradients of the loss returned by :func:`lstm_backward`.

Attributes
----------
weight_ih : ndarray of shape (G*H, I)
weight_hh : ndarray of shape (G*H, H)
bias : ndarray of shape (G*H,)
h0 : ndarray of shape (batch, H)
c0 : ndarray of shape (batch, H)
    Gradients with respect to the initial states (at the zero state when
    they were None).
x : ndarray of shape (batch, T, I), or None
    dL/dx; None when ``input_grad=False``.
delta : ndarray of shape (batch, T, G*H)
    The error signals dL/dz(t) of the gate pre-activations, in the gates'
    order.
delta_c : ndarray of shape (batch, T, H)
    dL/dc(t): the error the carousel carries back in time.
"""


def _check_result(forward_result, cls, producer):
    """``forward_result`` must be the ``cls`` instance ``producer`` returned."""
    if not isinstance(forward_result, cls):
        raise TypeError("forward_result has type "
                        f"{type(forward_result).__name__}; expected the "
                        f"{cls.__name__} returned by {producer}")
    return forward_result


def _check_forget_gate(forget_gate):
    if not isinstance(forget_gate, (bool, np.bool_)):
        raise TypeError(f"forget_gate={forget_gate!r} has type "
                        f"{type(forget_gate).__name__}; expected True or False")
    return bool(forget_gate)


def _check_gate_rows(weight_ih, forget_gate):
    """``weight_ih`` as a 2-D array of shape (G*H, I); returns it and H."""
    return _check_stacked_rows(weight_ih, _LSTM_GATES[forget_gate],
                               f" (forget_gate={forget_gate})")


def _check_stacked_rows(weight_ih, gates, note=""):
    """``weight_ih`` as a 2-D array of the ``gates``' stacked rows, shape
    (G*H, I); returns it and H."""
    G = len(gates)
    w = as_array("weight_ih", weight_ih, 2)
    if w.shape[0] < G or w.shape[0] % G != 0 or w.shape[1] < 1:
        raise ValueError(
            f"weight_ih has shape {w.shape}; expected ({G}*H, I) with H >= 1 "
            f"and I >= 1: the {G} gates {', '.join(gates)} stacked{note}")
    check_index_limit("weight_ih", w.shape[0], "G*H (its number of rows)")
    return w, w.shape[0] // G


def cec_forward(x, weight_ih, bias, h0=None, batch_first=True):
    """Forward pass of a layer of constant error carousels (CEC).

    Each unit is linear with a self-connection fixed at 1.0 and no other
    recurrent weights; for t = 0..T-1::

        s(t) = s(t-1) + weight_ih @ x(t) + bias,   s(-1) = h0

    in compiled code with the GIL released.

    Parameters
    ----------
    x : array-like of shape (batch, T, I), or (T, batch, I)
        Input sequences (the second form with ``batch_first=False``).
    weight_ih : array-like of shape (H, I)
        Input-to-carousel weights.
    bias : array-like of shape (H,)
        Bias added at every step.
    h0 : array-like of shape (batch, H), default=None
        Initial state s(-1); zeros when None.
    batch_first : bool, default=True
        The layout of ``x`` and of every per-step array returned (and of the
        ``grad_h`` the backward pass takes): (batch, T, .) when True,
        time-major (T, batch, .) when False, like PyTorch's ``nn.RNN``. The
        kernels run time-major, so time-major arrays skip a transposing copy
        at each call.

    Returns
    -------
    result : CECForwardResult
        ``result.h`` holds s(t) with shape (batch, T, H); the rest is what
        :func:`cec_backward` needs.

    Raises
    ------
    ValueError
        On a wrong number of dimensions, mismatched sizes, empty arrays or
        non-finite values; and when the states overflow the working dtype.
    TypeError
        On a non-numeric, boolean or complex dtype.

    See Also
    --------
    cec_backward : the exact gradient of this pass.
    lstm_forward : the carousel with gates around it.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt import cec_forward
    >>> x = np.ones((1, 4, 1))
    >>> cec_forward(x, np.ones((1, 1)), np.zeros(1)).h[0, :, 0]
    array([1., 2., 3., 4.])
    """
    out = None
    if type(batch_first) is bool:
        out = _lstm.cec_forward_call(x, weight_ih, bias, h0, batch_first)
    if out is None:             # raise the precise error, or convert
        batch_first = _check_layout(batch_first)
        x = _check_input(x, batch_first)
        weight_ih = _check_hidden_size(weight_ih)
        B, T, I = _sizes(x, batch_first)
        H = weight_ih.shape[0]
        check_kernel_sizes("weight_ih", T, B, I, H, H)
        weight_ih = _check_weight("weight_ih", weight_ih, (H, I))
        bias = _check_weight("bias", bias, (H,))
        h0 = _check_state("h0", h0, B, H)
        dtype = working_dtype(x, weight_ih, bias, h0)
        out = _accepted(_lstm.cec_forward_call(
            to_kernel(x, dtype), to_kernel(weight_ih, dtype),
            to_kernel(bias, dtype),
            None if h0 is None else to_kernel(h0, dtype), batch_first),
            "cec_forward")
    x_tm, w_ih, b, h0k, h_tm = out
    return _result(
        CECForwardResult, h=_layout(h_tm, batch_first),
        x=_layout(x_tm, batch_first), weight_ih=w_ih, bias=b, h0=h0k,
        _x_tm=x_tm, _h_tm=h_tm, batch_first=batch_first)


def cec_backward(forward_result, grad_h, truncate=None, input_grad=True):
    """Backpropagation through time for a CEC layer: every exact gradient.

    The carousel's self-weight is 1 and its activation the identity, so the
    error signal is carried back unchanged::

        delta(t) = grad_h(t) + delta(t+1)

    With the loss at the last step only, ``delta`` is the same at every step:
    the error neither vanishes nor explodes.

    Parameters
    ----------
    forward_result : CECForwardResult
        What :func:`cec_forward` returned.
    grad_h : array-like of shape (batch, T, H)
        dL/ds(t) for every step (zero where the loss does not look).
    truncate : int or None, default=None
        None for full BPTT. A positive k cuts the time axis into windows
        [0, k), [k, 2k), ...; error flows backward within a window and never
        across a boundary (PyTorch's ``s = s.detach()`` every k steps).
    input_grad : bool, default=True
        Whether to compute dL/dx (the ``x`` field). False skips that
        product, as PyTorch does for an input without ``requires_grad``:
        the first layer's input is data. ``x`` is then None.

    Returns
    -------
    grads : CECGradients
        Named tuple ``(weight_ih, bias, h0, x, delta)``.

    Raises
    ------
    ValueError
        If ``grad_h``'s shape differs from ``forward_result.h``'s, it holds
        non-finite values, or ``truncate`` is not a positive int; and when a
        gradient overflows the working dtype.
    TypeError
        If ``forward_result`` is not a :class:`CECForwardResult`.

    See Also
    --------
    cec_forward : the pass this differentiates.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt import cec_forward, cec_backward
    >>> rng = np.random.default_rng(0)
    >>> res = cec_forward(rng.standard_normal((2, 6, 3)),
    ...                   rng.standard_normal((4, 3)), np.zeros(4))
    >>> g = np.zeros_like(res.h); g[:, -1] = 1.0     # loss = sum of s(T-1)
    >>> d = cec_backward(res, g).delta
    >>> bool(np.all(d == d[:, -1:]))                 # the same at every step
    True
    """
    r = _check_result(forward_result, CECForwardResult, "cec_forward")
    trunc = check_truncate(truncate)
    out = None
    if type(input_grad) is bool:
        out = _lstm.cec_backward_call(r._x_tm, r.weight_ih, r._h_tm, grad_h,
                                      r.batch_first, trunc, input_grad, False)
    if out is not None:
        delta, d_w_ih, d_b, d_h0, d_x = out
    else:                       # raise the precise error, or convert
        dtype = r._h_tm.dtype
        g_tm = _check_grad("grad_h", grad_h, *r._h_tm.shape, dtype,
                           r.batch_first)
        input_grad = _check_flag("input_grad", input_grad)
        delta, d_w_ih, d_b, d_h0, d_x = _result_accepted(
            _lstm.cec_backward_call(r._x_tm, r.weight_ih, r._h_tm, g_tm,
                                    False, trunc, input_grad, True),
            "cec_forward")
        check_outputs_finite(
            "cec_backward", dtype, "Scale grad_h down or truncate the "
            "backward pass (truncate=k).", delta=delta, weight_ih=d_w_ih,
            bias=d_b, h0=d_h0, x=d_x)
    return CECGradients(weight_ih=d_w_ih, bias=d_b, h0=d_h0,
                        x=_layout(d_x, r.batch_first),
                        delta=_layout(delta, r.batch_first))


def lstm_forward(x, weight_ih, weight_hh, bias, h0=None, c0=None,
                 forget_gate=True, batch_first=True, cache=True):
    """Forward pass of an LSTM layer over a whole sequence.

    With ``sigma`` the logistic function and gates stacked in PyTorch's
    order (i, f, g, o; or i, g, o without a forget gate), for t = 0..T-1::

        z(t) = weight_ih @ x(t) + weight_hh @ h(t-1) + bias
        i, f, o = sigma(z_i), sigma(z_f), sigma(z_o);   g = tanh(z_g)
        c(t) = f * c(t-1) + i * g        (forget-gate form, Gers et al. 2000)
        c(t) = c(t-1) + i * g            (1997 form: the gated CEC)
        h(t) = o * tanh(c(t))

    in compiled code with the GIL released. The forget-gate form is
    PyTorch's ``nn.LSTM`` cell.

    Parameters
    ----------
    x : array-like of shape (batch, T, I), or (T, batch, I)
        Input sequences (the second form with ``batch_first=False``).
    weight_ih : array-like of shape (G*H, I)
        Input weights of the G gates, stacked (``weight_ih_l0``); G = 4 with
        a forget gate, 3 without.
    weight_hh : array-like of shape (G*H, H)
        Recurrent weights of the gates, stacked (``weight_hh_l0``).
    bias : array-like of shape (G*H,)
        Gate biases (PyTorch's ``bias_ih_l0 + bias_hh_l0``).
    h0 : array-like of shape (batch, H), default=None
        Initial output h(-1); zeros when None.
    c0 : array-like of shape (batch, H), default=None
        Initial cell state c(-1); zeros when None.
    forget_gate : bool, default=True
        True for the forget-gate form (gates i, f, g, o); False for the
        1997 form of Hochreiter & Schmidhuber (gates i, g, o).
    batch_first : bool, default=True
        The layout of ``x`` and of every per-step array returned (and of the
        ``grad_h`` the backward pass takes): (batch, T, .) when True,
        time-major (T, batch, .) when False, like PyTorch's ``nn.RNN``. The
        kernels run time-major, so time-major arrays skip a transposing copy
        at each call.
    cache : bool, default=True
        Keep every step's gates and cell state, which :func:`lstm_backward`
        needs. False for a forward pass that will not be differentiated
        (inference, what ``torch.no_grad()`` does): the kernel then writes
        the gates and c of each step over the previous ones, so nothing of
        size T is stored but ``h`` (T*batch*(G+1)*H elements less, and
        faster at large H); ``result.c`` and ``result.gates`` are None,
        ``result.c_last`` is kept, and :func:`lstm_backward` refuses the
        result. ``h`` is bitwise the same either way.

    Returns
    -------
    result : LSTMForwardResult
        ``result.h`` and ``result.c`` of shape (batch, T, H), the activated
        ``result.gates`` of shape (batch, T, G*H); the rest is what
        :func:`lstm_backward` needs.

    Raises
    ------
    ValueError
        On a wrong number of dimensions, mismatched sizes (``weight_ih``'s
        rows must be a multiple of G), empty arrays or non-finite values;
        and when the inputs and weights are so large that the gate
        pre-activations could overflow the working dtype.
    TypeError
        On a non-numeric, boolean or complex dtype, or a non-bool
        ``forget_gate``.

    See Also
    --------
    lstm_backward : the exact gradient of this pass (BPTT).
    cec_forward : the carousel without gates.

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long short-term memory",
       Neural Computation 9(8), 1997.
    .. [2] F. A. Gers, J. Schmidhuber and F. Cummins, "Learning to forget:
       continual prediction with LSTM", Neural Computation 12(10), 2000.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt import lstm_forward
    >>> rng = np.random.default_rng(0)
    >>> B, T, I, H = 2, 5, 3, 4
    >>> x = rng.standard_normal((B, T, I))
    >>> res = lstm_forward(x, rng.standard_normal((4 * H, I)) * 0.3,
    ...                    rng.standard_normal((4 * H, H)) * 0.3, np.zeros(4 * H))
    >>> res.h.shape, res.c.shape, res.gates.shape
    ((2, 5, 4), (2, 5, 4), (2, 5, 16))
    >>> res97 = lstm_forward(x, np.ones((3 * H, I)), np.zeros((3 * H, H)),
    ...                      np.zeros(3 * H), forget_gate=False)
    >>> res97.gates.shape
    (2, 5, 12)
    >>> inference = lstm_forward(x, rng.standard_normal((4 * H, I)) * 0.3,
    ...                          rng.standard_normal((4 * H, H)) * 0.3,
    ...                          np.zeros(4 * H), cache=False)
    >>> inference.h.shape, inference.c_last.shape, inference.gates is None
    ((2, 5, 4), (2, 4), True)
    """
    forget_gate = _check_forget_gate(forget_gate)
    cache = _check_flag("cache", cache)
    out = None
    if type(batch_first) is bool:
        out = _lstm.forward_call(x, weight_ih, weight_hh, bias, h0, c0,
                                 batch_first, forget_gate, cache)
    if out is None:             # raise the precise error, or convert
        args = _checked_inputs(x, weight_ih, weight_hh, bias, h0, c0,
                               batch_first, forget_gate)
        out = _accepted(_lstm.forward_call(*args, forget_gate, cache),
                        "lstm_forward")
        batch_first = args[-1]
    x_tm, w_ih, w_hh, b, h0k, c0k, gates_tm, c_tm, h_tm = out
    return _result(
        LSTMForwardResult, h=_layout(h_tm, batch_first),
        c=_layout(c_tm, batch_first) if cache else None,
        gates=_layout(gates_tm, batch_first) if cache else None,
        x=_layout(x_tm, batch_first), weight_ih=w_ih,
        weight_hh=w_hh, bias=b, h0=h0k, c0=c0k, forget_gate=forget_gate,
        _x_tm=x_tm, _h_tm=h_tm, _c_tm=c_tm, _gates_tm=gates_tm,
        batch_first=batch_first)


def lstm_backward(forward_result, grad_h, grad_c=None, truncate=None,
                  input_grad=True):
    """Backpropagation through time for an LSTM layer: every exact gradient.

    With ``grad_h(t) = dL/dh(t)`` and ``grad_c(t)`` the loss's own
    derivatives at step t, and ``delta(t) = dL/dz(t)``::

        dh(t)      = grad_h(t) + weight_hh.T @ delta(t+1)
        delta_c(t) = dh(t) * o * (1 - tanh(c(t))**2) + grad_c(t)
                     + f(t+1) * delta_c(t+1)
        delta_i = delta_c * g * i * (1 - i)
        delta_f = delta_c * c(t-1) * f * (1 - f)
        delta_g = delta_c * i * (1 - g**2)
        delta_o = dh * tanh(c(t)) * o * (1 - o)

    (``f = 1`` in the 1997 form: the carousel carries ``delta_c`` back
    unchanged.) The shared weights' gradients are sums over the unrolled
    copies, e.g. ``dL/dweight_hh = sum_t delta(t) h(t-1)^T``.

    Parameters
    ----------
    forward_result : LSTMForwardResult
        What :func:`lstm_forward` returned.
    grad_h : array-like of shape (batch, T, H)
        dL/dh(t) for every step (zero where the loss does not look).
    grad_c : array-like of shape (batch, T, H), default=None
        dL/dc(t) from the loss itself, when it looks at the cell states;
        None means zero.
    truncate : int or None, default=None
        None for full BPTT. A positive k cuts the time axis into windows
        [0, k), [k, 2k), ...; error flows backward within a window and never
        across a boundary, through neither h nor c (PyTorch's
        ``h, c = h.detach(), c.detach()`` every k steps). The states still
        flow forward across windows. k >= T is full BPTT.
    input_grad : bool, default=True
        Whether to compute dL/dx (the ``x`` field). False skips that
        product, as PyTorch does for an input without ``requires_grad``:
        the first layer's input is data. ``x`` is then None.

    Returns
    -------
    grads : LSTMGradients
        Named tuple ``(weight_ih, weight_hh, bias, h0, c0, x, delta,
        delta_c)``: the gradient of the loss with respect to each input of
        the forward pass, the gate error signals ``delta = dL/dz`` of shape
        (batch, T, G*H) and the cell errors ``delta_c = dL/dc`` of shape
        (batch, T, H).

    Raises
    ------
    ValueError
        If ``grad_h``'s or ``grad_c``'s shape differs from
        ``forward_result.h``'s, they hold non-finite values, or ``truncate``
        is not a positive int; and when a gradient overflows the working
        dtype.
    TypeError
        If ``forward_result`` is not an :class:`LSTMForwardResult`.

    See Also
    --------
    lstm_forward : the pass this differentiates.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt import lstm_forward, lstm_backward
    >>> rng = np.random.default_rng(0)
    >>> B, T, I, H = 2, 6, 3, 4
    >>> res = lstm_forward(rng.standard_normal((B, T, I)),
    ...                    rng.standard_normal((4 * H, I)) * 0.3,
    ...                    rng.standard_normal((4 * H, H)) * 0.3, np.zeros(4 * H))
    >>> g = np.zeros_like(res.h); g[:, -1] = 1.0     # loss = sum of h(T-1)
    >>> grads = lstm_backward(res, g, truncate=3)
    >>> grads.weight_hh.shape, grads.delta.shape, grads.delta_c.shape
    ((16, 4), (2, 6, 16), (2, 6, 4))
    """
    r = _check_result(forward_result, LSTMForwardResult, "lstm_forward")
    if r.gates is None:
        raise ValueError("forward_result was computed with cache=False, "
                         "which keeps no gates or cell states to "
                         "differentiate; run lstm_forward with cache=True "
                         "(the default) for a pass you will differentiate")
    trunc = check_truncate(truncate)
    out = None
    if type(input_grad) is bool:
        out = _lstm.backward_call(
            r._x_tm, r.weight_ih, r.weight_hh, r.h0, r.c0, r._gates_tm,
            r._c_tm, r._h_tm, grad_h, grad_c, r.batch_first, r.forget_gate,
            trunc, input_grad, False)
    if out is not None:
        delta, delta_c, d_w_ih, d_w_hh, d_b, d_h0, d_c0, d_x = out
        return LSTMGradients(weight_ih=d_w_ih, weight_hh=d_w_hh, bias=d_b,
                             h0=d_h0, c0=d_c0, x=_layout(d_x, r.batch_first),
                             delta=_layout(delta, r.batch_first),
                             delta_c=_layout(delta_c, r.batch_first))
    # raise the precise error, or convert
    T, B, H = r._h_tm.shape
    dtype = r._h_tm.dtype
    gh_tm = _check_grad("grad_h", grad_h, T, B, H, dtype, r.batch_first)
    gc_tm = None if grad_c is None else _check_grad(
        "grad_c", grad_c, T, B, H, dtype, r.batch_first)
    input_grad = _check_flag("input_grad", input_grad)
    out = _result_accepted(_lstm.backward_call(
        r._x_tm, r.weight_ih, r.weight_hh, r.h0, r.c0, r._gates_tm, r._c_tm,
        r._h_tm, gh_tm, gc_tm, False, r.forget_gate, trunc, input_grad,
        True), "lstm_forward")
    delta, delta_c, d_w_ih, d_w_hh, d_b, d_h0, d_c0, d_x = out
    # d_b sums every delta(t) in floating point, and each delta_c(t) is a
    # factor of delta_i(t) (a non-finite factor makes a non-finite product),
    # so a NaN or infinite delta or delta_c makes d_b non-finite: the two
    # large arrays are scanned only then.
    check_outputs_finite(
        "lstm_backward", dtype, "Scale grad_h (and grad_c) or the weights "
        "down, or truncate the backward pass (truncate=k).",
        **({} if _scan.all_finite(d_b) else {"delta": delta,
                                              "delta_c": delta_c}),
        weight_ih=d_w_ih, weight_hh=d_w_hh, bias=d_b, h0=d_h0, c0=d_c0,
        x=d_x)
    return LSTMGradients(weight_ih=d_w_ih, weight_hh=d_w_hh, bias=d_b,
                         h0=d_h0, c0=d_c0, x=_layout(d_x, r.batch_first),
                         delta=_layout(delta, r.batch_first),
                         delta_c=_layout(delta_c, r.batch_first))


# ---------------------------------------------------------------------------
# The GRU layer (PyTorch's torch.nn.GRU)
# ---------------------------------------------------------------------------

__all__ += ["GRUForwardResult", "GRUGradients", "gru_forward", "gru_backward"]

_GRU_GATES = ("r", "z", "n")


@dataclass(frozen=True, eq=False)
class GRUForwardResult:
    """What :func:`gru_forward` computed and what :func:`gru_backward` needs.

    Attributes
    ----------
    h : ndarray of shape (batch, T, H)
        Outputs h(t) = (1 - z) * n + z * h(t-1) for every step.
    gates : ndarray of shape (batch, T, 3*H), or None
        The activated gates of every step, stacked in PyTorch's order r, z,
        n (None after ``cache=False``).
    x : ndarray of shape (batch, T, I)
        The input, in the working dtype.
    weight_ih : ndarray of shape (3*H, I)
    weight_hh : ndarray of shape (3*H, H)
    bias_ih : ndarray of shape (3*H,)
    bias_hh : ndarray of shape (3*H,)
    h0 : ndarray of shape (batch, H)
        The initial state (zeros when none was given).
    batch_first : bool
        The layout of the per-step arrays: (batch, T, .) when True,
        time-major (T, batch, .) when False (as passed to the forward pass).
    """

    h: np.ndarray
    gates: np.ndarray
    x: np.ndarray
    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray
    bias_hh: np.ndarray
    h0: np.ndarray
    _x_tm: np.ndarray = field(repr=False)
    _h_tm: np.ndarray = field(repr=False)
    _gates_tm: np.ndarray = field(repr=False)
    _hn_tm: np.ndarray = field(repr=False)     # W_hn h(t-1) + b_hn
    batch_first: bool = True

    __post_init__ = _made_by_forward_only

    @property
    def h_last(self):
        """The final state h(T-1), shape (batch, H)."""
        return self._h_tm[-1]


_FIELDS[GRUForwardResult] = {f.name for f in fields(GRUForwardResult)}

GRUGradients = namedtuple(
    "GRUGradients",
    ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "h0", "x", "delta"])
GRUGradients.__doc__ = """Gradients of the loss returned by :func:`gru_backward`.

Fields
------
weight_ih : ndarray of shape (3*H, I)
weight_hh : ndarray of shape (3*H, H)
bias_ih : ndarray of shape (3*H,)
bias_hh : ndarray of shape (3*H,)
h0 : ndarray of shape (batch, H)
    Gradient with respect to the initial state (at the zero state when
    ``h0`` was None).
x : ndarray of shape (batch, T, I), or None
    dL/dx; None when ``input_grad=False``.
delta : ndarray of shape (batch, T, 3*H)
    The error signals of the input side's pre-activations, dL/d(weight_ih
    @ x(t) + bias_ih), in the gates' order r, z, n. The recurrent side's
    equal them in the r and z rows and are ``r * delta_n`` in the n rows.
"""


def gru_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, h0=None,
                batch_first=True, cache=True):
    """Forward pass of a GRU layer over a whole sequence (PyTorch's ``nn.GRU``).

    With ``sigma`` the logistic function and gates stacked in PyTorch's
    order r, z, n, for t = 0..T-1::

        r = sigma(W_ir x(t) + b_ir + W_hr h(t-1) + b_hr)
        z = sigma(W_iz x(t) + b_iz + W_hz h(t-1) + b_hz)
        n = tanh(W_in x(t) + b_in + r * (W_hn h(t-1) + b_hn))
        h(t) = (1 - z) * n + z * h(t-1)

    in compiled code with the GIL released. ``b_hn`` stays inside ``r *
    (...)``, so the two biases are kept apart, as in ``torch.nn.GRU``.

    Parameters
    ----------
    x : array-like of shape (batch, T, I), or (T, batch, I)
        Input sequences (the second form with ``batch_first=False``).
    weight_ih : array-like of shape (3*H, I)
        Input weights of the gates r, z, n, stacked (``weight_ih_l0``).
    weight_hh : array-like of shape (3*H, H)
        Recurrent weights of the gates, stacked (``weight_hh_l0``).
    bias_ih : array-like of shape (3*H,)
        Input-side biases (``bias_ih_l0``).
    bias_hh : array-like of shape (3*H,)
        Recurrent-side biases (``bias_hh_l0``).
    h0 : array-like of shape (batch, H), default=None
        Initial state h(-1); zeros when None.
    batch_first : bool, default=True
        The layout of ``x`` and of every per-step array returned (and of the
        ``grad_h`` the backward pass takes): (batch, T, .) when True,
        time-major (T, batch, .) when False, like PyTorch's ``nn.GRU``.
    cache : bool, default=True
        Keep every step's gates and ``W_hn h(t-1) + b_hn``, which
        :func:`gru_backward` needs. False for a forward pass that will not
        be differentiated (inference, what ``torch.no_grad()`` does): the
        kernel then writes each step's gates over the previous ones, so
        nothing of size T is stored but ``h`` (T*batch*4*H elements less);
        ``result.gates`` is None, ``result.h_last`` is kept, and
        :func:`gru_backward` refuses the result. ``h`` is bitwise the same
        either way.

    Returns
    -------
    result : GRUForwardResult
        ``result.h`` of shape (batch, T, H) and the activated
        ``result.gates`` of shape (batch, T, 3*H) (None after
        ``cache=False``); the rest is what :func:`gru_backward` needs. Its
        arrays are read-only private copies.

    Raises
    ------
    ValueError
        On a wrong number of dimensions, mismatched sizes (``weight_ih``'s
        rows must be a multiple of 3), empty arrays or non-finite values;
        and when the inputs and weights are so large that the gate
        pre-activations could overflow the working dtype.
    TypeError
        On a non-numeric, boolean or complex dtype, or a non-bool ``cache``.

    See Also
    --------
    gru_backward : the exact gradient of this pass (BPTT).
    lstm_forward : the LSTM layer.

    References
    ----------
    .. [1] K. Cho et al., "Learning phrase representations using RNN
       encoder-decoder for statistical machine translation", EMNLP 2014.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt import gru_forward
    >>> rng = np.random.default_rng(0)
    >>> B, T, I, H = 2, 5, 3, 4
    >>> res = gru_forward(rng.standard_normal((B, T, I)),
    ...                   rng.standard_normal((3 * H, I)) * 0.3,
    ...                   rng.standard_normal((3 * H, H)) * 0.3,
    ...                   np.zeros(3 * H), np.zeros(3 * H))
    >>> res.h.shape, res.gates.shape
    ((2, 5, 4), (2, 5, 12))
    >>> inference = gru_forward(rng.standard_normal((B, T, I)),
    ...                         rng.standard_normal((3 * H, I)) * 0.3,
    ...                         rng.standard_normal((3 * H, H)) * 0.3,
    ...                         np.zeros(3 * H), np.zeros(3 * H), cache=False)
    >>> inference.h.shape, inference.h_last.shape, inference.gates is None
    ((2, 5, 4), (2, 4), True)
    """
    cache = _check_flag("cache", cache)
    out = None
    if type(batch_first) is bool:
        out = _lstm.gru_forward_call(x, weight_ih, weight_hh, bias_ih,
                                     bias_hh, h0, batch_first, cache)
    if out is None:             # raise the precise error, or convert
        args = _checked_inputs(x, weight_ih, weight_hh, bias_ih, h0, None,
                               batch_first, gates=_GRU_GATES,
                               bias_hh=bias_hh)
        out = _accepted(_lstm.gru_forward_call(*args[:5], args[5],
                                               args[7], cache),
                        "gru_forward")
        batch_first = args[-1]
    x_tm, w_ih, w_hh, b_ih, b_hh, h0k, gates_tm, hn_tm, h_tm = out
    return _result(
        GRUForwardResult, h=_layout(h_tm, batch_first),
        gates=_layout(gates_tm, batch_first), x=_layout(x_tm, batch_first),
        weight_ih=w_ih, weight_hh=w_hh, bias_ih=b_ih, bias_hh=b_hh, h0=h0k,
        _x_tm=x_tm, _h_tm=h_tm, _gates_tm=gates_tm, _hn_tm=hn_tm,
        batch_first=batch_first)


def gru_backward(forward_result, grad_h, truncate=None, input_grad=True):
    """Backpropagation through time for a GRU layer: every exact gradient.

    With ``grad_h(t) = dL/dh(t)`` the loss's own derivative at step t,
    ``hn = W_hn h(t-1) + b_hn`` and ``dh(t)`` the whole dL/dh(t)::

        dh(t)   = grad_h(t) + z(t+1) * dh(t+1) + weight_hh.T @ delta_hh(t+1)
        delta_n = dh * (1 - z) * (1 - n**2)
        delta_z = dh * (h(t-1) - n) * z * (1 - z)
        delta_r = delta_n * hn * r * (1 - r)
        delta    = [delta_r, delta_z, delta_n]          (input side)
        delta_hh = [delta_r, delta_z, r * delta_n]      (recurrent side)

    and the weights' gradients are sums over the unrolled copies:
    ``dL/dweight_ih = sum_t delta(t) x(t)^T``, ``dL/dbias_ih = sum_t
    delta(t)``, ``dL/dweight_hh = sum_t delta_hh(t) h(t-1)^T``,
    ``dL/dbias_hh = sum_t delta_hh(t)``.

    Parameters
    ----------
    forward_result : GRUForwardResult
        What :func:`gru_forward` returned.
    grad_h : array-like of shape (batch, T, H)
        dL/dh(t) for every step (zero where the loss does not look).
    truncate : int or None, default=None
        None for full BPTT. A positive k cuts the time axis into windows
        [0, k), [k, 2k), ...; error flows backward within a window and never
        across a boundary, neither through ``weight_hh`` nor through the
        direct path ``z * h(t-1)`` (PyTorch's ``h = h.detach()`` every k
        steps). The state still flows forward across windows. k >= T is
        full BPTT.
    input_grad : bool, default=True
        Whether to compute dL/dx (the ``x`` field). False skips that
        product; ``x`` is then None.

    Returns
    -------
    grads : GRUGradients
        Named tuple ``(weight_ih, weight_hh, bias_ih, bias_hh, h0, x,
        delta)``: the gradient of the loss with respect to each input of
        the forward pass and the input side's error signals ``delta`` of
        shape (batch, T, 3*H).

    Raises
    ------
    ValueError
        If ``grad_h``'s shape differs from ``forward_result.h``'s, it holds
        non-finite values, or ``truncate`` is not a positive int; when the
        forward pass ran with ``cache=False``; and when a gradient overflows
        the working dtype.
    TypeError
        If ``forward_result`` is not a :class:`GRUForwardResult`.

    See Also
    --------
    gru_forward : the pass this differentiates.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt import gru_forward, gru_backward
    >>> rng = np.random.default_rng(0)
    >>> B, T, I, H = 2, 6, 3, 4
    >>> res = gru_forward(rng.standard_normal((B, T, I)),
    ...                   rng.standard_normal((3 * H, I)) * 0.3,
    ...                   rng.standard_normal((3 * H, H)) * 0.3,
    ...                   np.zeros(3 * H), np.zeros(3 * H))
    >>> g = np.zeros_like(res.h); g[:, -1] = 1.0     # loss = sum of h(T-1)
    >>> grads = gru_backward(res, g, truncate=3)
    >>> grads.weight_hh.shape, grads.bias_hh.shape, grads.delta.shape
    ((12, 4), (12,), (2, 6, 12))
    """
    r = _check_result(forward_result, GRUForwardResult, "gru_forward")
    if r.gates is None:
        raise ValueError("forward_result was computed with cache=False, "
                         "which keeps no gates to differentiate; run "
                         "gru_forward with cache=True (the default) for a "
                         "pass you will differentiate")
    trunc = check_truncate(truncate)
    out = None
    if type(input_grad) is bool:
        out = _lstm.gru_backward_call(
            r._x_tm, r.weight_ih, r.weight_hh, r.h0, r._gates_tm, r._hn_tm,
            r._h_tm, grad_h, r.batch_first, trunc, input_grad, False)
    if out is None:             # raise the precise error, or convert
        g_tm = _check_grad("grad_h", grad_h, *r._h_tm.shape, r._h_tm.dtype,
                           r.batch_first)
        input_grad = _check_flag("input_grad", input_grad)
        out = _result_accepted(_lstm.gru_backward_call(
            r._x_tm, r.weight_ih, r.weight_hh, r.h0, r._gates_tm, r._hn_tm,
            r._h_tm, g_tm, False, trunc, input_grad, True), "gru_forward")
        delta, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_h0, d_x = out
        # d_b_ih sums every delta(t) in floating point, so a NaN or infinite
        # delta makes it non-finite: delta itself is scanned only then.
        check_outputs_finite(
            "gru_backward", r._h_tm.dtype, "Scale grad_h or the weights "
            "down, or truncate the backward pass (truncate=k).",
            **({} if _scan.all_finite(d_b_ih) else {"delta": delta}),
            weight_ih=d_w_ih, weight_hh=d_w_hh, bias_ih=d_b_ih,
            bias_hh=d_b_hh, h0=d_h0, x=d_x)
    delta, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_h0, d_x = out
    return GRUGradients(weight_ih=d_w_ih, weight_hh=d_w_hh, bias_ih=d_b_ih,
                        bias_hh=d_b_hh, h0=d_h0,
                        x=_layout(d_x, r.batch_first),
                        delta=_layout(delta, r.batch_first))
