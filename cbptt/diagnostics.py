"""See BPTT: the error signals delta(t) and the error flow by time lag.

Contract
--------
* Every number here comes from the compiled forward and backward passes of
  the public functional API (:func:`cbptt.rnn_backward` and, for the
  carousel and LSTM layers, ``cec_backward`` / ``lstm_backward``); this
  module only chooses what error to inject and summarises what comes back.
* A layer is described by its weights in PyTorch's names, the same dicts as
  an estimator's ``coefs_``: ``weight_ih``, ``weight_hh`` (not for a CEC)
  and ``bias``; ``cell`` is ``"elman"`` (with ``activation``), ``"cec"``,
  ``"lstm"`` (forget gate, gates i, f, g, o) or ``"lstm1997"`` (gates i, g,
  o, no forget gate).
* ``X`` is batch-first ``(n_samples, n_timesteps, n_features)``; sequences
  of different lengths come as a list of ``(T_i, n_features)`` arrays or
  trailing-NaN padded. Each sequence is run on its own length (sequences
  of equal length together), so padding never enters a computation.
* :func:`error_flow` works in float64 whatever the input dtype, so that
  ratios down to 1e-300 are exact; :func:`error_signals` keeps the working
  dtype of the functional API (float32 stays float32).
"""
from dataclasses import dataclass, field
import numbers

import numpy as np
from sklearn.utils import check_random_state

from cbptt._activations import get_activation
from cbptt._cells import CELLS as _REGISTRY
from cbptt._cells import get_cell, make_cell
from cbptt.datasets import _lengths

__all__ = ["CELLS", "ErrorFlow", "LayerSignals", "error_flow",
           "error_signals", "format_error_flow_table",
           "estimator_error_signals", "estimator_error_flow", "generate_text"]

CELLS = tuple(_REGISTRY)


# ---------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------

def _layer_cell(cell, activation):
    """The registry's adapter for a layer: the activation is checked only
    where the cell takes one."""
    if get_cell(cell).activations:
        get_activation(activation)
    return make_cell(cell, activation)


def _length_groups(X):
    """Split ``X`` into groups of equal length.

    Returns ``(groups, lengths, n_features)`` where ``groups`` is a list of
    ``(index, x)``: the samples' positions in ``X`` and their steps as one
    ``(len(index), L, n_features)`` array without padding.
    """
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X is an empty list; expected at least one "
                             "sequence")
        seqs = []
        for n, s in enumerate(X):
            s = np.asarray(s)
            if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
                raise ValueError(f"X[{n}] has shape {s.shape}; expected "
                                 "(n_timesteps, n_features) with both >= 1")
            seqs.append(s)
        n_features = seqs[0].shape[1]
        for n, s in enumerate(seqs):
            if s.shape[1] != n_features:
                raise ValueError(f"X[{n}] has {s.shape[1]} features; X[0] "
                                 f"has {n_features}")
        lengths = np.array([s.shape[0] for s in seqs])
    else:
        arr = np.asarray(X)
        if arr.ndim != 3:
            raise ValueError(f"X has {arr.ndim} dimension(s) with shape "
                             f"{arr.shape}; expected 3 (n_samples, "
                             "n_timesteps, n_features) or a list of 2-D "
                             "arrays")
        if min(arr.shape) < 1:
            raise ValueError(f"X has shape {arr.shape}; expected every "
                             "dimension >= 1")
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"X has dtype {arr.dtype}; expected a real "
                            "floating-point array")
        lengths = _lengths(arr) if arr.dtype.kind == "f" else np.full(
            len(arr), arr.shape[1])
        seqs = [arr[n, :lengths[n]] for n in range(len(arr))]
        n_features = arr.shape[2]
    for n, (s, length) in enumerate(zip(seqs, lengths)):
        if length < 1:
            raise ValueError(f"X[{n}] is all NaN; expected at least one step")
        if not np.isfinite(s[:length]).all():
            t = int(np.argmin(np.isfinite(s[:length]).all(axis=1)))
            raise ValueError(f"X[{n}] has a NaN or infinite value at step {t} "
                             f"before its end at step {length - 1}; only "
                             "trailing NaN padding is allowed")
    groups = []
    for length in np.unique(lengths):
        index = np.flatnonzero(lengths == length)
        groups.append((index, np.stack([seqs[n] for n in index])))
    return groups, lengths, n_features


def _layer_weights(weights, cell, layer=None):
    """The arrays a layer of the adapter ``cell`` needs, from a dict of
    PyTorch names."""
    where = "" if layer is None else f"layer {layer}: "
    if not hasattr(weights, "keys"):
        raise TypeError(f"{where}weights has type {type(weights).__name__}; "
                        "expected a dict with weight_ih, weight_hh and bias")
    names = cell.weight_names()
    missing = [k for k in names if k not in weights]
    if missing:
        raise ValueError(f"{where}weights lacks {missing} for "
                         f"cell={cell.name!r}; expected the keys {list(names)}")
    return {k: weights[k] for k in names}


def _hidden_size(cell, w):
    H = cell.hidden_size(np.shape(w["weight_ih"]))
    if H is None:
        raise ValueError(f"weight_ih has shape {np.shape(w['weight_ih'])}; "
                         f"expected ({cell.n_blocks()}*H, n_features) for "
                         f"cell={cell.name!r}")
    return H


def _directions(direction, n_samples, H, rng):
    """The injected error e_n for every sample, shape (n_samples, H)."""
    if isinstance(direction, str):
        if direction == "random":
            e = rng.standard_normal((n_samples, H))
            return e / np.linalg.norm(e, axis=1, keepdims=True)
        if direction == "ones":
            return np.full((n_samples, H), 1.0 / np.sqrt(H))
        raise ValueError(f"direction={direction!r} is not supported; expected "
                         "'random', 'ones' or an array of shape (H,) or "
                         "(n_samples, H)")
    e = np.asarray(direction, dtype=np.float64)
    if e.shape == (H,):
        e = np.broadcast_to(e, (n_samples, H))
    if e.shape != (n_samples, H):
        raise ValueError(f"direction has shape {e.shape}; expected ({H},) or "
                         f"({n_samples}, {H})")
    if not np.isfinite(e).all() or not (np.abs(e).sum(axis=1) > 0).all():
        raise ValueError("direction must be finite and nonzero for every "
                         "sample")
    return e


# ---------------------------------------------------------------------------
# Error flow
# ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False, repr=False)
class ErrorFlow:
    """How the error injected at the last step reaches earlier steps.

    Lags are counted back from each sequence's last step T: lag q is step
    T - q. Arrays indexed by lag have length ``n_lags`` (the longest
    sequence's length); an entry is NaN where no sequence is that long.

    Attributes
    ----------
    cell : str
        The layer's cell.
    activation : str or None
        The Elman activation (None for other cells).
    signal : str
        What ``ratio`` measures: ``"delta"`` (dL/dnet(t) of an Elman layer,
        dL/ds(t) of a CEC) or ``"delta_c"`` (dL/dc(t), the error in an
        LSTM's carousel).
    ratio : ndarray of shape (n_lags,)
        ``ratio[q]`` = mean over samples of ||delta(T-q)|| / ||delta(T)||;
        ``ratio[0] = 1``.
    sample_ratio : ndarray of shape (n_samples, n_lags)
        The same ratio for every sample (NaN beyond its length).
    ratio_gates : ndarray of shape (n_lags,) or None
        LSTM only: the ratio of the gate error signals dL/dz(t) (all gates
        stacked).
    threshold : float
        The level that defines ``horizon``.
    horizon : int
        The memory horizon: the largest lag q with ``ratio[q] > threshold``
        (0 when none). Equal to ``n_lags - 1`` means the error reaches the
        first step above the threshold.
    weight_hh_norm : float or None
        Elman only: the spectral norm ||W_hh||_2.
    bound_per_step : float or None
        Elman only: ``sup|f'| * ||W_hh||_2`` (0.25 ||W_hh|| for the
        logistic, ||W_hh|| for tanh).
    bound : ndarray of shape (n_lags,) or None
        Elman only: the theory's bound ``bound_per_step ** q``; every
        sample's ratio lies below it.
    step_factor : ndarray of shape (n_lags,) or None
        Elman only: the mean over samples of ||diag(f'(net(T-q))) W_hh^T||_2,
        the factor by which the error's norm can grow at most from lag q-1
        to lag q (NaN at q = 0).
    step_factor_max : ndarray of shape (n_lags,) or None
        Elman only: the largest single-path factor ``|f'(net_j(T-q)) w_ij|`` over
        units i, j and samples (Hochreiter's per-connection factor).
    path_bound : ndarray of shape (n_lags,) or None
        Elman only: the mean over samples of the product of the sample's
        step factors up to lag q: a bound on ``ratio`` that uses the actual
        f'(net(t)); ``ratio <= path_bound <= bound``.

    See Also
    --------
    error_flow : computes this.
    format_error_flow_table : several profiles as one table.
    """

    cell: str
    activation: object
    signal: str
    ratio: np.ndarray
    sample_ratio: np.ndarray = field(repr=False)
    threshold: float
    horizon: int
    ratio_gates: object = field(default=None, repr=False)
    weight_hh_norm: object = None
    bound_per_step: object = None
    bound: object = field(default=None, repr=False)
    step_factor: object = field(default=None, repr=False)
    step_factor_max: object = field(default=None, repr=False)
    path_bound: object = field(default=None, repr=False)

    def __repr__(self):
        last = self.n_lags - 1
        return (f"ErrorFlow({self.name}, signal={self.signal!r}, "
                f"n_lags={self.n_lags}, ratio[1]={self.at(1)[0]:.3g}, "
                f"ratio[{last}]={self.ratio[last]:.3g}, "
                f"horizon={self.horizon} at threshold {self.threshold:g})")

    @property
    def n_lags(self):
        """Number of lags (the longest sequence's length)."""
        return len(self.ratio)

    @property
    def name(self):
        """A short label: the cell, with the activation for Elman layers."""
        return (f"{self.activation} {self.cell}" if self.activation
                else self.cell)

    def at(self, lags):
        """``ratio`` at the given lags (NaN for a lag beyond ``n_lags - 1``)."""
        lags = np.atleast_1d(np.asarray(lags, dtype=int))
        out = np.full(lags.shape, np.nan)
        ok = (lags >= 0) & (lags < self.n_lags)
        out[ok] = self.ratio[lags[ok]]
        return out


def _check_threshold(threshold):
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold={threshold!r}; expected a positive float")
    if not 0 < threshold < np.inf:
        raise ValueError(f"threshold={threshold}; expected a positive float")
    return float(threshold)


def _elman_factors(h, w_hh, activation):
    """Per-sample step factors of an Elman layer by lag.

    ``h`` is (n, L, H); returns ``(norms, max_abs)``, both (n, L), where
    column q holds the factor of the step from lag q - 1 to lag q: the
    spectral norm of ``diag(f'(net(T-q))) W_hh^T`` and its largest entry in
    magnitude (column 0 is NaN).
    """
    n, L, _ = h.shape
    fp = get_activation(activation).fprime(h)
    norms = np.full((n, L), np.nan)
    max_abs = np.full((n, L), np.nan)
    w_t = w_hh.T
    abs_w_max = np.abs(w_hh).max(axis=0)        # max_i |w_ij| for each j
    for q in range(1, L):
        t = L - 1 - q
        # J(t) = diag(f'(net(t))) W_hh^T:  (n x H x H)
        jac = fp[:, t, :, None] * w_t[None]
        norms[:, q] = np.linalg.norm(jac, ord=2, axis=(1, 2))
        max_abs[:, q] = (np.abs(fp[:, t]) * abs_w_max).max(axis=1)
    return norms, max_abs


def _nanmean_columns(a):
    """Column means over the non-NaN entries; NaN for an all-NaN column."""
    count = np.sum(~np.isnan(a), axis=0)
    total = np.nansum(a, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nanmax_columns(a):
    """Column maxima over the non-NaN entries; NaN for an all-NaN column."""
    m = np.where(np.isnan(a), -np.inf, a).max(axis=0)
    return np.where(np.isneginf(m), np.nan, m)


def error_flow(X, weights, *, cell="elman", activation="tanh",
               direction="random", threshold=1e-3, random_state=None):
    """Measure how the error injected at the last step decays back in time.

    For each sequence, the loss looks only at the last step T: its
    gradient with respect to the layer's output h(T) is a vector ``e`` (the
    ``direction``), zero at every other step. One compiled BPTT pass then
    gives the error signals delta(t) at every step, and::

        ratio[q] = mean over samples of ||delta(T - q)|| / ||delta(T)||

    For an Elman layer, delta(t) = f'(net(t)) * (W_hh^T delta(t+1)), so
    each step back multiplies the error by ``diag(f'(net(t))) W_hh^T``,
    whose norm is at most ``sup|f'| * ||W_hh||_2``: for the logistic
    (sup f' = 1/4) with ||W_hh||_2 < 4 the error vanishes at least
    geometrically (Hochreiter 1991; Hochreiter & Schmidhuber 1997, Section
    3). A constant error carousel, s(t) = s(t-1) + ..., carries it back
    unchanged: ratio 1 at every lag. In an LSTM the carousel's error
    dL/dc(t) is measured; the 1997 form keeps it near 1, a forget gate f
    scales it by f(t) per step.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_timesteps, n_features) or list
        Input sequences (trailing-NaN padded, or a list of
        ``(T_i, n_features)`` arrays); each is measured from its own last
        step.
    weights : dict
        The layer's weights in PyTorch's names: ``weight_ih``, ``weight_hh``
        (not for a CEC) and ``bias``, e.g. ``estimator.coefs_[0]``.
    cell : {"elman", "cec", "lstm", "lstm1997", "gru"}, default="elman"
        The layer's cell.
    activation : {"tanh", "logistic", "relu", "identity"}, default="tanh"
        The Elman activation (ignored by other cells).
    direction : {"random", "ones"} or array-like, default="random"
        The injected error e = dL/dh(T): a random unit vector per sample
        (drawn from ``random_state``), the normalised all-ones vector, or a
        given array of shape (H,) or (n_samples, H).
    threshold : float, default=1e-3
        The memory horizon is the largest lag with ratio above this.
    random_state : int, RandomState instance or None, default=None
        Seed of the random directions.

    Returns
    -------
    flow : ErrorFlow
        ``ratio``, ``horizon`` and, for Elman layers, the step factors and
        the theory's bound.

    Raises
    ------
    ValueError
        On an unknown cell or activation, missing weights, mismatched
        shapes, NaN before a sequence's end or a bad ``direction``.

    See Also
    --------
    error_signals : every layer's delta(t) for a given loss.
    cbptt.plotting.plot_error_flow : the profiles on a log scale.

    References
    ----------
    .. [1] S. Hochreiter, "Untersuchungen zu dynamischen neuronalen Netzen",
       diploma thesis, TU Munich, 1991.
    .. [2] S. Hochreiter and J. Schmidhuber, "Long short-term memory",
       Neural Computation 9(8):1735-1780, 1997.
    .. [3] Y. Bengio, P. Simard and P. Frasconi, "Learning long-term
       dependencies with gradient descent is difficult", IEEE Transactions
       on Neural Networks 5(2):157-166, 1994.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt.diagnostics import error_flow
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((16, 30, 3))
    >>> H = 8
    >>> w = dict(weight_ih=rng.standard_normal((H, 3)) * 0.5,
    ...          weight_hh=rng.standard_normal((H, H)) / np.sqrt(H),
    ...          bias=np.zeros(H))
    >>> flow = error_flow(X, w, activation="logistic", random_state=0)
    >>> bool(flow.ratio[0] == 1.0), bool(np.all(flow.ratio <= flow.bound))
    (True, True)
    >>> flow.horizon < 10
    True
    """
    return _error_flow(X, weights, cell, activation, direction, threshold,
                       random_state)


def _error_flow(X, weights, cell, activation, direction, threshold,
                random_state, with_factors=True):
    """:func:`error_flow`; ``with_factors=False`` skips the Elman step factors
    and bounds (one SVD per sample and step: the costly part), leaving the
    same ``ratio``, ``sample_ratio`` and ``horizon``."""
    cell = _layer_cell(cell, activation)
    threshold = _check_threshold(threshold)
    groups, lengths, _ = _length_groups(X)
    w = {k: np.asarray(v, dtype=np.float64)
         for k, v in _layer_weights(weights, cell).items()}
    H = _hidden_size(cell, w)
    n, n_lags = len(lengths), int(lengths.max())
    e = _directions(direction, n, H, check_random_state(random_state))

    norms = np.full((n, n_lags), np.nan)
    # a gated cell: the gates' error signals beside the carried one
    gate_norms = np.full((n, n_lags), np.nan) if cell.gates else None
    # the step factors diag(f'(net)) W_hh^T of a cell h = f(W x + W h + b)
    with_factors = with_factors and bool(cell.activations)
    if with_factors:
        factors = np.full((n, n_lags), np.nan)
        factors_max = np.full((n, n_lags), np.nan)
    for index, x in groups:
        L = x.shape[1]
        grad_h = np.zeros((len(index), L, H))
        grad_h[:, -1] = e[index]
        fwd = cell.api_forward(x.astype(np.float64), w)
        grads = cell.api_backward(fwd, grad_h, None)
        signal = getattr(grads, cell.signal)
        # lag q = step L-1-q: reverse the time axis
        norms[index, :L] = np.linalg.norm(signal[:, ::-1], axis=2)
        if gate_norms is not None:
            gate_norms[index, :L] = np.linalg.norm(grads.delta[:, ::-1], axis=2)
        if with_factors:
            fn, fm = _elman_factors(np.asarray(fwd.h), w["weight_hh"],
                                    activation)
            factors[index, :L] = fn
            factors_max[index, :L] = fm

    def ratios(a):
        with np.errstate(invalid="ignore", divide="ignore"):
            r = a / a[:, :1]
        r[~np.isfinite(r)] = np.nan       # ||delta(T)|| = 0: undefined
        return r

    sample_ratio = ratios(norms)
    ratio = _nanmean_columns(sample_ratio)
    above = np.flatnonzero(ratio > threshold)
    kw = dict(cell=cell.name,
              activation=cell.activation if cell.activations else None,
              signal=cell.signal, ratio=ratio,
              sample_ratio=sample_ratio, threshold=threshold,
              horizon=int(above.max()) if above.size else 0)
    if gate_norms is not None:
        kw["ratio_gates"] = _nanmean_columns(ratios(gate_norms))
    if with_factors:
        w_norm = float(np.linalg.norm(w["weight_hh"], ord=2))
        per_step = get_activation(activation).fprime_sup * w_norm
        path = factors.copy()
        path[:, 0] = 1.0
        # bounds beyond float64's range are no bounds: inf, without a warning
        with np.errstate(over="ignore"):
            path = np.cumprod(path, axis=1)    # NaN beyond a sample's length
            bound = per_step ** np.arange(n_lags, dtype=np.float64)
        kw.update(weight_hh_norm=w_norm, bound_per_step=per_step,
                  bound=bound,
                  step_factor=_nanmean_columns(factors),
                  step_factor_max=_nanmax_columns(factors_max),
                  path_bound=_nanmean_columns(path))
    return ErrorFlow(**kw)


def format_error_flow_table(flows, lags=(1, 10, 50, 99), *, names=None):
    """Several error-flow profiles as one Markdown table.

    Parameters
    ----------
    flows : sequence of ErrorFlow or dict of name -> ErrorFlow
        The profiles; a dict's keys name the rows.
    lags : sequence of int, default=(1, 10, 50, 99)
        The lags q shown as columns (``-`` beyond a profile's length).
    names : sequence of str, default=None
        Row names when ``flows`` is a sequence; default ``flow.name``.

    Returns
    -------
    table : str
        A Markdown table: one row per profile with ratio[q] at each lag,
        the memory horizon and, for Elman layers, the bound per step.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt.diagnostics import error_flow, format_error_flow_table
    >>> rng = np.random.default_rng(0)
    >>> w = dict(weight_ih=rng.standard_normal((4, 2)),
    ...          weight_hh=np.eye(4) * 0.5, bias=np.zeros(4))
    >>> flow = error_flow(rng.standard_normal((3, 12, 2)), w, random_state=0)
    >>> print(format_error_flow_table([flow], lags=(1, 10)).splitlines()[0])
    | model | q=1 | q=10 | horizon | bound/step |
    """
    if hasattr(flows, "items"):
        names, flows = list(flows.keys()), list(flows.values())
    flows = list(flows)
    if names is None:
        names = [f.name for f in flows]
    lags = [int(q) for q in lags]
    head = ["model"] + [f"q={q}" for q in lags] + ["horizon", "bound/step"]
    rows = ["| " + " | ".join(head) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for name, f in zip(names, flows):
        cells = [name]
        for value in f.at(lags):
            cells.append("-" if np.isnan(value) else f"{value:.3g}")
        reach = f"{f.horizon}" + ("+" if f.horizon == f.n_lags - 1 else "")
        cells.append(reach)
        cells.append("-" if f.bound_per_step is None
                     else f"{f.bound_per_step:.3g}")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------
# Error signals of a stack of layers
# ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LayerSignals:
    """One recurrent layer's states and error signals for every step.

    Arrays are batch-first ``(n_samples, n_timesteps, .)``, NaN on the
    padded steps of shorter sequences.

    Attributes
    ----------
    cell : str
        The layer's cell.
    h : ndarray of shape (n_samples, n_timesteps, H)
        The layer's outputs h(t) (s(t) for a CEC).
    delta : ndarray of shape (n_samples, n_timesteps, H) or (..., G*H)
        The error signals: dL/dnet(t) for Elman, dL/ds(t) for a CEC, and
        for an LSTM dL/dz(t) of the gate pre-activations, stacked in the
        order of ``gates``.
    delta_c : ndarray of shape (n_samples, n_timesteps, H) or None
        LSTM only: dL/dc(t), the error in the carousel.
    gates : tuple of str or None
        LSTM only: the gates' order in ``delta`` ("i", "f", "g", "o", or
        "i", "g", "o" for the 1997 form).
    """

    cell: str
    h: np.ndarray = field(repr=False)
    delta: np.ndarray = field(repr=False)
    delta_c: object = field(default=None, repr=False)
    gates: object = None

    def gate(self, name):
        """The error signal of one gate, shape (n_samples, n_timesteps, H)."""
        if self.gates is None or name not in self.gates:
            raise ValueError(f"gate {name!r} is not one of this "
                             f"{self.cell} layer's gates {self.gates}")
        H = self.delta.shape[2] // len(self.gates)
        k = self.gates.index(name)
        return self.delta[:, :, k * H:(k + 1) * H]


def error_signals(X, layers, grad_h, *, cell="elman", activation="tanh",
                  truncate=None):
    """Run a stack of recurrent layers and return every layer's delta(t).

    The layers run bottom-up (layer l's outputs h are layer l+1's inputs);
    then the loss gradient with respect to the top layer's outputs,
    ``grad_h``, goes back down through each layer's compiled BPTT, and
    ``dL/dx`` of layer l + 1 is ``dL/dh`` of layer l.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_timesteps, n_features) or list
        Input sequences (trailing-NaN padded, or a list of arrays).
    layers : sequence of dict
        Each layer's weights in PyTorch's names (``weight_ih``,
        ``weight_hh``, ``bias``), bottom first, e.g. an estimator's
        ``coefs_`` without the output layer. A dict may carry its own
        ``"cell"`` and ``"activation"``, overriding the arguments below.
    grad_h : array-like of shape (n_samples, n_timesteps, H_top) or callable
        dL/dh(t) of the top layer's outputs (values on padded steps are
        ignored); or a function ``grad_h(h_top, index)`` returning it for
        the sequences ``X[index]`` (all of length L) given their top-layer
        outputs ``h_top`` of shape (len(index), L, H_top): that is how a
        loss on a readout of h is differentiated.
    cell : {"elman", "cec", "lstm", "lstm1997", "gru"}, default="elman"
        The cell of every layer without its own ``"cell"``.
    activation : str, default="tanh"
        The Elman activation of every layer without its own.
    truncate : int or None, default=None
        Truncated BPTT windows, as in :func:`cbptt.rnn_backward`.

    Returns
    -------
    signals : list of LayerSignals
        One per layer, bottom first: ``h``, ``delta`` and, for LSTM layers,
        ``delta_c`` and the gates' order.

    Raises
    ------
    ValueError
        On an unknown cell, missing weights, mismatched shapes, NaN before a
        sequence's end, or a ``grad_h`` of the wrong shape.

    See Also
    --------
    error_flow : the decay of an error injected at the last step.
    cbptt.plotting.plot_error_signals : a heat map of ``|delta|``.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt.diagnostics import error_signals
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((4, 10, 3))
    >>> layers = [dict(weight_ih=rng.standard_normal((5, 3)),
    ...                weight_hh=rng.standard_normal((5, 5)) * 0.3,
    ...                bias=np.zeros(5)),
    ...           dict(weight_ih=rng.standard_normal((2, 5)),
    ...                weight_hh=rng.standard_normal((2, 2)) * 0.3,
    ...                bias=np.zeros(2))]
    >>> g = np.zeros((4, 10, 2)); g[:, -1] = 1.0   # loss = sum of the last h
    >>> s = error_signals(X, layers, g)
    >>> [layer.delta.shape for layer in s]
    [(4, 10, 5), (4, 10, 2)]
    """
    groups, lengths, _ = _length_groups(X)
    if isinstance(layers, dict) or not hasattr(layers, "__len__") or not layers:
        raise ValueError("layers must be a non-empty sequence of weight dicts")
    specs = []
    for k, layer in enumerate(layers):
        has = hasattr(layer, "get")
        c = _layer_cell(layer.get("cell", cell) if has else cell,
                        layer.get("activation", activation) if has
                        else activation)
        w = _layer_weights(layer, c, layer=k)
        specs.append((c, w, _hidden_size(c, w)))
    n, t_max = len(lengths), int(lengths.max())
    if not callable(grad_h):
        grad_h = np.asarray(grad_h)
        expected = (n, t_max, specs[-1][2])
        if grad_h.shape != expected:
            raise ValueError(f"grad_h has shape {grad_h.shape}; expected "
                             f"{expected} (n_samples, n_timesteps, H of the "
                             "top layer)")

    out = None
    for index, x in groups:
        L = x.shape[1]
        fwds, inp = [], x
        for c, w, _ in specs:
            fwds.append(c.api_forward(inp, w))
            inp = fwds[-1].h
        if callable(grad_h):
            g = np.asarray(grad_h(fwds[-1].h, index))
            if g.shape != fwds[-1].h.shape:
                raise ValueError(f"grad_h returned shape {g.shape} for "
                                 f"sequences {index[:5].tolist()}...; "
                                 f"expected {fwds[-1].h.shape}")
        else:
            g = grad_h[index, :L]
        grads = [None] * len(specs)
        for k in range(len(specs) - 1, -1, -1):
            grads[k] = specs[k][0].api_backward(fwds[k], g, truncate)
            g = grads[k].x
        if out is None:
            out = [_empty_signals(spec, n, t_max, grads[k].delta.dtype)
                   for k, spec in enumerate(specs)]
        for k, spec in enumerate(specs):
            s = out[k]
            s["h"][index, :L] = fwds[k].h
            s["delta"][index, :L] = grads[k].delta
            if s["delta_c"] is not None:
                s["delta_c"][index, :L] = getattr(grads[k], spec[0].signal)
    return [LayerSignals(cell=spec[0].name, gates=spec[0].gates or None, **s)
            for spec, s in zip(specs, out)]


def _empty_signals(spec, n, t_max, dtype):
    """NaN arrays for every layer's signals: ``delta`` of all the cell's
    blocks and, where the carried error is another signal (an LSTM's
    dL/dc), that one as ``delta_c``."""
    c, _, H = spec
    return dict(h=np.full((n, t_max, H), np.nan, dtype),
                delta=np.full((n, t_max, c.n_blocks() * H), np.nan, dtype),
                delta_c=(np.full((n, t_max, H), np.nan, dtype)
                         if c.signal != "delta" else None))


# ---------------------------------------------------------------------------
# Fitted estimators: error signals, error flow, text generation
# ---------------------------------------------------------------------------

def _fitted_network(estimator):
    """A fitted estimator's recurrent layers, output layer and architecture.

    The architecture (cell, activation, output) is the one the weights were
    trained with (``_arch``), never the constructor parameters, which
    ``set_params`` may have changed since.
    """
    coefs = getattr(estimator, "coefs_", None)
    arch = getattr(estimator, "_arch", None)
    if coefs is None or arch is None:
        raise AttributeError(
            f"this {type(estimator).__name__} is not fitted yet (it has no "
            "coefs_); call fit before looking at its error signals")
    return list(coefs[:-1]), coefs[-1], arch


def _as_sequences(X):
    """Estimator input as a 3-D array or a list of 2-D arrays.

    A 2-D array is n_samples univariate series (the estimators' convention),
    a list of 1-D arrays likewise.
    """
    if isinstance(X, (list, tuple)):
        return [np.asarray(s)[:, None] if np.ndim(s) == 1 else np.asarray(s)
                for s in X]
    X = np.asarray(X)
    return X[:, :, None] if X.ndim == 2 else X


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _class_probabilities(z, n_classes):
    """Softmax over the outputs, or the logistic of a single binary output."""
    if z.shape[-1] == 1 and n_classes == 2:
        p1 = 1.0 / (1.0 + np.exp(-z))
        return np.concatenate([1.0 - p1, p1], axis=-1)
    return _softmax(z)


def _targets_by_sample(y, lengths, per_step):
    """``y`` as a list of per-sample targets (cut to each length)."""
    n = len(lengths)
    if isinstance(y, (list, tuple)) and per_step:
        if len(y) != n:
            raise ValueError(f"y has {len(y)} sequences; X has {n}")
        return [np.asarray(t)[:L] for t, L in zip(y, lengths)]
    y = np.asarray(y)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} samples; X has {n}")
    if per_step:
        if y.ndim < 2 or y.shape[1] < lengths.max():
            raise ValueError(f"y has shape {y.shape}; with output='sequence' "
                             f"expected ({n}, {lengths.max()}[, n_outputs])")
        return [y[i, :L] for i, L in enumerate(lengths)]
    return [y[i] for i in range(n)]


def _loss_gradient(estimator, n_targets):
    """dL/dz of the estimator's mean loss for outputs ``z`` and targets.

    Squared error ``1/(2N) sum ||z - y||^2`` for a regressor, softmax
    cross-entropy ``-1/N sum log p(y)`` for a classifier: N targets in all.
    """
    def grad(z, y):
        if hasattr(estimator, "classes_"):
            classes = list(np.asarray(estimator.classes_))
            index = {c: k for k, c in enumerate(classes)}
            flat = np.asarray(y, dtype=object).reshape(-1)
            try:
                codes = np.array([index[v] for v in flat], dtype=int)
            except (KeyError, TypeError):
                bad = next(v for v in flat if v not in index)
                raise ValueError(f"y holds the label {bad!r}, which is not "
                                 f"among the classes {classes}") from None
            p = _class_probabilities(z.reshape(-1, z.shape[-1]), len(classes))
            p[np.arange(len(codes)), codes] -= 1.0
            if z.shape[-1] == 1:            # logistic output: dL/dz = p1 - y
                p = p[:, 1:]
            return p.reshape(z.shape) / n_targets
        y = np.asarray(y, dtype=np.float64).reshape(z.shape)
        return (z - y) / n_targets
    return grad


def estimator_error_signals(estimator, X, y):
    """Every recurrent layer's delta(t) for a fitted estimator's loss on (X, y).

    The estimators' ``error_signals(X, y)`` method. The loss is the
    estimator's training loss (without the L2 penalty) as a mean over all
    targets in ``y``: squared error for a regressor, softmax cross-entropy
    for a classifier, at each sequence's last step (``output="last"``) or
    at every step (``output="sequence"``). The error signals come from the
    compiled backward passes (see :func:`error_signals`).

    Parameters
    ----------
    estimator : fitted RNNRegressor or RNNClassifier
    X : array-like of shape (n_samples, n_timesteps, n_features) or list
        Input sequences, as for ``predict`` (2-D: univariate series).
    y : array-like
        Targets, as for ``fit``.

    Returns
    -------
    signals : list of LayerSignals
        One per recurrent layer, bottom first: ``h``, ``delta`` and, for
        LSTM layers, ``delta_c`` and the gates' order.

    Raises
    ------
    AttributeError
        If the estimator is not fitted.
    ValueError
        On input that does not match the fitted estimator, or labels it
        does not know.
    """
    layers, out, arch = _fitted_network(estimator)
    X = _as_sequences(X)
    _, lengths, _ = _length_groups(X)
    per_step = arch["output"] == "sequence"
    targets = _targets_by_sample(y, lengths, per_step)
    n_targets = int(lengths.sum()) if per_step else len(lengths)
    w_out = np.asarray(out["weight"])
    b_out = np.asarray(out["bias"])
    loss_grad = _loss_gradient(estimator, n_targets)

    def grad_h(h, index):
        y_group = np.stack([np.asarray(targets[i]) for i in index])
        g = np.zeros_like(h)
        if per_step:
            g[...] = loss_grad(h @ w_out.T + b_out, y_group) @ w_out
        else:
            g[:, -1] = loss_grad(h[:, -1] @ w_out.T + b_out, y_group) @ w_out
        return g

    return error_signals(X, layers, grad_h, cell=arch["cell"],
                         activation=arch["activation"])


def estimator_error_flow(estimator, X, *, max_samples=None, direction="random",
                         threshold=1e-3, random_state=0):
    """The error flow through a fitted estimator's first recurrent layer.

    The estimators' ``error_flow(X, y=None)`` method and what they record as
    ``error_flow_``: :func:`error_flow` with the first layer's weights
    (``coefs_[0]``), cell and activation.

    Parameters
    ----------
    estimator : fitted RNNRegressor or RNNClassifier
    X : array-like of shape (n_samples, n_timesteps, n_features) or list
        Input sequences (2-D: univariate series).
    max_samples : int, default=None
        Use only the first this many sequences (a cheap profile during
        training).
    direction, threshold, random_state
        As in :func:`error_flow`.

    Returns
    -------
    flow : ErrorFlow
    """
    layers, _, arch = _fitted_network(estimator)
    X = _as_sequences(X)
    if max_samples is not None:
        X = X[:int(max_samples)]
    return error_flow(X, layers[0], cell=arch["cell"],
                      activation=arch["activation"],
                      direction=direction, threshold=threshold,
                      random_state=random_state)


def generate_text(estimator, seed_text, n_chars=200, temperature=1.0, *,
                  codec=None, random_state=None):
    """Sample text, one character at a time, from a character classifier.

    The estimators' ``generate`` method. The classifier must have been
    trained with ``output="sequence"`` on one-hot characters with the next
    character as the target at every step (as :meth:`CharCodec.sequences
    <cbptt.datasets.CharCodec.sequences>` makes them). The seed runs through
    the network once; then each sampled character is fed back for one step,
    the recurrent states carried along (no recomputation of the prefix).

    Parameters
    ----------
    estimator : fitted RNNClassifier
        With ``output="sequence"``.
    seed_text : str
        The text to start from (at least one character of the vocabulary).
    n_chars : int, default=200
        How many characters to generate.
    temperature : float, default=1.0
        Sampling from ``softmax(z / temperature)``: below 1 sharper (more
        likely characters), above 1 more random.
    codec : CharCodec, default=None
        The vocabulary of the inputs; when the targets were indices, the
        classes are indices into it. None works when the classes are the
        characters themselves and cover the whole vocabulary.
    random_state : int, RandomState instance or None, default=None
        Seed of the sampling.

    Returns
    -------
    text : str
        ``n_chars`` generated characters (without the seed).

    Raises
    ------
    ValueError
        If the estimator was not trained on characters with
        ``output="sequence"``, the seed holds characters outside the
        vocabulary, or ``n_chars`` is negative.
    TypeError
        If ``n_chars`` is not an int.
    """
    from cbptt.datasets import CharCodec
    layers, out, arch = _fitted_network(estimator)
    if arch["output"] != "sequence" or not hasattr(
            estimator, "classes_"):
        raise ValueError("generate needs a classifier trained with "
                         "output='sequence' (next character at every step)")
    classes = np.asarray(estimator.classes_)
    if codec is None:
        if classes.dtype.kind != "U" or any(len(c) != 1 for c in classes):
            raise ValueError("the classes are not single characters; pass "
                             "codec= (the CharCodec the inputs were made with)")
        codec = CharCodec("".join(classes))
        chars = list(classes)
    elif classes.dtype.kind in "iu":
        chars = [codec.chars[k] for k in classes]
    else:
        chars = [str(c) for c in classes]
    n_features = np.shape(layers[0]["weight_ih"])[1]
    if n_features != codec.n_chars:
        raise ValueError(f"the network reads {n_features} features; the "
                         f"codec has {codec.n_chars} characters")
    if not isinstance(seed_text, str) or not seed_text:
        raise ValueError("seed_text must be a non-empty string")
    if isinstance(n_chars, (bool, np.bool_)) or not isinstance(
            n_chars, numbers.Integral):
        raise TypeError(f"n_chars={n_chars!r} has type "
                        f"{type(n_chars).__name__}; expected an int >= 0")
    if n_chars < 0:
        raise ValueError(f"n_chars={n_chars}; expected an int >= 0 (the "
                         "number of characters to generate)")
    n_chars = int(n_chars)
    if isinstance(temperature, bool) or not (
            isinstance(temperature, numbers.Real) and temperature > 0):
        raise ValueError(f"temperature={temperature!r}; expected a float > 0")
    rng = check_random_state(random_state)
    dtype = np.asarray(layers[0]["weight_ih"]).dtype
    cell = make_cell(arch["cell"], arch["activation"])
    specs = [(cell, layer) for layer in layers]
    w_out = np.asarray(out["weight"], dtype=np.float64)
    b_out = np.asarray(out["bias"], dtype=np.float64)

    def run(x, states):
        new = []
        for (c, w), s in zip(specs, states):
            fwd = c.api_forward(x, w, s)
            new.append(c.api_final_state(fwd))
            x = fwd.h
        return x[0, -1].astype(np.float64), new

    h, states = run(codec.one_hot(seed_text, dtype)[None], [None] * len(specs))
    generated = []
    for _ in range(n_chars):
        z = (h @ w_out.T + b_out) / temperature
        p = _class_probabilities(z[None], len(classes))[0]
        k = rng.choice(len(p), p=p / p.sum())
        generated.append(chars[k])
        h, states = run(codec.one_hot(chars[k], dtype)[None], states)
    return "".join(generated)
