"""Plots of what BPTT does: error flow by lag, loss curves, error-signal maps.

Contract
--------
* matplotlib is an optional dependency (``pip install "cbptt[plot]"``); it
  is imported only when a plot is drawn, and its absence raises an
  ImportError that says how to install it.
* Without a display (no ``DISPLAY``/``WAYLAND_DISPLAY`` on Linux, no
  ``MPLBACKEND`` chosen and pyplot not yet imported) the Agg backend is
  selected, so plots work on servers and in CI.
* Every function draws on the given ``ax`` or on a new figure, returns the
  Axes (``ax.figure`` is the Figure), and saves the figure to ``path`` when
  one is given.
"""
import numbers
import os
import sys

import numpy as np

__all__ = ["plot_error_flow", "plot_loss_curve", "plot_error_signals"]


def _pyplot():
    """matplotlib.pyplot, with Agg when no display is available."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "cbptt's plots need matplotlib, which is not installed; install "
            "it with: pip install \"cbptt[plot]\"  (or: pip install "
            "matplotlib)") from None
    headless = (sys.platform.startswith("linux")
                and not os.environ.get("DISPLAY")
                and not os.environ.get("WAYLAND_DISPLAY"))
    if (headless and "MPLBACKEND" not in os.environ
            and "matplotlib.pyplot" not in sys.modules):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _axes(ax, figsize):
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _finish(ax, path, title):
    if title is not None:
        ax.set_title(title)
    if path is not None:
        ax.figure.savefig(path, dpi=110, bbox_inches="tight")
    return ax


def _named(items, labels, default_name):
    """``items`` (one, a sequence, or a dict) as a list of (label, item)."""
    if hasattr(items, "items"):
        pairs = list(items.items())
    else:
        if not isinstance(items, (list, tuple)) or (
                len(items) and isinstance(items[0], numbers.Real)):
            items = [items]
        pairs = [(None, it) for it in items]
    if labels is not None:
        labels = list(labels)
        if len(labels) != len(pairs):
            raise ValueError(f"labels has {len(labels)} entries; expected "
                             f"{len(pairs)}, one per curve")
        pairs = [(lab, it) for lab, (_, it) in zip(labels, pairs)]
    return [(lab if lab is not None else default_name(it, k), it)
            for k, (lab, it) in enumerate(pairs)]


def _positive(y):
    """``y`` as floats with non-positive entries masked (for log axes)."""
    y = np.asarray(y, dtype=np.float64).copy()
    y[~(y > 0)] = np.nan
    return y


def plot_error_flow(flows, *, labels=None, bound=True, threshold=True,
                    ylim=None, ax=None, path=None, title=None, X=None):
    """The error-flow profiles ratio[q] against the lag q, on a log scale.

    Parameters
    ----------
    flows : ErrorFlow, estimator, array-like, or a sequence or dict of them
        Profiles from :func:`cbptt.diagnostics.error_flow`, fitted
        estimators (their ``error_flow_``, recorded with
        ``record_error_flow``, or their :meth:`error_flow` on ``X``), or
        plain arrays of ratios by lag; a dict's keys are the labels. Several
        profiles share one axis.
    labels : sequence of str, default=None
        Curve labels; default the dict keys or each profile's ``name``.
    bound : bool, default=True
        Also draw, dashed in the same colour, the theory's bound
        ``(sup|f'| ||W_hh||)^q`` of each Elman profile.
    threshold : bool, default=True
        Draw the horizon threshold as a dotted horizontal line.
    ylim : (float, float), default=None
        Limits of the ratio axis, e.g. to zoom in on the slowly decaying
        profiles; by default they span every profile.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    path : str or path-like, default=None
        Save the figure there (any format matplotlib knows, e.g. ``.png``).
    title : str, default=None
        The Axes' title.
    X : array-like or list of arrays, default=None
        Sequences on which to measure the error flow of a fitted estimator
        in ``flows`` (``est.error_flow(X)``); needed only for an estimator
        fitted without ``record_error_flow``, and preferred to the recorded
        ``error_flow_`` when given.

    Returns
    -------
    ax : matplotlib Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If an estimator has no recorded error flow and ``X`` is None.

    Examples
    --------
    A fitted estimator (here recording its error flow while training):

    >>> import numpy as np
    >>> from cbptt import RNNRegressor
    >>> from cbptt.plotting import plot_error_flow
    >>> X = np.random.default_rng(0).standard_normal((16, 30, 2))
    >>> est = RNNRegressor(cell="elman", hidden_layer_sizes=(8,), max_iter=3,
    ...                    record_error_flow="fit", random_state=0)
    >>> ax = plot_error_flow(est.fit(X, X[:, -1, 0]))
    >>> ax.get_lines()[0].get_label()
    'RNNRegressor (elman)'

    Profiles of the functional API, compared:

    >>> from cbptt.diagnostics import error_flow
    >>> from cbptt.plotting import plot_error_flow
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((8, 50, 2))
    >>> w = dict(weight_ih=rng.standard_normal((8, 2)),
    ...          weight_hh=rng.standard_normal((8, 8)) / 3, bias=np.zeros(8))
    >>> flows = {act: error_flow(X, w, activation=act, random_state=0)
    ...          for act in ("logistic", "tanh")}
    >>> ax = plot_error_flow(flows)
    >>> ax.get_yscale()
    'log'
    """
    ax = _axes(ax, (7, 4.2))
    curves = _named(flows, labels, _flow_name)
    curves = [(label, _estimator_flow(f, label, X)) for label, f in curves]
    thresholds = set()
    for label, flow in curves:
        ratio = getattr(flow, "ratio", flow)
        ratio = np.asarray(ratio, dtype=np.float64)
        if ratio.ndim != 1:
            raise ValueError(f"the profile {label!r} has shape {ratio.shape}; "
                             "expected a 1-D array of ratios by lag")
        lags = np.arange(len(ratio))
        line, = ax.plot(lags, _positive(ratio), label=label, lw=2)
        if bound and getattr(flow, "bound", None) is not None:
            ax.plot(lags, _positive(flow.bound), ls="--", lw=1,
                    color=line.get_color(),
                    label=f"bound ({flow.bound_per_step:.2g})^q")
        if getattr(flow, "threshold", None) is not None:
            thresholds.add(flow.threshold)
    if threshold:
        for level in sorted(thresholds):
            ax.axhline(level, color="0.5", ls=":", lw=1,
                       label=f"threshold {level:g}")
    ax.set_yscale("log")
    ax.set_xlabel("time lag q (steps back from the error at T)")
    ax.set_ylabel("||delta(T-q)|| / ||delta(T)||")
    if ylim is not None:
        ax.set_ylim(*ylim)
    else:   # span the profiles; a bound must not squeeze them into a corner
        lo = [np.nanmin(_positive(getattr(f, "ratio", f)), initial=np.inf)
              for _, f in curves]
        lo = [v for v in lo if np.isfinite(v)]
        if lo:
            ax.set_ylim(max(min(lo) * 0.3, 1e-300), None)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(ax, path, title)


def plot_loss_curve(curves, *, labels=None, baseline=None, log=True, ax=None,
                    path=None, title=None):
    """Training loss against epochs for one or several models.

    The epoch axis has whole-number ticks. An estimator fitted with
    ``early_stopping`` also has its ``validation_scores_`` drawn, dashed in
    the same colour, on a second y-axis on the right (labelled "validation
    score", with the estimator's score: R^2 or accuracy), aligned with the
    last epochs of its loss curve.

    Parameters
    ----------
    curves : estimator, array-like, or a sequence or dict of them
        Fitted estimators (their ``loss_curve_`` is drawn, and their
        ``validation_scores_`` when there are any) or arrays of losses by
        epoch; a dict's keys are the labels.
    labels : sequence of str, default=None
        Curve labels; default the dict keys or the estimator's class name.
    baseline : float or dict of str -> float, default=None
        Horizontal reference lines, e.g. the loss of always predicting the
        mean.
    log : bool, default=True
        Logarithmic loss axis.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    path : str or path-like, default=None
        Save the figure there.
    title : str, default=None
        The Axes' title.

    Returns
    -------
    ax : matplotlib Axes
        The loss axis; the validation scores' axis, when drawn, is its twin
        (``ax.figure.axes``).

    Raises
    ------
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> from cbptt.plotting import plot_loss_curve
    >>> ax = plot_loss_curve({"model": [1.0, 0.5, 0.3]}, baseline=0.4)
    >>> len(ax.get_lines())
    2

    An estimator trained with early stopping: loss and validation scores.

    >>> import numpy as np
    >>> from cbptt import RNNClassifier
    >>> X = np.random.default_rng(0).standard_normal((60, 10, 1))
    >>> clf = RNNClassifier(hidden_layer_sizes=(8,), early_stopping=True,
    ...                     max_iter=4, random_state=0).fit(X, X.sum(axis=(1, 2)) > 0)
    >>> ax = plot_loss_curve(clf)
    >>> ax.figure.axes[1].get_ylabel()
    'validation score (accuracy)'
    """
    ax = _axes(ax, (7, 4.2))

    def default(item, k):
        return (type(item).__name__ if hasattr(item, "loss_curve_")
                else f"model {k + 1}")

    scores = []                     # (label, colour, epochs, scores, name)
    for label, item in _named(curves, labels, default):
        loss = np.asarray(getattr(item, "loss_curve_", item), dtype=np.float64)
        if loss.ndim != 1 or loss.size == 0:
            raise ValueError(f"the loss curve {label!r} has shape {loss.shape}; "
                             "expected a non-empty 1-D array of losses")
        line, = ax.plot(np.arange(1, len(loss) + 1),
                        _positive(loss) if log else loss, label=label, lw=2)
        val = getattr(item, "validation_scores_", None)
        if val is not None and len(val):
            val = np.asarray(val, dtype=np.float64)
            epochs = np.arange(len(loss) - len(val) + 1, len(loss) + 1)
            scores.append((label, line.get_color(), epochs, val,
                           _score_name(item)))
    if baseline is not None:
        if not hasattr(baseline, "items"):
            baseline = {"baseline": baseline}
        for k, (label, level) in enumerate(baseline.items()):
            ax.axhline(float(level), color="0.3", ls=("--", ":", "-.")[k % 3],
                       lw=1, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, which="major", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    if scores:
        right = ax.twinx()
        for label, colour, epochs, val, _ in scores:
            right.plot(epochs, val, color=colour, ls="--", lw=1.5,
                       marker="." if len(val) < 30 else None,
                       label=f"{label}: validation score")
        kinds = sorted({s[4] for s in scores})
        right.set_ylabel("validation score" + (f" ({kinds[0]})"
                                               if len(kinds) == 1 else ""))
        more_handles, more_names = right.get_legend_handles_labels()
        handles, names = handles + more_handles, names + more_names
    ax.legend(handles, names, fontsize=8)
    return _finish(ax, path, title)


def _score_name(estimator):
    """What an estimator's ``score`` (and validation score) measures."""
    from sklearn.base import is_classifier, is_regressor
    if is_classifier(estimator):
        return "accuracy"
    if is_regressor(estimator):
        return "R^2"
    return "score"


def _flow_name(flow, k):
    """A profile's default label: its name, or an estimator's class and cell."""
    if hasattr(flow, "error_flow") and hasattr(flow, "get_params"):
        cell = flow.get_params().get("cell")
        return type(flow).__name__ + (f" ({cell})" if cell else "")
    return getattr(flow, "name", f"model {k + 1}")


def _estimator_flow(flow, label, X):
    """The profile to draw for ``flow``: a fitted estimator's error flow on
    ``X`` or its recorded ``error_flow_``; anything else as given."""
    if not (hasattr(flow, "error_flow") and hasattr(flow, "get_params")):
        return flow
    if X is not None:
        return flow.error_flow(X)
    recorded = getattr(flow, "error_flow_", None)
    if recorded is None:
        why = ("its recorded error_flow_ is None (the measurement failed)"
               if hasattr(flow, "error_flow_") else
               "it was not fitted with record_error_flow")
        raise ValueError(
            f"the estimator {label!r} has no error flow to plot: {why}. Pass "
            "X (plot_error_flow(est, X=X)) to measure it on those sequences, "
            "fit with record_error_flow='fit', or pass est.error_flow(X)")
    return recorded


def plot_error_signals(signals, *, layer=0, sample=0, which="delta", ax=None,
                       log=True, path=None, title=None):
    """A heat map of ``|delta|`` over time (x) and units (y) for one sequence.

    Parameters
    ----------
    signals : LayerSignals, list of LayerSignals, or array-like
        What :func:`cbptt.diagnostics.error_signals` (or an estimator's
        ``error_signals``) returned, or an array of error signals of shape
        (n_samples, n_timesteps, n_units) or (n_timesteps, n_units).
    layer : int, default=0
        The layer, when ``signals`` is a list.
    sample : int, default=0
        The sequence to show.
    which : str, default="delta"
        ``"delta"`` (all of the layer's error signals; for an LSTM every
        gate's, stacked), ``"delta_c"`` (an LSTM's carousel error) or a
        gate's name (``"i"``, ``"f"``, ``"g"``, ``"o"``).
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    log : bool, default=True
        Logarithmic colour scale (the error spans many orders of magnitude);
        zeros are left blank.
    path : str or path-like, default=None
        Save the figure there.
    title : str, default=None
        The Axes' title.

    Returns
    -------
    ax : matplotlib Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        On a bad ``layer``, ``sample`` or ``which``.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt.plotting import plot_error_signals
    >>> delta = np.random.default_rng(0).standard_normal((20, 5))
    >>> ax = plot_error_signals(delta)
    >>> ax.get_xlabel()
    'time step t'
    """
    if isinstance(signals, (list, tuple)):
        if not 0 <= layer < len(signals):
            raise ValueError(f"layer={layer}; expected 0 <= layer < "
                             f"{len(signals)}")
        signals = signals[layer]
    if hasattr(signals, "delta"):
        if which == "delta":
            data = signals.delta
        elif which == "delta_c":
            if signals.delta_c is None:
                raise ValueError(f"which='delta_c' needs an LSTM layer; this "
                                 f"is a {signals.cell} layer")
            data = signals.delta_c
        else:
            data = signals.gate(which)
        label = which if signals.gates is None or which != "delta" else (
            "delta (gates " + ", ".join(signals.gates) + ")")
    else:
        if which != "delta":
            raise ValueError(f"which={which!r} needs LayerSignals; an array "
                             "holds only delta")
        data, label = signals, "delta"
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 3:
        if not 0 <= sample < data.shape[0]:
            raise ValueError(f"sample={sample}; expected 0 <= sample < "
                             f"{data.shape[0]}")
        data = data[sample]
    if data.ndim != 2:
        raise ValueError(f"error signals have shape {data.shape}; expected "
                         "(n_timesteps, n_units) or (n_samples, n_timesteps, "
                         "n_units)")
    steps = ~np.isnan(data).all(axis=1)           # drop trailing padding
    mag = np.abs(data[:int(steps.sum())]).T       # (units, time)
    ax = _axes(ax, (8, 3.5))
    from matplotlib.colors import LogNorm
    norm = None
    if log:
        pos = mag[mag > 0]
        if pos.size:
            norm = LogNorm(vmin=pos.min(), vmax=pos.max())
        mag = np.where(mag > 0, mag, np.nan)
    image = ax.imshow(mag, aspect="auto", origin="lower", norm=norm,
                      cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label=f"|{label}|")
    ax.set_xlabel("time step t")
    ax.set_ylabel("unit")
    return _finish(ax, path, title)
