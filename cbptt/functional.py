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
"""
from collections import namedtuple
from dataclasses import dataclass, field

import numpy as np

from cbptt import _elman
from cbptt._validation import (as_array, check_activation, check_finite,
                               check_nonempty, check_shape, check_truncate,
                               time_major, to_kernel, working_dtype)
from cbptt._validation import (check_index_limit, check_outputs_finite,
                               check_preactivation_range, colmax_abs, owned)

__all__ = ["RNNForwardResult", "RNNGradients", "rnn_forward", "rnn_backward"]


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

    @property
    def h_last(self):
        """The final hidden state h(T-1), shape (batch, H)."""
        return self.h[:, -1, :]


RNNGradients = namedtuple(
    "RNNGradients", ["weight_ih", "weight_hh", "bias", "h0", "x", "delta"])
RNNGradients.__doc__ = """Gradients of the loss returned by :func:`rnn_backward`.

Fields
------
weight_ih : ndarray of shape (H, I)
weight_hh : ndarray of shape (H, H)
bias : ndarray of shape (H,)
h0 : ndarray of shape (batch, H)
    Gradient with respect to the initial state (at the zero state when
    ``h0`` was None).
x : ndarray of shape (batch, T, I)
delta : ndarray of shape (batch, T, H)
    The error signals dL/dnet(t).
"""


def _check_input(x):
    x = as_array("x", x, 3)
    check_nonempty("x", x, ("batch", "T (time steps)", "features"))
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


def _check_grad(name, g, shape, dtype):
    g = as_array(name, g, len(shape))
    check_shape(name, g, shape)
    check_finite(name, g)
    return time_major(g, dtype)


def rnn_forward(x, weight_ih, weight_hh, bias, h0=None, activation="tanh"):
    """Forward pass of an Elman (simple recurrent) layer over a whole sequence.

    Computes, for t = 0..T-1::

        net(t) = weight_ih @ x(t) + weight_hh @ h(t-1) + bias
        h(t)   = f(net(t)),   h(-1) = h0

    in compiled code with the GIL released.

    Parameters
    ----------
    x : array-like of shape (batch, T, I)
        Input sequences, batch-first.
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
    x = _check_input(x)
    weight_ih = _check_hidden_size(weight_ih)
    B, T, I = x.shape
    H = weight_ih.shape[0]
    weight_ih = _check_weight("weight_ih", weight_ih, (H, I))
    weight_hh = _check_weight("weight_hh", weight_hh, (H, H))
    bias = _check_weight("bias", bias, (H,))
    h0 = _check_state("h0", h0, B, H)
    dtype = working_dtype(x, weight_ih, weight_hh, bias, h0)

    # The result keeps read-only private copies: the caller's arrays may
    # change (in-place updates) before rnn_backward reads them.
    x_tm = owned(time_major(x, dtype), dtype, x)
    w_ih = owned(weight_ih, dtype, weight_ih)
    w_hh = owned(weight_hh, dtype, weight_hh)
    b = owned(bias, dtype, bias)
    h0k = owned(np.zeros((B, H), dtype) if h0 is None else h0, dtype, h0)
    h_tm = np.empty((T, B, H), dtype)
    _elman.elman_forward(x_tm, w_ih, w_hh, b, h0k, act, h_tm)
    h_tm.flags.writeable = False
    # No overflow hidden by a saturating activation: bound |W x + W h + b|
    # with h ranging over the states that enter a step, h0 .. h(T-2).
    h_in = colmax_abs(h0k)
    if T > 1:
        h_in = np.maximum(h_in, colmax_abs(h_tm[:-1]))
    check_preactivation_range("rnn_forward", dtype, b,
                              (w_ih, colmax_abs(x_tm)), (w_hh, h_in))
    return RNNForwardResult(
        h=h_tm.swapaxes(0, 1), x=x_tm.swapaxes(0, 1), weight_ih=w_ih,
        weight_hh=w_hh, bias=b, h0=h0k, activation=activation,
        _x_tm=x_tm, _h_tm=h_tm)


def rnn_backward(forward_result, grad_h, truncate=None):
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
    T, B, H = r._h_tm.shape
    I = r._x_tm.shape[2]
    dtype = r._h_tm.dtype
    g_tm = _check_grad("grad_h", grad_h, (B, T, H), dtype)

    delta = np.empty((T, B, H), dtype)
    d_w_ih = np.empty((H, I), dtype)
    d_w_hh = np.empty((H, H), dtype)
    d_b = np.empty(H, dtype)
    d_h0 = np.empty((B, H), dtype)
    d_x = np.empty((T, B, I), dtype)
    carry = np.zeros((B, H), dtype)
    _elman.elman_backward(r._x_tm, r.weight_ih, r.weight_hh, r.h0, r._h_tm,
                          g_tm, check_activation(r.activation), trunc, delta,
                          d_w_ih, d_w_hh, d_b, d_h0, d_x, carry)
    check_outputs_finite(
        "rnn_backward", dtype, "Scale grad_h or the weights down, truncate "
        "the backward pass (truncate=k).",
        delta=delta, weight_ih=d_w_ih, weight_hh=d_w_hh, bias=d_b, h0=d_h0,
        x=d_x)
    return RNNGradients(weight_ih=d_w_ih, weight_hh=d_w_hh, bias=d_b, h0=d_h0,
                        x=d_x.swapaxes(0, 1), delta=delta.swapaxes(0, 1))
