"""scikit-learn estimators trained by BPTT: :class:`RNNRegressor`, :class:`RNNClassifier`.

Contract
--------
* ``__init__`` only stores parameters; ``_parameter_constraints`` and
  ``validate_data`` (through :mod:`cbptt._sequences`) validate them.
* A fit builds its new state aside: the estimator's ``__dict__`` is restored
  if the fit raises, so a fitted model is never lost or half-replaced. The
  one exception is ``KeyboardInterrupt`` after at least one finished update:
  training stops at a mini-batch boundary, the fit commits the weights of the
  last finished update, warns and returns (as scikit-learn's MLP does).
* ``save`` writes the public fitted attributes, the private plain data named
  in ``_persistent_attributes`` and the optimizer state (see
  :mod:`cbptt._persistence`); ``_rebuild_from_fitted`` rebuilds the network,
  the flat parameter vector and the optimizer after ``cbptt.load``.
* Training runs the compiled kernels once per mini-batch (per window with
  truncated BPTT): stack forward, compiled output layer and loss, stack BPTT,
  and one fused compiled optimizer update (L2, global-norm clipping,
  non-finite check) on the single flat parameter vector. No Python runs per
  time step.
* Per-fit costs are kept small, so that a warm one-epoch ``fit`` costs about
  what the bare kernels do: each mini-batch is gathered time-major straight
  from the validated batch-first ``X`` (read, never written, and never
  cached between calls: no time-major copy of the whole ``X``), a passing
  set of immutable parameter values skips scikit-learn's re-validation, and
  a fit that draws no random numbers makes no ``RandomState``.
* A non-finite loss, gradient or weight stops training, restores the most
  recent weights (and optimizer state) of the start of that epoch, of the
  epoch before or of the call whose training loss and predictions on the
  training data are finite, and warns with a ``ConvergenceWarning``; when
  there are none, the fit raises ``FloatingPointError`` and the estimator
  is left as it was.
* Predictions (``predict``, ``predict_proba``, ``score``, ``error_flow``,
  ``error_signals``) refuse network values that left the working dtype's
  range, naming the sample and step (``_network.OverflowInX``, a
  ``ValueError``).
"""
import numbers
import signal
import threading
import time
import warnings
from collections.abc import Mapping

import numpy as np
from sklearn.base import (BaseEstimator, ClassifierMixin, RegressorMixin,
                          _fit_context)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import (_check_partial_fit_first_call,
                                      check_classification_targets)
from sklearn.utils.validation import check_array, check_is_fitted

from cbptt import _persistence, _scan
from cbptt._activations import ACTIVATIONS
from cbptt._cells import CELLS, make_cell
from cbptt._docs import DOCS_URL
from cbptt._network import (Network, NonFiniteError, OverflowInX,
                            SoftmaxCrossEntropy, SquaredError, Trainer,
                            Workspace, DataGuard, predict_raw)
from cbptt._optim import Optimizer
from cbptt._sequences import (check_real_numbers, check_target_shape,
                              checked_array, refuse_nonfinite_rows,
                              refuse_nonfinite_targets, ROW_TARGET,
                              STEP_TARGETS,
                              sample_weights, score_weights,
                              sequence_targets, validate_sequences)
from cbptt._train import gather_batch_first
from cbptt._validation import colmax_abs

__all__ = ["RNNRegressor", "RNNClassifier"]

# Parameters that fix the network's shape: warm_start and partial_fit need
# them unchanged.
_ARCHITECTURE = ("cell", "activation", "hidden_layer_sizes", "output")

# record_error_flow measures on at most this many training sequences.
_ERROR_FLOW_SAMPLES = 64

# Parameter values whose validation by scikit-learn is remembered (see
# _BaseRNN._validate_params): immutable scalars of exactly these types, and
# tuples of them. Keys pair every value with its type, so 1, 1.0 and True
# (equal in Python) never share an entry.
_IMMUTABLE_PARAM_TYPES = frozenset({type(None), bool, int, float, str,
                                    np.float64, np.float32, np.int64,
                                    np.int32, np.bool_})
_VALIDATED_PARAMS = {}          # (class, key of the values) -> True
_VALIDATED_PARAMS_MAX = 256
_PARAM_NAMES = {}              # class -> its sorted parameter names


def _is_valid_seed(random_state):
    """Whether ``check_random_state(random_state)`` returns without raising
    (None, a RandomState, or an int in ``[0, 2**32 - 1]``), without making
    the RandomState."""
    if random_state is None or random_state is np.random or isinstance(
            random_state, np.random.RandomState):
        return True
    return bool(isinstance(random_state, numbers.Integral)
                and 0 <= random_state <= 2**32 - 1)


def _params_key(values):
    """A hashable key that determines ``values`` (a tuple of parameter
    values) exactly, or None when one of them is mutable or of another type
    (then its validation is not remembered)."""
    key = []
    for v in values:
        t = type(v)
        if t is tuple:
            if not all(type(e) in _IMMUTABLE_PARAM_TYPES for e in v):
                return None
            key.append((t, tuple((type(e), e) for e in v)))
        elif t in _IMMUTABLE_PARAM_TYPES:
            key.append((t, v))
        else:
            return None
    return tuple(key)


def _hidden_sizes(hidden_layer_sizes):
    sizes = hidden_layer_sizes
    if isinstance(sizes, numbers.Integral):
        sizes = (sizes,)
    sizes = tuple(sizes)
    if (len(sizes) == 0 or not all(isinstance(h, numbers.Integral)
                                   and not isinstance(h, bool) for h in sizes)
            or min(sizes) < 1):
        raise ValueError(f"hidden_layer_sizes={hidden_layer_sizes!r}; expected "
                         "a non-empty tuple of positive ints, one per layer")
    return tuple(int(h) for h in sizes)


def _as_numpy(value):
    """A torch tensor (without importing torch) or array-like as an ndarray."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _training_loss(est, net, params, seqs, targets, l2_div, weights=None):
    """The training loss (mean loss, weighted by ``weights`` (a
    :class:`SampleWeights` or None), plus the L2 penalty ``alpha/2 |w|^2 /
    l2_div``, float64) of the weights ``params`` on every training
    sequence, or None when a prediction left the dtype's range
    (:class:`OverflowInX`)."""
    output = est._arch["output"]
    try:
        z = predict_raw(net, params, seqs.data, seqs.lengths, output,
                        batch_first=True, check=True)
    except OverflowInX:
        return None
    z = z.astype(np.float64)
    if output == "last":
        mask = np.ones(z.shape[0], bool)
    else:
        z = np.swapaxes(z, 0, 1)                        # (N, T, k)
        mask = seqs.valid_mask().T
    z = z[mask]
    y = np.asarray(targets)[mask] if output == "sequence" else targets
    sw = None
    if weights is not None:
        sw = np.asarray(weights.rows, np.float64)
        sw = sw.reshape(mask.shape)[mask] if output == "sequence" else sw
    with np.errstate(over="ignore", invalid="ignore"):
        losses = est._sample_losses(z, y)
        mean = (losses.mean() if sw is None
                else float(sw @ losses) / float(sw.sum()))
        w = params[:net.n_decay].astype(np.float64)
        return float(mean + 0.5 * est.alpha * (w @ w) / l2_div)


# Above this magnitude r2_float64 scales: (2 * 2^480)^2 summed over up to
# 2^50 rows stays below float64's 2^1024.
_R2_SCALE_ABOVE = 2.0 ** 480


def r2_float64(y_true, y_pred, sample_weight=None):
    """scikit-learn's ``r2_score`` in float64 (a float32 model's squared
    residuals overflow float32 from |y - y_pred| ~ 1.8e19), with both sides
    divided by a power of two when their squares could overflow float64:
    R^2 is scale-free and the division exact, so the score is that of the
    values themselves, finite for finite values."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    big = max(np.abs(y_true).max(initial=0.0), np.abs(y_pred).max(initial=0.0))
    if _R2_SCALE_ABOVE < big < np.inf:
        shift = -int(np.ceil(np.log2(big)))
        y_true, y_pred = np.ldexp(y_true, shift), np.ldexp(y_pred, shift)
    return r2_score(y_true, y_pred, sample_weight=sample_weight)


def _fall_back(est, net, params, opt, seqs, targets, l2_div, weights, snaps):
    """After a divergence: put the most recent of ``snaps`` (the weights and
    optimizer state at the start of the failed epoch, of the epoch before,
    of the call; None where there is none) whose training loss and
    predictions on the training data are finite into ``params`` and
    ``opt``, drop the epochs after it from the history, and say which it
    is; None (nothing changed) when none qualifies."""
    seen = set()
    for back, snap in enumerate(snaps):
        if snap is None or id(snap) in seen:
            continue
        seen.add(id(snap))
        loss = _training_loss(est, net, snap[0], seqs, targets, l2_div,
                              weights)
        if loss is None or not np.isfinite(loss):
            continue
        drop = est.n_iter_ if back == 2 else back
        np.copyto(params, snap[0])
        opt.restore(snap[1])
        if drop:
            del est.loss_curve_[-drop:]
            est.n_iter_ -= drop
            for name in ("validation_scores_", "error_flow_history_"):
                history = getattr(est, name, None)
                if isinstance(history, list):
                    del history[-drop:]
            est.loss_ = est.loss_curve_[-1] if est.loss_curve_ else None
            if est.best_loss_ is not None:
                mine = est.loss_curve_[len(est.loss_curve_) - est.n_iter_:]
                est.best_loss_ = min(mine, default=np.inf)
        n = len(est.loss_curve_)
        return (f"training loss {loss:.6g}, from the end of epoch {n}" if n
                else f"training loss {loss:.6g}, the weights this call "
                "started from")
    return None


def _check_converted_finite(layers, out, dtype):
    """Every parameter finite once converted to the network's ``dtype``.

    Finite values can still overflow on the way in (PyTorch's ``bias_ih +
    bias_hh``, a float64 value beyond float32's range); a model holding
    them would predict a constant, save, and then fail to load.
    """
    groups = [(f"layer {k}", p, k) for k, p in enumerate(layers)]
    for what, p, k in groups + [("the output layer", out, None)]:
        for name, view in p.items():
            if np.isfinite(view).all():
                continue
            if k is None:
                keys = f"state_dict['out.{name}']"
            elif name == "bias":
                keys = (f"state_dict['bias_ih_l{k}'] + "
                        f"state_dict['bias_hh_l{k}']")
            else:
                keys = f"state_dict['{name}_l{k}']"
            raise ValueError(
                f"{keys} ({what}'s {name}) is not finite after conversion to "
                f"{np.dtype(dtype)}: its values overflow the {np.dtype(dtype)} "
                f"range (largest finite {float(np.finfo(dtype).max):.3g}); "
                "expected parameters that stay finite")


def _params_from_coefs(net, coefs):
    """The flat parameter vector of ``net`` from loaded ``coefs_`` (one dict
    of arrays per recurrent layer and the output layer); raises
    ``ValueError`` when their number, keys, shapes or dtypes disagree with
    the network, or the converted values are not finite."""
    if not isinstance(coefs, list) or len(coefs) != net.n_layers + 1:
        raise ValueError(f"coefs_ has {len(coefs)} entries; expected "
                         f"{net.n_layers + 1} (one per recurrent layer "
                         "and the output layer)")
    # the byte order does not count (a file written on a big-endian machine
    # holds '>f4'): the parameters are native float32 or float64
    dtypes = {np.asarray(a).dtype.newbyteorder("=") for d in coefs
              for a in d.values()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in (np.float32, np.float64):
        raise ValueError("coefs_ holds arrays of dtypes "
                         f"{sorted(map(str, dtypes))}; expected all "
                         "float32 or all float64")
    params = np.empty(net.size, dtypes.pop())
    layers, out = net.views(params)
    for k, (views, saved) in enumerate(zip(layers + [out], coefs)):
        if not isinstance(saved, dict) or set(saved) != set(views):
            raise ValueError(f"coefs_[{k}] has keys {sorted(saved)}; "
                             f"expected {sorted(views)}")
        for name, view in views.items():
            if np.shape(saved[name]) != view.shape:
                raise ValueError(
                    f"coefs_[{k}][{name!r}] has shape "
                    f"{np.shape(saved[name])}; expected {view.shape}")
            view[...] = saved[name]
    _check_converted_finite(layers, out, params.dtype)
    return params


def _is_int(v, least=0):
    return (isinstance(v, numbers.Integral) and not isinstance(v, bool)
            and v >= least)


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _check_loaded_attributes(est, optimizer_state):
    """The types of the fitted attributes a loaded estimator continues with
    (``partial_fit`` appends to ``loss_curve_``, compares ``best_loss_``,
    counts ``n_iter_`` ...): a file could hold a string or a dict there and
    fail much later. Raises ValueError naming the attribute."""
    def real_or_none(v):
        return v is None or _is_real(v)

    def real_list(v):
        return isinstance(v, list) and all(_is_real(e) for e in v)

    checks = {
        "n_iter_": (lambda v: _is_int(v), "an int >= 0"),
        "_no_improvement_count": (lambda v: _is_int(v), "an int >= 0"),
        "n_features_in_": (lambda v: _is_int(v, 1), "a positive int"),
        "loss_": (real_or_none, "a float or None"),
        "best_loss_": (real_or_none, "a float or None"),
        "best_validation_score_": (real_or_none, "a float or None"),
        "loss_curve_": (real_list, "a list of floats"),
        "validation_scores_": (lambda v: v is None or real_list(v),
                               "a list of floats or None"),
        "_y_ndim": (lambda v: _is_int(v, 1), "a positive int"),
    }
    for name, (ok, expected) in checks.items():
        if name in vars(est) and not ok(vars(est)[name]):
            raise ValueError(f"{name} is {vars(est)[name]!r}; expected "
                             f"{expected}")
    if optimizer_state is None:
        return
    s = optimizer_state
    if (not isinstance(s, dict) or set(s) != {"solver", "t", "s1", "s2"}
            or not isinstance(s["solver"], str)
            or not _is_int(s["t"]) or s["t"] >= 2**62
            or not isinstance(s["s1"], np.ndarray)
            or not (s["s2"] is None or isinstance(s["s2"], np.ndarray))):
        raise ValueError("the optimizer state is malformed; expected "
                         "{'solver': str, 't': int in [0, 2**62), 's1': "
                         "array, 's2': array or None}")


def _check_coef_shapes(cell, n_features, hidden, n_outputs, coefs):
    """``coefs_`` holds every parameter of the network with the shapes the
    sizes imply, checked before the network's vectors are allocated: the
    sizes are then those of arrays that exist (a file cannot make a load
    allocate what its own arrays do not hold)."""
    sizes = (n_features,) + tuple(hidden)
    expected = [{n: s for n, s, _ in cell.param_specs(I, H)}
                for I, H in zip(sizes[:-1], sizes[1:])]
    expected.append({"weight": (n_outputs, sizes[-1]), "bias": (n_outputs,)})
    if not isinstance(coefs, list) or len(coefs) != len(expected):
        raise ValueError(f"coefs_ has {len(coefs) if isinstance(coefs, list) else coefs!r} "
                         f"entries; expected {len(expected)} (one per "
                         "recurrent layer and the output layer)")
    for k, (want, got) in enumerate(zip(expected, coefs)):
        if not isinstance(got, dict) or set(got) != set(want):
            raise ValueError(f"coefs_[{k}] has keys "
                             f"{sorted(got) if isinstance(got, dict) else got!r}; "
                             f"expected {sorted(want)}")
        for name, shape in want.items():
            a = got[name]
            if not isinstance(a, np.ndarray) or a.shape != tuple(shape):
                raise ValueError(f"coefs_[{k}][{name!r}] has shape "
                                 f"{np.shape(a)}; expected {tuple(shape)}")


def _validation_weights(weights, idx_val):
    """The sample weights of the validation sequences ``idx_val`` (as
    ``weights.rows``); refused when they are all zero (the validation score
    would be undefined)."""
    rows = weights.rows[idx_val]
    if not rows.sum() > 0:
        raise ValueError("sample_weight is zero for every validation sequence "
                         "of early_stopping; change random_state or "
                         "validation_fraction, or give more sequences a "
                         "positive weight")
    return rows


class _Interrupt:
    """Ctrl-C during training: stop at the next mini-batch boundary.

    While active (``with``), in the main thread and when SIGINT has Python's
    default handler, a first SIGINT only sets :attr:`pending`; the training
    loop calls :meth:`checkpoint` after every mini-batch (and epoch), which
    raises ``KeyboardInterrupt`` there, so the weights are those of a
    finished update. A second SIGINT raises at once (as does any
    ``KeyboardInterrupt`` when the handler cannot be installed); the weights
    are then still those of the last compiled update, which is one call.
    """

    def __init__(self, optimizer):
        self.pending = False
        self.updates_before = optimizer.t
        self.optimizer = optimizer
        self.epoch = self.batch = 0
        self._previous = None

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False

    def _handler(self, signum, frame):
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def checkpoint(self, epoch, batch):
        """Record a finished mini-batch (``batch`` 0: a finished epoch)."""
        self.epoch, self.batch = epoch, batch
        if self.pending:
            raise KeyboardInterrupt

    @property
    def updated(self):
        """Whether any weight update finished since the start."""
        return self.optimizer.t != self.updates_before

    def message(self, n_iter):
        if self.epoch == 0:
            where = "in its first mini-batch"
        elif self.batch == 0:
            where = f"after epoch {self.epoch}"
        else:
            where = f"in epoch {self.epoch} after mini-batch {self.batch}"
        return interrupted_message("fit", where, n_iter,
                                   "Call partial_fit, or fit with "
                                   "warm_start=True,")


def interrupted_message(caller, where, n_iter, resume):
    """The warning of a training call that Ctrl-C stopped with a kept model.

    ``where`` says where it stopped, ``n_iter`` the complete epochs counted
    in ``n_iter_``, ``resume`` how to train on (the sentence's start).
    """
    return (f"{caller} was interrupted by KeyboardInterrupt {where}; the "
            "model keeps the weights of the last finished update "
            f"({n_iter} complete epoch(s) counted in n_iter_). {resume} to "
            "train on.")


_PARAMETERS = """
    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(32,)
        Units of each stacked recurrent layer, bottom first.

    cell : {"lstm", "lstm1997", "elman", "cec", "gru"}, default="lstm"
        The recurrent layer. ``"lstm"``: LSTM with a forget gate (Gers et al.,
        2000; gates packed i, f, g, o like PyTorch). ``"lstm1997"``: the
        original LSTM without a forget gate (Hochreiter & Schmidhuber, 1997).
        ``"elman"``: the simple recurrent layer ``h(t) = f(W_ih x(t) +
        W_hh h(t-1) + b)``. ``"cec"``: the constant error carousel
        ``s(t) = s(t-1) + W_ih x(t) + b`` alone (a linear accumulator).
        ``"gru"``: PyTorch's GRU (gates r, z, n; ``bias_ih`` and ``bias_hh``
        kept apart, initialised like ``torch.nn.GRU``).

    activation : {"tanh", "logistic", "relu", "identity"}, default="tanh"
        The Elman cell's nonlinearity ``f`` (ignored by the other cells).

    forget_bias : float, default=1.0
        Initial bias of the LSTM's forget gate (keeps the memory open early
        in training; ignored by the other cells).

    output : {"last", "sequence"}, default="last"
        ``"last"``: one target per sequence, read from each sequence's own
        last step. ``"sequence"``: one target per time step.

    solver : {"adam", "sgd", "rmsprop"}, default="adam"
        ``"adam"`` (Kingma & Ba), ``"sgd"`` with ``momentum`` (Nesterov's
        when ``nesterovs_momentum``), or ``"rmsprop"`` (decay ``rho``).

    learning_rate_init : float, default=0.001
        The step size.

    alpha : float, default=0.0001
        Strength of the L2 penalty on the weight matrices (not the biases),
        divided by the mini-batch size as in scikit-learn's MLP.

    batch_size : int or "auto", default="auto"
        Sequences per mini-batch; ``"auto"`` is ``min(32, n_samples)``.

    max_iter : int, default=200
        Maximum number of epochs (passes over the training sequences).

    shuffle : bool, default=True
        Shuffle the sequences before every epoch.

    tol : float, default=1e-4
        Training stops when the training loss (or, with ``early_stopping``,
        the validation score) fails to improve by ``tol`` for
        ``n_iter_no_change`` consecutive epochs.

    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the sequences (stratified for the
        classifier when possible), stop when their score stops improving, and
        restore the weights of the best epoch.

    validation_fraction : float, default=0.1
        Share of the sequences held out for early stopping.

    beta_1 : float, default=0.9
        Adam's decay rate of the first moment estimate.

    beta_2 : float, default=0.999
        Adam's decay rate of the second moment estimate.

    epsilon : float, default=1e-8
        Adam's and RMSprop's denominator guard.

    momentum : float, default=0.9
        SGD's momentum.

    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum with ``solver="sgd"``.

    rho : float, default=0.9
        RMSprop's decay rate of the mean squared gradient.

    clip_norm : float or None, default=1.0
        Global gradient-norm clipping (Pascanu et al., 2013): a mini-batch
        gradient longer than ``clip_norm`` is rescaled to that length before
        the update. None turns clipping off.

    bptt_truncate : int or None, default=None
        None: full BPTT over each sequence. ``k``: truncated BPTT in windows
        of ``k`` steps; each window is forwarded from the state the previous
        window ended in (computed with the weights before that window's
        update), back-propagated within the window, and followed by its own
        weight update. With ``output="last"`` only the window holding a
        sequence's last step carries its loss.

    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the validation split and the shuffling.
        An int makes fits bitwise reproducible.

    warm_start : bool, default=False
        Continue from the fitted weights in the next :meth:`fit` (the
        architecture must be unchanged).

    verbose : int, default=0
        Print one line per epoch: epoch, training loss, validation score
        (with early stopping), seconds.

    record_error_flow : {None, "fit", "epoch"}, default=None
        Record the error flow through the first recurrent layer while
        training (see :meth:`error_flow`). ``"fit"``: at the end of every
        :meth:`fit` and :meth:`partial_fit`, set ``error_flow_``.
        ``"epoch"``: also append each epoch's ``ratio`` to
        ``error_flow_history_``. It is measured on at most 64 of the
        training sequences, ``X[::ceil(n_samples / 64)]``, with the defaults
        of :meth:`error_flow` (a random direction with seed 0, threshold
        1e-3), so ``error_flow_`` equals ``error_flow(X[::step])``. Each
        measurement costs about one forward and backward pass over those
        sequences in float64 (for ``error_flow_`` of an Elman layer also an
        SVD per sequence and step, for its step factors). None records
        nothing and costs nothing.

    on_nonfinite : {"warn", "raise"}, default="warn"
        What a loss, gradient or weight that becomes NaN or infinite during
        training does. ``"warn"``: training stops, the last weights whose
        training loss and predictions on the training data are finite are
        kept (from the start of that epoch, of the epoch before, or of the
        call; the epochs after them leave ``n_iter_`` and ``loss_curve_``),
        and a ``ConvergenceWarning`` names the epoch and the remedies; when
        no such weights exist, a ``FloatingPointError`` as with
        ``"raise"``. ``"raise"``: a ``FloatingPointError`` with the same
        message, and the estimator is left as it was before the call
        (unfitted, or the previous model).
"""

_ATTRIBUTES = """
    n_features_in_ : int
        Features seen during fit (see Notes for 2-D input).

    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Column names of a 2-D ``X`` given as a DataFrame with string names.

    n_outputs_ : int
        Units of the output layer.

    n_iter_ : int
        Epochs run by the last :meth:`fit` (plus one per :meth:`partial_fit`).

    loss_ : float or None
        Training loss of the last epoch (mean loss over the epoch's targets
        plus the L2 penalty).

    loss_curve_ : list of float
        Training loss of every epoch since the model was created.

    best_loss_ : float or None
        Lowest training loss of the current fit; None with early stopping.

    validation_scores_ : list of float or None
        Validation score ({score}) of every epoch; None without early
        stopping.

    best_validation_score_ : float or None
        Best validation score; its weights were restored. None without early
        stopping.

    coefs_ : list of dict
        The weights, as read-only views: one dict per recurrent layer with
        PyTorch-style names ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``
        (not for the CEC) and ``bias (G*H,)`` (PyTorch's ``bias_ih +
        bias_hh``; a cell that keeps the recurrent side's bias apart has
        ``bias_ih`` and ``bias_hh`` instead), where ``G`` is the number of
        the cell's gates (4 for ``"lstm"``, 3 for ``"lstm1997"``) and 1 for
        a cell without gates; then the output layer's ``weight (n_outputs_,
        H)`` and ``bias (n_outputs_,)``.

    error_flow_ : cbptt.diagnostics.ErrorFlow or None
        Only with ``record_error_flow`` set: the error flow of the fitted
        first layer at the end of the last :meth:`fit` or
        :meth:`partial_fit` (with early stopping: of the restored best
        weights), measured on ``X[::ceil(n_samples / 64)]`` of that call;
        absent after a call stopped by Ctrl-C.
        None if the measurement failed (a ``RuntimeWarning`` says why).
        Not written by ``save`` (pickle keeps it).

    error_flow_history_ : list of ndarray of shape (n_lags,)
        Only with ``record_error_flow="epoch"``: the ``ratio`` array of the
        error flow after each epoch counted in ``n_iter_`` (reset by
        :meth:`fit`, extended by :meth:`partial_fit`), on the same
        sequences as ``error_flow_``; ``np.vstack`` gives an ``(n_epochs,
        n_lags)`` array when every call had the same longest sequence.
        Entry ``k`` goes with ``loss_curve_[-n_iter_ + k]``; None where the
        measurement failed. Not written by ``save`` (pickle keeps it): after
        ``cbptt.load``, or when ``"epoch"`` is switched on between
        :meth:`partial_fit` calls, it starts anew and covers only the last
        ``len(error_flow_history_)`` epochs.
"""

_NOTES = """
    Notes
    -----
    **Input.** ``X`` is a 3-D array ``(n_samples, n_timesteps, n_features)``,
    a 2-D array ``(n_samples, n_timesteps)`` of univariate series, or a list
    of ``(n_timesteps_i, n_features)`` arrays of different lengths: always
    channels-last, time before features, as in tslearn and Keras. aeon and
    sktime hold series channels-first, ``(n_cases, n_channels,
    n_timepoints)``; read as cbptt's layout, their channels would be time
    steps and their time points features, so convert them first:
    ``X.transpose(0, 2, 1)``, and for aeon's list of unequal-length
    ``(n_channels, n_timepoints_i)`` arrays ``[x.T for x in X]``. A feature
    count that does not match the fitted one is an error that says how
    ``X`` was read. :class:`cbptt.preprocessing.SequenceScaler` standardises
    each feature over all steps (in a Pipeline before the estimator).
    Variable lengths may also be
    given as trailing NaN padding (every feature of every step after a
    sequence's end). Padded steps change no state that is ever read and add
    no loss; with ``output="last"`` each sequence is read at its own last
    step. NaN anywhere else, or infinity, is an error. float32 input trains
    and predicts in float32; other input in float64.

    As for every scikit-learn estimator, ``n_features_in_`` counts the
    columns of a 2-D ``X`` (here: time steps), and later 2-D input must have
    as many; a 3-D ``X`` or a list may have any length, and for them
    ``n_features_in_`` is the number of features per step.

    **Model.** The recurrent layers feed a dense output layer on the top
    layer's states. Initial weights: Glorot-uniform input weights,
    orthogonal recurrent weights (per gate), zero biases except the forget
    gate's ``forget_bias``.

    **Training.** Each mini-batch runs in compiled code: the forward kernel
    of every layer over all steps, the output layer, the loss and its
    gradient, exact BPTT through the stack, and one fused update of the
    single flat parameter vector (L2, global-norm clipping, the solver).
    Python runs once per mini-batch, never per time step. If the loss, a
    gradient or a weight becomes NaN or infinite, training stops, the last
    weights whose training loss and predictions are finite are kept and a
    ``ConvergenceWarning`` names the epoch and the remedies (with no such
    weights, a ``FloatingPointError``). Predictions refuse, with a
    ``ValueError`` naming the sample and step, network values that left the
    working dtype's range (a saturated ``tanh(inf) = 1`` would hide them).
    A fit that
    raises leaves a previously fitted estimator unchanged. Ctrl-C
    (``KeyboardInterrupt``) stops training at the end of the current
    mini-batch and keeps the weights of the last finished update, with a
    warning; the fit then returns normally.

    **Saving.** :meth:`save` writes the fitted estimator (weights, fitted
    attributes, optimizer state) to a ZIP of JSON and ``.npy`` files that
    :func:`cbptt.load` reads back without unpickling anything; pickle works
    too.

    **PyTorch.** :meth:`to_torch_state_dict` and
    :meth:`from_torch_state_dict` move the weights to and from
    ``torch.nn.LSTM`` (``"lstm"``; ``"lstm1997"`` as an ``nn.LSTM`` whose
    forget gate is fixed open) or ``torch.nn.RNN`` (``"elman"`` with tanh or
    relu), plus ``torch.nn.Linear`` for ``out.weight`` and ``out.bias``.

    References
    ----------
    Hochreiter, S. and Schmidhuber, J. (1997). Long short-term memory.
    Neural Computation 9(8).

    Gers, F. A., Schmidhuber, J. and Cummins, F. (2000). Learning to forget:
    continual prediction with LSTM. Neural Computation 12(10).

    Elman, J. L. (1990). Finding structure in time. Cognitive Science 14(2).

    Werbos, P. J. (1990). Backpropagation through time: what it does and how
    to do it. Proceedings of the IEEE 78(10).

    Pascanu, R., Mikolov, T. and Bengio, Y. (2013). On the difficulty of
    training recurrent neural networks. ICML.

    Kingma, D. P. and Ba, J. (2015). Adam: a method for stochastic
    optimization. ICLR.
"""


# fit's X and sample_weight, shared by both estimators' fit docstrings.
_FIT_X = """\
        X : array-like of shape (n_samples, n_timesteps, n_features) or \
(n_samples, n_timesteps), or list of (n_timesteps_i, n_features) arrays
            The input sequences, channels-last: axis 1 is time, axis 2 the
            features of a step (variable lengths as a list or as trailing
            NaN padding). A 2-D ``X`` is ``n_samples`` univariate series.
            Data of aeon or sktime is channels-first, ``(n_cases,
            n_channels, n_timepoints)``: pass ``X.transpose(0, 2, 1)`` (a
            list of ``(n_channels, n_timepoints_i)`` arrays: ``[x.T for x
            in X]``)."""

_SAMPLE_WEIGHT = """\
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the sequences: the loss is the weighted mean
            ``sum_n w_n l_n / sum_n w_n`` over the targets (each step of a
            sequence takes its weight with ``output="sequence"``), and the
            L2 term of a mini-batch is divided by its summed weight instead
            of its size, as in scikit-learn's MLP, so an integer weight
            counts as that many copies of the sequence and a weight of 0
            drops it. With ``output="sequence"`` also one weight per step:
            ``(n_samples, n_timesteps)``, or a list of ``(n_timesteps_i,)``
            arrays for list ``X``. Early stopping weights the validation
            score the same way. Weights must be finite and non-negative,
            with a positive sum."""


class _Batches:
    """An epoch's mini-batches, gathered time-major for :meth:`Trainer.batch`.

    ``batches(order, in_order)`` yields ``(number, args)`` per batch of
    ``B`` rows of ``order``: ``args`` is ``(x, lengths, y)`` plus, with
    sample weights, the rows' weights and their sum (the L2 divisor). The
    inputs ``x (T_b, B, F)`` (``T_b`` the batch's longest sequence), the
    per-step targets ``(T_b, B, K)`` and weights ``(T_b, B, 1)`` of
    ``output="sequence"`` are copied into buffers allocated once per fit;
    the targets of ``output="last"`` are a view of the training targets when
    the rows come in order (``in_order``).
    """

    def __init__(self, seqs, targets, weights, B, output, dtype):
        n, T, F = seqs.data.shape
        self.data, self.lengths = seqs.data, seqs.lengths
        self.B, self.T, self.F = B, T, F
        self.weights = weights
        self.last = output == "last"
        self.xbuf = np.empty(T * B * F, dtype)
        if self.last:
            self.targets = targets
        else:                           # batch-first (N, T, K) like X
            self.targets = np.ascontiguousarray(targets).reshape(n, T, -1)
            self.K = self.targets.shape[2]
            self.ybuf = np.empty(T * B * self.K, targets.dtype)
            if weights is not None:
                self.wbuf = np.empty(T * B, dtype)

    def __call__(self, order, in_order):
        B, F = self.B, self.F
        for s in range(0, order.size, B):
            rows = order[s:s + B]
            Bc = rows.size
            lb = None if self.lengths is None else self.lengths[rows]
            Tb = self.T if lb is None else int(lb.max())
            xb = self.xbuf[:Tb * Bc * F].reshape(Tb, Bc, F)
            gather_batch_first(self.data, rows, lb, xb)
            if self.last:
                yb = self.targets[s:s + B] if in_order else self.targets[rows]
            else:
                yb = self.ybuf[:Tb * Bc * self.K].reshape(Tb, Bc, self.K)
                gather_batch_first(self.targets, rows, None, yb)
            if self.weights is None:
                yield s // B + 1, (xb, lb, yb)
            else:
                yield s // B + 1, (xb, lb, yb, *self._weights(rows, lb, Tb))

    def _weights(self, rows, lengths, T):
        """The rows' sample weights (time-major ``(T, B, 1)`` for
        output="sequence") and the L2 divisor ``sum_b w_b``."""
        w = self.weights
        if self.last:
            wb = w.rows[rows]
        else:
            wb = self.wbuf[:T * rows.size].reshape(T, rows.size, 1)
            gather_batch_first(w.rows, rows, lengths, wb)
        return wb, float(w.per_sequence[rows].sum())


class _BaseRNN(BaseEstimator):
    """Shared machinery of the RNN estimators (not for direct use)."""

    # Diagnostics that save() leaves out (ErrorFlow objects, NaN-padded
    # ratios): a loaded estimator lacks them; pickle keeps them.
    _transient_attributes = ("error_flow_", "error_flow_history_")

    # scikit-learn's HTML repr (a notebook's view of an estimator) links the
    # estimator to this page of the documentation site and each parameter to
    # its entry there; sklearn.base fills in estimator_module ("cbptt", the
    # module path up to the first private part) and estimator_name.
    _doc_link_module = "cbptt"
    _doc_link_template = (DOCS_URL + "api/generated/"
                          "{estimator_module}.{estimator_name}.html")

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None,
                                                      closed="left")],
        "cell": [StrOptions(set(CELLS))],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "forget_bias": [Interval(numbers.Real, None, None, closed="neither")],
        "output": [StrOptions({"last", "sequence"})],
        "solver": [StrOptions({"sgd", "adam", "rmsprop"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}),
                       Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"),
                             Options(numbers.Real, {np.inf})],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "rho": [Interval(numbers.Real, 0, 1, closed="left")],
        "clip_norm": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "bptt_truncate": [None, Interval(numbers.Integral, 1, None,
                                         closed="left")],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "record_error_flow": [None, StrOptions({"fit", "epoch"})],
        "on_nonfinite": [StrOptions({"warn", "raise"})],
    }

    def __init__(self, hidden_layer_sizes=(32,), *, cell="lstm",
                 activation="tanh", forget_bias=1.0, output="last",
                 solver="adam", learning_rate_init=0.001, alpha=0.0001,
                 batch_size="auto", max_iter=200, shuffle=True, tol=1e-4,
                 n_iter_no_change=10, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, momentum=0.9, nesterovs_momentum=True, rho=0.9,
                 clip_norm=1.0, bptt_truncate=None, random_state=None,
                 warm_start=False, verbose=0, record_error_flow=None,
                 on_nonfinite="warn"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.cell = cell
        self.activation = activation
        self.forget_bias = forget_bias
        self.output = output
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.rho = rho
        self.clip_norm = clip_norm
        self.bptt_truncate = bptt_truncate
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.record_error_flow = record_error_flow
        self.on_nonfinite = on_nonfinite

    # ----------------------------------------------------------- fitting --
    def _validate_params(self):
        """scikit-learn's parameter validation, remembered per set of values.

        scikit-learn's ``_fit_context`` calls this at every ``fit``;
        ``get_params`` (a signature inspection) and the constraint checks
        cost about as much as a small network's mini-batch. The outcome
        depends only on the class's ``_parameter_constraints`` and the
        values, so once a set of immutable values (see :func:`_params_key`)
        passed, the same set passes again without the checks. Any other
        value, or a set not seen before, goes through scikit-learn's
        validation, which raises its own errors; only a passing set is
        remembered.
        """
        cls = type(self)
        if (cls.get_params is not BaseEstimator.get_params
                or cls._get_param_names.__func__
                is not BaseEstimator._get_param_names.__func__):
            return super()._validate_params()
        names = _PARAM_NAMES.get(cls)
        if names is None:
            names = tuple(cls._get_param_names())
        key = _params_key(tuple(getattr(self, n) for n in names))
        if key is not None and _VALIDATED_PARAMS.get((cls, names, key)):
            return None
        super()._validate_params()
        _PARAM_NAMES[cls] = names
        if key is not None:
            if len(_VALIDATED_PARAMS) >= _VALIDATED_PARAMS_MAX:
                _VALIDATED_PARAMS.clear()
            _VALIDATED_PARAMS[(cls, names, key)] = True
        return None

    def _fit(self, X, y, incremental, classes=None, sample_weight=None):
        if incremental:
            # scikit-learn's _fit_context skips the validation in partial_fit
            # once fitted; the parameters may have changed since (set_params).
            self._validate_params()
        saved = dict(self.__dict__)
        # The lists (loss_curve_, ...) grow in place during training: their
        # items are kept too, and put back into the same list objects.
        items = {k: list(v) for k, v in saved.items() if isinstance(v, list)}
        try:
            interrupted = self._fit_unsafe(X, y, incremental, classes,
                                           sample_weight)
        except BaseException:
            # Also a KeyboardInterrupt before any update finished.
            self.__dict__.clear()
            self.__dict__.update(saved)
            for k, v in items.items():
                saved[k][:] = v
            raise
        # The warning's text when Ctrl-C stopped this call early (else None):
        # a caller that chains calls (cbptt.dask.fit_incremental) must stop
        # too, and learns it here.
        self._interrupted = interrupted
        if interrupted is not None:
            warnings.warn(interrupted, UserWarning)
        return self

    def _fit_unsafe(self, X, y, incremental, classes, sample_weight=None):
        self._before_fit(incremental, classes)
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True; "
                             "set early_stopping=False or call fit")
        hidden = _hidden_sizes(self.hidden_layer_sizes)
        cold = not hasattr(self, "_params") or (
            not self.warm_start and not incremental)
        if not cold:
            self._check_same_architecture(hidden)
        dtype = None if cold else self._params.dtype
        seqs = validate_sequences(self, X, reset=cold, dtype=dtype)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, "
                             "but the target y is None")
        targets, n_outputs = self._encode_targets(y, seqs, cold, incremental,
                                                  classes)
        weights = sample_weights(sample_weight, seqs, self._arch_output(cold))
        # Making a seeded RandomState costs about 0.1 ms: a warm fit that
        # draws nothing (no shuffling, no validation split) makes none (see
        # _fit_epochs). An invalid random_state still raises here.
        rng = (check_random_state(self.random_state)
               if cold or not _is_valid_seed(self.random_state) else None)
        if cold:
            net, params = self._initialize(seqs, hidden, n_outputs, rng)
            old_opt = None
        else:
            net = self._net
            if n_outputs != net.n_outputs:
                raise ValueError(f"y has {n_outputs} outputs but the fitted "
                                 f"model has {net.n_outputs}; set "
                                 "warm_start=False to refit")
            params = self._params.copy()
            old_opt = self._optimizer if incremental else None
        # Data the network overflows on would train it on saturated garbage
        # (tanh(inf) = 1 keeps the loss finite): refused as predict does,
        # before training and (weights grown that far) after each epoch;
        # unbounded states in every training window (DataGuard).
        self._check_loss_range(targets, weights, params, net)
        guard = DataGuard(net, seqs.data, seqs.lengths, self._arch["output"])
        guard.check(params)
        if cold or not incremental:
            self._start_history()
        self._start_error_flow(incremental)
        opt = self._make_optimizer(net, params.dtype, old_opt)
        interrupted = None
        with _Interrupt(opt) as interrupt:
            try:
                self._fit_epochs(net, params, opt, seqs, targets, rng,
                                 incremental, interrupt, weights, guard)
            except KeyboardInterrupt:
                if not interrupt.updated:
                    raise                   # nothing to keep: roll back
                interrupted = interrupt.message(self.n_iter_)
            # Still guarded: a first Ctrl-C while measuring only sets pending.
            # After an interruption the user wants out: nothing is measured.
            record = self.record_error_flow is not None and interrupted is None
            if record:
                error_flow = self._measure_error_flow(net, params, seqs)
        if interrupt.pending and interrupted is None:   # Ctrl-C at the very end
            interrupted = interrupt.message(self.n_iter_)
        self._net = net
        self._params = params
        self._optimizer = opt
        self._output = self._arch["output"]
        self.n_outputs_ = n_outputs
        self.coefs_ = self._make_coefs()
        if record:
            self.error_flow_ = error_flow
        return interrupted

    def _initialize(self, seqs, hidden, n_outputs, rng):
        """A new network for ``seqs`` and its initial weights; the fitted
        architecture and the histories start afresh."""
        net = Network(make_cell(self.cell, self.activation),
                      seqs.n_features, hidden, n_outputs)
        params = net.init_params(rng, seqs.dtype, self.forget_bias)
        self._arch = {k: getattr(self, k) for k in _ARCHITECTURE}
        self._arch["hidden_layer_sizes"] = hidden
        self.n_iter_ = 0
        self.loss_ = None
        self.loss_curve_ = []
        self.validation_scores_ = None
        return net, params

    def _before_fit(self, incremental, classes):
        """Hook run first inside the rollback scope of a fit."""

    def _check_loss_range(self, targets, weights, params, net):
        """Refuse, before training, finite arguments that put the loss out
        of range whatever the weights do: sample weights whose sum (the
        loss's divisor) or whose values in the compute dtype are infinite,
        and an ``alpha`` whose L2 term is infinite for the starting
        weights. Training would stop at its first update and blame the
        optimizer (the regressor also checks ``y``: :meth:`_check_targets_range`)."""
        dtype = params.dtype
        if weights is not None:
            with np.errstate(over="ignore"):    # an infinite sum: refused
                total = float(weights.per_sequence.sum())
            rows_max = float(colmax_abs(weights.rows).max(initial=0.0))
            if not (np.isfinite(total) and np.isfinite(rows_max)):
                raise ValueError(
                    f"sample_weight has values up to "
                    f"{weights.per_sequence.max():.3g}, whose "
                    + ("sum" if not np.isfinite(total) else f"{dtype}")
                    + " overflows; the fit depends on the weights' ratios "
                    "(and alpha's divisor, their sum): scale them down")
        w = params[:net.n_decay].astype(np.float64)
        with np.errstate(over="ignore"):
            # no BLAS: a threaded dot's spinning threads would take the
            # cores of the kernels that follow
            wsq = float(np.square(w).sum())
            l2 = 0.5 * self.alpha * wsq
        # (warm-start weights whose own norm overflows are the weights'
        # fault, not alpha's: training finds them, with the fallback)
        if np.isfinite(wsq) and not np.isfinite(l2):
            raise ValueError(
                f"alpha={self.alpha:g} makes the L2 term alpha/2 ||w||^2 "
                "infinite for the starting weights; expected a smaller alpha")
        self._check_targets_range(targets, weights, dtype)

    def _check_targets_range(self, targets, weights, dtype):
        """Hook of :meth:`_check_loss_range` (the regressor's ``y``)."""

    # Hooks the regressor and the classifier override: the loss, the
    # encoding of y, the scores, and the fitted attributes about the targets.
    _target_attributes = ()

    def _check_loaded_targets(self):
        """Hook of :meth:`_rebuild_from_fitted`: raise ``ValueError`` when
        the loaded fitted attributes about the targets are inconsistent."""

    def _start_history(self):
        """Reset the stopping bookkeeping (each fit call; histories append)."""
        self._no_improvement_count = 0
        if self.early_stopping:
            if self.validation_scores_ is None:
                self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _start_error_flow(self, incremental):
        """Drop the last fit's error flow; a fresh (or copied) history list.

        A new list object, so that a fit that raises restores the old one
        untouched.
        """
        self.__dict__.pop("error_flow_", None)
        history = getattr(self, "error_flow_history_", None)
        self.__dict__.pop("error_flow_history_", None)
        if self.record_error_flow == "epoch":
            self.error_flow_history_ = list(history or []) if incremental else []

    def _measure_error_flow(self, net, params, seqs, with_factors=True):
        """The first layer's :class:`~cbptt.diagnostics.ErrorFlow` on the
        sequences ``X[::ceil(n_samples / 64)]``, or None with a warning when
        the functional API refuses the weights. ``with_factors=False`` skips
        the Elman step factors (an SVD per sample and step) when only the
        ratio is kept."""
        from cbptt import diagnostics
        n = seqs.n_samples
        T = seqs.n_steps
        lengths = np.full(n, T) if seqs.lengths is None else seqs.lengths
        index = np.arange(0, n, -(-n // _ERROR_FLOW_SAMPLES))
        sample = [seqs.data[i, :lengths[i]] for i in index]
        layers, _ = net.views(params)
        try:
            return diagnostics._error_flow(
                sample, layers[0], self._arch["cell"],
                self._arch["activation"], "random", 1e-3, 0, with_factors)
        except ValueError as exc:
            warnings.warn(f"record_error_flow: the error flow could not be "
                          f"measured ({exc}); recorded None", RuntimeWarning)
            return None

    def _arch_output(self, cold):
        return self.output if cold else self._arch["output"]

    def _check_same_architecture(self, hidden):
        now = {k: getattr(self, k) for k in _ARCHITECTURE}
        now["hidden_layer_sizes"] = hidden
        # a cell of fixed nonlinearities (LSTM, GRU, CEC) ignores activation
        fixed = (now["cell"] == self._arch["cell"]
                 and not CELLS[now["cell"]].activations)
        changed = [k for k in _ARCHITECTURE if now[k] != self._arch[k]
                   and not (fixed and k == "activation")]
        if changed:
            k = changed[0]
            raise ValueError(
                f"{k}={now[k]!r} differs from the fitted model's "
                f"{self._arch[k]!r}; warm_start and partial_fit continue the "
                "fitted network, so set warm_start=False (or restore "
                f"{k}) to fit a new one")

    def _make_optimizer(self, net, dtype, old):
        opt = Optimizer(self.solver, net.size, dtype, net.n_decay, self.alpha,
                        self.clip_norm, self.learning_rate_init, self.beta_1,
                        self.beta_2, self.epsilon, self.momentum,
                        self.nesterovs_momentum, self.rho)
        if old is not None and old.solver == opt.solver:
            opt.restore(old.snapshot())
        return opt

    def _split(self, idx, targets, rng):
        """Train/validation split (stratified by class when possible)."""
        strat = self._stratify(targets)
        if strat is not None:
            try:
                return train_test_split(idx, test_size=self.validation_fraction,
                                        random_state=rng, stratify=strat)
            except ValueError:      # too few members of a class for the split
                pass
        return train_test_split(idx, test_size=self.validation_fraction,
                                random_state=rng)

    def _batch_size(self, n):
        if self.batch_size == "auto":
            return min(32, n)
        if self.batch_size > n:
            warnings.warn(f"batch_size={self.batch_size} is larger than the "
                          f"{n} training sequences; using {n}")
        return min(self.batch_size, n)

    def _fit_epochs(self, net, params, opt, seqs, targets, rng, incremental,
                    interrupt, weights=None, guard=None):
        """The stochastic fitting loop (scikit-learn MLP's ``_fit_stochastic``).

        Epochs of mini-batch updates on the training rows, in place on
        ``params`` and ``opt``. A divergence (non-finite loss or weights, or
        weights grown until the network overflows on the data: ``guard``, a
        :class:`DataGuard`) falls back to the last finite weights
        (:meth:`_diverged`), unless the weights the call started from
        overflow on the data already (``guard.on_divergence``: the data's
        fault, :class:`OverflowInX`); the stopping rule is
        :meth:`_update_no_improvement_count`. With early stopping the best
        validated weights are put back at the end.
        """
        if rng is None and (self.early_stopping or self.shuffle):
            rng = check_random_state(self.random_state)
        idx_train, val = self._validation_split(seqs, targets, weights, rng)
        l2_div = self._l2_divisor(weights, idx_train)
        B = self._batch_size(idx_train.size)
        k = self.bptt_truncate
        trunc = k if k is not None and k < seqs.n_steps else None
        trainer = Trainer(net, params, self._loss(), self._arch["output"],
                          trunc, opt,
                          Workspace(net, trunc or seqs.n_steps, B,
                                    params.dtype))
        batches = _Batches(seqs, targets, weights, B, self._arch["output"],
                           params.dtype)
        best_params = params.copy() if val is not None else None
        if not incremental:
            self.n_iter_ = 0
        snap = None
        for _ in range(1 if incremental else self.max_iter):
            tic = time.perf_counter()
            order = rng.permutation(idx_train) if self.shuffle else idx_train
            # The weights at the start of this epoch, of the one before and
            # of the call: where a divergence falls back to (_fall_back).
            prev, snap = snap, (params.copy(), opt.snapshot())
            first = snap if prev is None else first
            epoch = len(self.loss_curve_) + 1
            try:
                loss = self._run_epoch(trainer, batches, order,
                                       order is idx_train and val is None,
                                       interrupt, epoch, l2_div)
                if guard is not None:
                    guard.after_epoch(params)
                score, best = self._end_epoch(loss, net, params, seqs, val)
            except NonFiniteError as exc:
                if guard is not None:
                    # the data, not the training, when the weights the
                    # call began with overflow on it: OverflowInX
                    guard.on_divergence(first[0])
                self._diverged(exc.what, epoch, net, params, opt, seqs,
                               targets, l2_div, weights, [snap, prev, first])
                break
            if best:
                np.copyto(best_params, params)
            if self.verbose:
                line = f"Epoch {epoch}: loss = {loss:.8f}"
                if score is not None:
                    line += f", validation score = {score:.6f}"
                print(f"{line}, {time.perf_counter() - tic:.3f} s")
            interrupt.checkpoint(epoch, 0)
            if incremental or self._stop_now(val is not None):
                break
        else:
            if not incremental:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}"
                    ") reached and the optimization hasn't converged yet.",
                    ConvergenceWarning)
        if val is not None:
            np.copyto(params, best_params)

    def _validation_split(self, seqs, targets, weights, rng):
        """The training rows, and the validation set ``(seqs, targets,
        rows, weights)`` for :meth:`_score_internal` (None without early
        stopping). The validation sequences are scored by gathering their
        rows from X: no copy of them."""
        idx = np.arange(seqs.n_samples)
        if not self.early_stopping:
            return idx, None
        idx_train, idx_val = self._split(idx, targets, rng)
        if idx_val.size < 2:
            raise ValueError(
                f"the validation set has {idx_val.size} sequence(s); "
                "increase validation_fraction or the number of samples")
        return idx_train, (seqs, targets[idx_val],
                           np.ascontiguousarray(idx_val, dtype=np.intp),
                           None if weights is None else
                           _validation_weights(weights, idx_val))

    @staticmethod
    def _l2_divisor(weights, idx_train):
        """The L2 term's divisor: the training sequences, or their summed
        sample weights."""
        if weights is None:
            return idx_train.size
        l2_div = float(weights.per_sequence[idx_train].sum())
        if not l2_div > 0:
            raise ValueError("sample_weight is zero for every training "
                             "sequence (after the validation split); "
                             "give some training sequences a positive "
                             "weight")
        return l2_div

    def _run_epoch(self, trainer, batches, order, in_order, interrupt, epoch,
                   l2_div):
        """One pass of mini-batch updates over the rows ``order``; returns
        the epoch's loss: the mean (weighted) batch loss plus the L2 term
        ``alpha/2 |w|^2 / l2_div`` averaged over the updates. Raises
        :class:`NonFiniteError` when the loss or the weights stop being
        finite."""
        opt = trainer.optimizer
        half_alpha = 0.5 * self.alpha
        total = count = l2 = 0.0
        for number, args in batches(order, in_order):
            s_b, n_b = trainer.batch(*args)
            total += s_b
            count += n_b
            if n_b:                     # an all-zero-weight batch: no update
                l2 += half_alpha * opt.weight_sq
            interrupt.checkpoint(epoch, number)
        if not np.isfinite(trainer.params).all():
            raise NonFiniteError("weights")
        return (total / count if count > 0 else 0.0) + l2 / l2_div

    def _diverged(self, what, epoch, net, params, opt, seqs, targets, l2_div,
                  weights, snaps):
        """The ``what`` (loss or weights) became non-finite in ``epoch``:
        raise with ``on_nonfinite="raise"`` (``_fit`` rolls back), else keep
        the last weights of ``snaps`` with a finite training loss and warn;
        raise when there are none."""
        # clipping rescales a finite gradient; it cannot undo an overflow
        remedy = ("Set clip_norm (global gradient-norm clipping), lower "
                  "learning_rate_init, or scale the input (e.g. with "
                  "StandardScaler)." if self.clip_norm is None else
                  "Lower learning_rate_init or scale the input (e.g. with "
                  f"StandardScaler): clip_norm={self.clip_norm:g} rescales a "
                  "finite gradient, not one that overflowed.")
        if self.on_nonfinite == "raise":
            raise FloatingPointError(
                f"Training stopped in epoch {epoch}: the {what} became NaN "
                "or infinite (on_nonfinite='raise'); the estimator is left "
                f"as it was before this call. {remedy}") from None
        kept = _fall_back(self, net, params, opt, seqs, targets, l2_div,
                          weights, snaps)
        if kept is None:
            raise FloatingPointError(
                f"Training stopped in epoch {epoch}: the {what} became NaN "
                "or infinite, and no weights of this call (from the start of "
                "that epoch, of the epoch before, or of the call) give a "
                "finite training loss and finite predictions on the training "
                "data; the estimator is left as it was before this call. "
                f"{remedy}") from None
        warnings.warn(
            f"Training stopped in epoch {epoch}: the {what} became NaN or "
            "infinite; the last weights whose training loss and predictions "
            f"are finite were kept ({kept}). {remedy}", ConvergenceWarning)

    def _end_epoch(self, loss, net, params, seqs, val):
        """Record a finished epoch: the loss curve, the error flow, the
        validation score and the no-improvement counter. Returns the score
        (None without early stopping) and whether it is the best so far.
        Raises :class:`NonFiniteError`, recording nothing, when the network
        overflows on the validation data."""
        score = None
        if val is not None:
            try:
                score = self._score_internal(net, params, *val)
            except OverflowInX:
                raise NonFiniteError(
                    "network's values on the validation data") from None
        self.n_iter_ += 1
        self.loss_ = loss
        self.loss_curve_.append(loss)
        if self.record_error_flow == "epoch":
            flow = self._measure_error_flow(net, params, seqs,
                                            with_factors=False)
            self.error_flow_history_.append(
                None if flow is None else flow.ratio)
        if val is not None:
            self.validation_scores_.append(score)
        return score, self._update_no_improvement_count(loss, score)

    def _update_no_improvement_count(self, loss, score):
        """scikit-learn MLP's rule: count the epochs in a row whose
        validation score (with early stopping) or training loss did not
        improve on the best by more than ``tol``; keep the best. Returns
        whether the validation score is a new best."""
        if score is not None:
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                return True
            return False
        if loss > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        self.best_loss_ = min(self.best_loss_, loss)
        return False

    def _stop_now(self, validating):
        """Whether the no-improvement counter ends the fit (and say so)."""
        if self._no_improvement_count <= self.n_iter_no_change:
            return False
        if self.verbose:
            what = "Validation score" if validating else "Training loss"
            print(f"{what} did not improve more than tol={self.tol} for "
                  f"{self.n_iter_no_change} consecutive epochs. Stopping.")
        return True

    # --------------------------------------------------------- predicting --
    def _forward(self, X):
        """Validated sequences and the output layer's values z for ``X``."""
        check_is_fitted(self)
        seqs = validate_sequences(self, X, reset=False,
                                  dtype=self._params.dtype)
        return seqs, predict_raw(self._net, self._params, seqs.data,
                                 seqs.lengths, self._output, batch_first=True,
                                 check=True)

    @staticmethod
    def _per_sample(seqs, values, fill):
        """(T, N, ...) step values as the caller's layout, pads set to ``fill``.

        Returns an (N, T, ...) array, or a list of (T_i, ...) arrays for list
        input.
        """
        out = np.swapaxes(values, 0, 1)
        if seqs.layout == "list":
            lengths = seqs.lengths
            T = out.shape[1]
            return [out[i, :(T if lengths is None else lengths[i])].copy()
                    for i in range(out.shape[0])]
        out = np.ascontiguousarray(out)
        if seqs.lengths is not None:
            pad = ~seqs.valid_mask().T
            if fill is None and out.dtype.kind != "O":
                out = out.astype(object)
            out[pad] = fill
        return out

    def _score_internal(self, net, params, seqs, targets, rows=None,
                        weight=None):
        """The validation score (R^2 or accuracy) on encoded targets of the
        sequences ``rows`` of ``seqs`` (None: all), gathered from its data,
        weighted by ``weight`` (as ``weights.rows`` of those rows) when
        given."""
        z = predict_raw(net, params, seqs.data, seqs.lengths,
                        self._arch["output"], batch_first=True, rows=rows,
                        check=True)
        if self._arch["output"] == "last":
            return self._score_values(z, targets, weight)
        lengths = seqs.lengths
        if rows is not None and lengths is not None:
            lengths = lengths[rows]
        n, T = targets.shape[0], z.shape[0]       # T: the rows' longest
        mask = (np.ones((T, n), bool) if lengths is None
                else np.arange(T)[:, None] < lengths[None, :])
        # the targets (and weights) still span the training set's steps
        if weight is not None:
            weight = np.swapaxes(weight[:, :T], 0, 1)[mask].reshape(-1)
        return self._score_values(
            z[mask], np.swapaxes(targets[:, :T], 0, 1)[mask], weight)

    def _make_coefs(self):
        layers, out = self._net.views(self._params)
        coefs = [dict(p) for p in layers] + [dict(out)]
        for d in coefs:
            for v in d.values():
                v.flags.writeable = False
        return coefs

    def __getstate__(self):
        # A copy: for third-party estimators BaseEstimator returns __dict__.
        state = dict(super().__getstate__())
        state.pop("coefs_", None)       # views of _params: rebuilt on load
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_params" in state:
            self.coefs_ = self._make_coefs()

    # -------------------------------------------------------- persistence --
    # Private plain data that fit sets and that cbptt.load must restore
    # (besides the public fitted attributes); "_optimizer_state" exists only
    # inside save() and load().
    _persistent_attributes = ("_arch", "_output", "_input_layout",
                              "_n_step_features", "_y_ndim",
                              "_no_improvement_count", "_optimizer_state")

    def save(self, path):
        """Write the fitted estimator to ``path`` in cbptt's safe format.

        The file is a ZIP (``.npz``) archive holding ``metadata.json`` (format
        version, class name, :meth:`get_params`, every fitted attribute, each
        array's shape and dtype) and one ``.npy`` file per array: the weights
        and the optimizer's state, so that :meth:`partial_fit` continues a
        loaded model exactly as it would have continued this one. Read it back
        with :func:`cbptt.load`, which never unpickles anything.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write (conventionally ending in ``.npz``). The file is
            written to a temporary name and renamed, so a failing save leaves
            no partial file.

        Returns
        -------
        path : str
            The path written.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted (there is nothing to save; its
            parameters alone are ``get_params()``).
        TypeError
            If a parameter holds something that cannot be saved without
            pickle (e.g. a ``RandomState`` instance as ``random_state``).

        Examples
        --------
        >>> import numpy as np, cbptt
        >>> from cbptt import RNNRegressor
        >>> X = np.random.default_rng(0).standard_normal((16, 5, 2))
        >>> est = RNNRegressor(hidden_layer_sizes=(4,), max_iter=2,
        ...                    random_state=0).fit(X, X.sum(axis=(1, 2)))
        >>> path = est.save("model.npz")                    # doctest: +SKIP
        >>> same = cbptt.load(path)                         # doctest: +SKIP
        """
        check_is_fitted(self)
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        opt = getattr(self, "_optimizer", None)
        if opt is not None:
            s1, s2, t = opt.snapshot()
            copy._optimizer_state = {"solver": opt.solver, "t": int(t),
                                     "s1": s1, "s2": s2}
        return _persistence.save(copy, path)

    def _rebuild_from_fitted(self):
        """Rebuild the private state of a fit from the loaded attributes.

        Called by :func:`cbptt.load` after it set the public fitted attributes
        and the private ones named in ``_persistent_attributes``: builds the
        network from ``_arch``, the flat parameter vector from ``coefs_``
        (whose arrays become read-only views into it, as after a fit) and the
        optimizer from ``_optimizer_state``. Raises ``ValueError`` (or
        ``KeyError``/``TypeError``) when they disagree with each other.
        """
        state = self.__dict__.pop("_optimizer_state", None)
        needed = ["coefs_", "n_outputs_", "n_iter_", "loss_curve_", "_arch",
                  "_output", "_input_layout", "_n_step_features",
                  "_no_improvement_count", *self._target_attributes]
        missing = [k for k in needed if not hasattr(self, k)]
        if missing:
            raise ValueError(f"the fitted attributes {missing} are missing")
        arch = self._arch
        if not isinstance(arch, dict) or set(arch) != set(_ARCHITECTURE):
            raise ValueError(f"_arch is {arch!r}; expected a dict with keys "
                             f"{list(_ARCHITECTURE)}")
        hidden = _hidden_sizes(arch["hidden_layer_sizes"])
        if arch["output"] not in ("last", "sequence") or \
                self._output != arch["output"]:
            raise ValueError(f"_output is {self._output!r}; expected "
                             f"{arch['output']!r} ('last' or 'sequence')")
        if self._input_layout not in ("2d", "3d", "list"):
            raise ValueError(f"_input_layout is {self._input_layout!r}; "
                             "expected '2d', '3d' or 'list'")
        for name in ("_n_step_features", "n_outputs_"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) \
                    or v < 1:
                raise ValueError(f"{name} is {v!r}; expected a positive int")
        self._check_loaded_targets()
        _check_loaded_attributes(self, state)
        cell = make_cell(arch["cell"], arch["activation"])
        _check_coef_shapes(cell, self._n_step_features, hidden,
                           self.n_outputs_, self.coefs_)
        net = Network(cell, self._n_step_features, hidden, self.n_outputs_)
        self._net = net
        self._params = _params_from_coefs(net, self.coefs_)
        self.coefs_ = self._make_coefs()
        self._optimizer = self._restore_optimizer(state)

    def _restore_optimizer(self, state):
        """The optimizer of a loaded fit from its saved state (None when
        there is none or it belongs to another solver)."""
        if state is None or state.get("solver") != self.solver:
            return None
        net, params = self._net, self._params
        opt = self._make_optimizer(net, params.dtype, None)
        s1, s2 = state["s1"], state["s2"]
        t = state["t"]

        def native(a):          # either byte order (restore copies it)
            return a.dtype.newbyteorder("=")

        if (np.shape(s1) != opt.s1.shape or native(s1) != params.dtype
                or (s2 is None) != (opt.s2 is opt.s1)
                or (s2 is not None and (np.shape(s2) != opt.s2.shape
                                        or native(s2) != params.dtype))
                or isinstance(t, bool) or not isinstance(t, int) or t < 0):
            raise ValueError("the optimizer state does not match the "
                             f"network ({net.size} parameters, "
                             f"solver={self.solver!r}, {params.dtype})")
        opt.restore((s1, s2, t))
        return opt

    def _score(self, X, y, sample_weight, metric):
        """``metric`` of the predictions: per sequence with
        ``output="last"``, else over every valid step. ``sample_weight``
        is checked as :meth:`fit` checks it (a scalar or one weight per
        sequence), a sequence's weight applying to each of its steps."""
        if getattr(self, "_output", self.output) == "last":
            pred = self.predict(X)
            self._check_finite_targets(y, None)
            return metric(y, pred, sample_weight=score_weights(sample_weight,
                                                               len(pred)))
        return self._score_sequence(X, y, sample_weight, metric)

    def _score_sequence(self, X, y, sample_weight, metric):
        """``metric`` over every valid step (output="sequence")."""
        y_steps, pred, mask = self._step_pairs(X, y)
        if sample_weight is not None:
            sw = score_weights(sample_weight, mask.shape[1])
            sample_weight = np.broadcast_to(sw[None, :], mask.shape)[mask]
        return metric(y_steps, pred, sample_weight=sample_weight)

    def _step_pairs(self, X, y):
        """The (true, predicted) targets ``score`` compares with
        ``output="sequence"``: one row per valid step, in the order of the
        ``(T, N)`` mask that is also returned (``cbptt.dask.score`` sums
        statistics of these pairs block by block)."""
        seqs, z = self._forward(X)
        y = sequence_targets(y, seqs)
        mask = seqs.valid_mask()
        self._check_finite_targets(y, seqs)
        return np.swapaxes(y, 0, 1)[mask], self._steps_prediction(z[mask]), mask

    # What y must hold, for the errors naming a NaN or infinity in it.
    _ROW_TARGET = ROW_TARGET
    _STEP_TARGETS = STEP_TARGETS

    def _check_finite_targets(self, y, seqs):
        """Refuse NaN or infinity in real-valued targets, naming the sample
        (and step) as fit's errors about X do: ``y`` one row per sequence
        (``seqs`` None) or ``(N, T, ...)`` over ``seqs``, whose padded steps
        are ignored. Targets that are not real numbers pass unchanged."""
        if seqs is None:
            refuse_nonfinite_rows(y, expected=self._ROW_TARGET)
            return
        arr = np.asarray(y)
        if arr.dtype.kind not in "fc":
            return
        arr = arr.reshape(arr.shape[0], arr.shape[1], -1)
        if seqs.lengths is not None:        # padded steps are ignored
            arr = arr.copy()
            arr[~seqs.valid_mask().T] = 0.0
        refuse_nonfinite_targets(arr, seqs, expected=self._STEP_TARGETS)

    # -------------------------------------------------------------- interop --
    def to_torch_state_dict(self):
        """The fitted weights in PyTorch's names and layout (NumPy arrays).

        Keys ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}`` and
        ``bias_hh_l{k}`` for recurrent layer ``k`` (the layout of
        ``torch.nn.RNN``/``torch.nn.LSTM``; ``bias_hh`` is zero for a cell
        with one bias per gate), plus ``out.weight (n_outputs, H)`` and
        ``out.bias (n_outputs,)`` for the dense output layer
        (``torch.nn.Linear``). torch is not imported.

        Returns
        -------
        state_dict : dict of str to ndarray
            Copies of the weights.
        """
        check_is_fitted(self)
        layers, out = self._net.views(self._params)
        sd = {}
        for k, p in enumerate(layers):
            for name, arr in self._net.cell.to_torch(p).items():
                sd[f"{name}_l{k}"] = arr
        sd["out.weight"] = out["weight"].copy()
        sd["out.bias"] = out["bias"].copy()
        return sd

    def from_torch_state_dict(self, state_dict):
        """Load weights in PyTorch's names and layout into the fitted model.

        The inverse of :meth:`to_torch_state_dict`: every key it produces
        must be present with the same shape (``bias_ih + bias_hh`` becomes
        the bias of a cell with one bias per gate). Values may be NumPy
        arrays or torch tensors.
        The architecture (cell, layer sizes, outputs) is the fitted one; the
        optimizer state is reset.

        Parameters
        ----------
        state_dict : mapping of str to array-like

        Returns
        -------
        self : object

        Raises
        ------
        TypeError
            When ``state_dict`` is not a mapping, or a value is not made of
            real numbers (bool, strings).
        ValueError
            On a missing or unexpected key, a wrong shape, complex or
            non-finite values.
        """
        check_is_fitted(self)
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict is a {type(state_dict).__name__}; "
                            "expected a mapping of names to arrays, such as "
                            "torch's state_dict() or to_torch_state_dict() "
                            "(a list of (name, array) pairs converts with "
                            "dict(pairs))")
        expected = self.to_torch_state_dict()
        missing = sorted(set(expected) - set(state_dict), key=str)
        extra = sorted(set(state_dict) - set(expected), key=str)
        if missing or extra:
            raise ValueError(f"state_dict has missing keys {missing} and "
                             f"unexpected keys {extra}; expected exactly "
                             f"{sorted(expected)}")
        values = {}
        for key, ref in expected.items():
            where = f"state_dict[{key!r}]"
            try:
                arr = _as_numpy(state_dict[key])
            except (TypeError, ValueError, RuntimeError) as exc:
                raise TypeError(f"{where} cannot be read as a NumPy array "
                                f"({exc}); expected an array or tensor of "
                                "real numbers") from None
            # The dtype rule of X, naming the key: bool and strings are a
            # TypeError, complex a ValueError ("Complex data not supported").
            check_real_numbers(arr, where)
            if arr.shape != ref.shape:
                raise ValueError(f"state_dict[{key!r}] has shape {arr.shape}; "
                                 f"expected {ref.shape}")
            arr = check_array(arr, ensure_2d=False, dtype=np.float64,
                              input_name=f"state_dict[{key!r}]")
            values[key] = arr
        params = np.empty_like(self._params)
        layers, out = self._net.views(params)
        with np.errstate(over="ignore", invalid="ignore"):
            for k, p in enumerate(layers):
                names = self._net.cell.to_torch(p)
                self._net.cell.from_torch(p, {n: values[f"{n}_l{k}"]
                                              for n in names})
            out["weight"][...] = values["out.weight"]
            out["bias"][...] = values["out.bias"]
        _check_converted_finite(layers, out, params.dtype)
        self._params = params
        self._optimizer = None
        self.coefs_ = self._make_coefs()
        return self

    def error_signals(self, X, y):
        """Every recurrent layer's error signals delta(t) for the loss on (X, y).

        Computed by the compiled backward pass of the fitted network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or list
            Input sequences, as for :meth:`fit`.
        y : array-like
            Targets, as for :meth:`fit`.

        Returns
        -------
        signals : list
            One entry per recurrent layer with ``delta`` of shape
            (n_samples, n_timesteps, units) (for LSTM cells also the gate
            deltas and ``delta_c``); see
            :func:`cbptt.diagnostics.estimator_error_signals`.

        Examples
        --------
        >>> import numpy as np
        >>> from cbptt import RNNRegressor
        >>> X = np.random.default_rng(0).standard_normal((8, 5, 1))
        >>> est = RNNRegressor(cell="elman", hidden_layer_sizes=(4,), max_iter=2,
        ...                    random_state=0).fit(X, X.sum(axis=(1, 2)))
        >>> len(est.error_signals(X, X.sum(axis=(1, 2))))
        1
        """
        from cbptt import diagnostics
        check_is_fitted(self)
        self._forward(X)        # refuses overflow, naming sample and step
        return diagnostics.estimator_error_signals(self, X, y)

    def error_flow(self, X, y=None, *, direction="random", threshold=1e-3,
                   random_state=0):
        """How much of an error injected at the last step reaches step T-q.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or list
            Input sequences.
        y : None
            Ignored (the error is injected, not taken from a loss).
        direction : {"random"} or array-like, default="random"
            The direction of the error injected at the last step.
        threshold : float, default=1e-3
            Ratio above which a lag counts toward the memory horizon.
        random_state : int, default=0
            Seed of the random direction.

        Returns
        -------
        flow : cbptt.diagnostics.ErrorFlow
            ``ratio[q]`` = mean over samples of ||delta(T-q)|| / ||delta(T)||
            for the first recurrent layer, and the memory horizon; see
            :func:`cbptt.diagnostics.estimator_error_flow`.
        """
        from cbptt import diagnostics
        check_is_fitted(self)
        self._forward(X)        # refuses overflow, naming sample and step
        return diagnostics.estimator_error_flow(
            self, X, direction=direction, threshold=threshold,
            random_state=random_state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    def _poor_score(self):
        """The ``poor_score`` tag: the cell's own (e.g. a CEC layer sees only
        the sum of the steps, so it cannot fit scikit-learn's tabular check
        problems read as series); False for a cell not in the registry,
        which fit refuses."""
        cls = CELLS.get(self.cell) if isinstance(self.cell, str) else None
        return cls is not None and cls.poor_score


@_persistence.allow
class RNNRegressor(RegressorMixin, _BaseRNN):
    """Recurrent neural network regressor trained by exact, compiled BPTT.

    Learns from sequences a target per sequence (``output="last"``) or per
    time step (``output="sequence"``), minimising the squared error
    ``1/(2N) sum_n ||y_pred_n - y_n||^2`` over the N targets of a mini-batch
    (scikit-learn MLP's convention) plus the L2 penalty.
__PARAMETERS__
    Attributes
    ----------
__ATTRIBUTES__
    See Also
    --------
    RNNClassifier : The classifier on the same networks.
    sklearn.neural_network.MLPRegressor : The feed-forward counterpart.
__NOTES__
    Examples
    --------
    >>> import numpy as np
    >>> from cbptt import RNNRegressor
    >>> rng = np.random.default_rng(0)
    >>> t = rng.uniform(0, 6.3, (200, 1)) + 0.2 * np.arange(21)
    >>> X, y = np.sin(t[:, :20]), np.sin(t[:, 20])   # predict the next value
    >>> reg = RNNRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01,
    ...                    max_iter=30, random_state=0).fit(X[:150], y[:150])
    >>> reg.predict(X[150:]).shape
    (50,)
    >>> bool(reg.score(X[150:], y[150:]) > 0.9)
    True
    """


    _target_attributes = ("_y_ndim",)

    def _loss(self):
        return SquaredError()

    @staticmethod
    def _sample_losses(z, y):
        """Each target's squared error ``||z - y||^2 / 2`` (float64 z)."""
        y = np.asarray(y, np.float64).reshape(z.shape)
        return 0.5 * ((z - y) ** 2).sum(axis=1)

    def _check_loaded_targets(self):
        ndims = (1, 2) if self._output == "last" else (2, 3)
        if self._y_ndim not in ndims:
            raise ValueError(f"_y_ndim is {self._y_ndim!r}; expected one of "
                             f"{ndims}")

    def _stratify(self, targets):
        return None

    def _encode_targets(self, y, seqs, cold, incremental, classes):
        check_real_numbers(y, "y")
        dtype = seqs.dtype
        if self._arch_output(cold) == "last":
            check_target_shape(y, (1, 2), "with output='last' (n_samples,) "
                               "or (n_samples, n_outputs): one target per "
                               "sequence")
            y = checked_array(y, dtype, ndims=(1, 2), finite=False,
                              ensure_2d=False, ensure_all_finite=False,
                              input_name="y")         # inf: refused below
            if y.size and not _scan.all_finite(np.ravel(y)):
                refuse_nonfinite_rows(y)
            if y.shape[0] != seqs.n_samples:
                raise ValueError("Found input variables with inconsistent "
                                 f"numbers of samples: [{seqs.n_samples}, "
                                 f"{y.shape[0]}]")
            ndim = y.ndim
            y2 = y.reshape(y.shape[0], -1)
        else:
            y = sequence_targets(y, seqs)
            if y.ndim not in (2, 3):
                raise ValueError(f"y has shape {y.shape}; with "
                                 "output='sequence' expected (n_samples, "
                                 "n_timesteps) or (n_samples, n_timesteps, "
                                 "n_outputs)")
            ndim = y.ndim
            y2 = y.reshape(y.shape[0], y.shape[1], -1)
            if y2.dtype.kind not in "fiu":
                y2 = check_array(y2, allow_nd=True, dtype=dtype,
                                 ensure_all_finite=False, input_name="y")
            # Training only reads the targets: the caller's array serves
            # when it already is C-contiguous in the compute dtype and has no
            # padded steps to zero; otherwise one private copy.
            padded = seqs.lengths is not None
            if padded or y2.dtype != dtype or not y2.flags.c_contiguous:
                with np.errstate(over="ignore"):    # inf: refused below
                    y2 = np.array(y2, dtype=dtype)
            if padded:
                valid = seqs.valid_mask().T
                y2[~valid] = 0.0
            # Finite everywhere, pads zeroed: the valid steps are; otherwise
            # the error names the first sample and step that is not.
            if not (y2.size and _scan.all_finite(y2.reshape(-1))):
                refuse_nonfinite_targets(y2, seqs)
        if cold:
            self._y_ndim = ndim
        return np.ascontiguousarray(y2, dtype=dtype), y2.shape[-1]

    @staticmethod
    def _score_values(z, y, sample_weight=None):
        return r2_float64(y, z, sample_weight=sample_weight)

    def _check_targets_range(self, targets, weights, dtype):
        """The largest target's squared error when predicting zero, 1/2 k
        max|y|^2 over the k outputs (about a row's loss at the start),
        within the compute dtype's range: the loss sums it in float64, and a
        float32 model's gradients carry y's scale through BPTT."""
        targets = np.asarray(targets)
        k = targets.shape[-1] if targets.ndim > 1 else 1
        # one compiled pass, no temporary the size of y (padded steps hold 0)
        big = float(colmax_abs(targets).max(initial=0.0))
        with np.errstate(over="ignore"):
            loss = 0.5 * k * big * big
        limit = float(np.finfo(dtype).max)
        if not loss <= limit:
            raise ValueError(
                f"y has values up to {big:.3g}, whose squared error "
                f"overflows {np.dtype(dtype)} (1/2 k max|y|^2 = {loss:.3g} "
                f"for k = {k} outputs; at most {limit:.3g}); scale y, e.g. "
                "with sklearn.compose.TransformedTargetRegressor and a "
                "StandardScaler")

    @staticmethod
    def _steps_prediction(z):
        return z

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to sequences ``X`` and targets ``y``.

        Parameters
        ----------
__FIT_X__
        y : array-like
            ``(n_samples,)`` or ``(n_samples, n_outputs)`` with
            ``output="last"``; ``(n_samples, n_timesteps)`` or
            ``(n_samples, n_timesteps, n_outputs)`` (or a list of
            ``(n_timesteps_i, ...)`` arrays) with ``output="sequence"``.
__SAMPLE_WEIGHT__

        Returns
        -------
        self : object
            The fitted estimator.

        Examples
        --------
        An integer weight counts as that many copies of the sequence (here
        every fit is one mini-batch of all the sequences):

        >>> import numpy as np
        >>> from cbptt import RNNRegressor
        >>> X = np.random.default_rng(0).standard_normal((16, 8, 2))
        >>> y = X.sum(axis=(1, 2))
        >>> w = np.r_[np.full(8, 2.0), np.ones(8)]     # the first half twice
        >>> kw = dict(hidden_layer_sizes=(8,), max_iter=3, shuffle=False,
        ...           random_state=0)
        >>> weighted = RNNRegressor(**kw).fit(X, y, sample_weight=w)
        >>> repeated = RNNRegressor(**kw).fit(np.r_[X[:8], X], np.r_[y[:8], y])
        >>> bool(np.allclose(weighted.predict(X), repeated.predict(X)))
        True
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Train one epoch on ``X, y``, continuing the fitted network.

        Parameters
        ----------
        X : array-like or list of arrays
            As for :meth:`fit`.
        y : array-like
            As for :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), default=None
            As for :meth:`fit`.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X):
        """Predict with the fitted network.

        Parameters
        ----------
        X : array-like or list of arrays
            As for :meth:`fit`.

        Returns
        -------
        y_pred : ndarray or list of ndarray
            Shaped like ``y`` in :meth:`fit`: ``(n_samples,)`` or
            ``(n_samples, n_outputs)`` with ``output="last"``;
            ``(n_samples, n_timesteps[, n_outputs])`` with
            ``output="sequence"`` (NaN at padded steps), or a list of
            ``(n_timesteps_i[, n_outputs])`` arrays for list input.
        """
        seqs, z = self._forward(X)
        if self._output == "last":
            return z[:, 0] if self._y_ndim == 1 else z
        if self._y_ndim == 2:
            z = z[..., 0]
        return self._per_sample(seqs, z, np.nan)

    def score(self, X, y, sample_weight=None):
        """The coefficient of determination R^2 of the predictions.

        With ``output="sequence"`` R^2 is computed over every valid time step
        of every sequence (uniform average over outputs).

        Parameters
        ----------
        X : array-like or list of arrays
            As for :meth:`fit`.
        y : array-like
            True targets, as for :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the sequences.

        Returns
        -------
        score : float
        """
        check_real_numbers(y, "y")
        return self._score(X, y, sample_weight, r2_float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.regressor_tags.poor_score = self._poor_score()
        return tags


@_persistence.allow
class RNNClassifier(ClassifierMixin, _BaseRNN):
    """Recurrent neural network classifier trained by exact, compiled BPTT.

    Labels sequences (``output="last"``) or every time step
    (``output="sequence"``: sequence tagging, next-symbol prediction) with
    labels of any type, minimising the softmax cross-entropy
    ``-1/N sum_n log p_n[y_n]`` over the N targets of a mini-batch plus the
    L2 penalty.
__PARAMETERS__
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
__ATTRIBUTES__
    See Also
    --------
    RNNRegressor : The regressor on the same networks.
    sklearn.neural_network.MLPClassifier : The feed-forward counterpart.
__NOTES__
    Examples
    --------
    >>> import numpy as np
    >>> from cbptt import RNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((300, 20, 1))
    >>> y = np.where(X.sum(axis=(1, 2)) > 0, "up", "down")  # sign of the sum
    >>> clf = RNNClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01,
    ...                     max_iter=30, random_state=0).fit(X[:250], y[:250])
    >>> clf.classes_
    array(['down', 'up'], dtype='<U4')
    >>> clf.predict_proba(X[250:]).shape
    (50, 2)
    >>> bool(clf.score(X[250:], y[250:]) > 0.9)
    True
    """


    _target_attributes = ("classes_",)
    _ROW_TARGET = "a class label for every sequence"
    _STEP_TARGETS = ("a class label at every step of every sequence (values "
                     "at padded steps are ignored)")

    def _loss(self):
        return SoftmaxCrossEntropy()

    @staticmethod
    def _sample_losses(z, codes):
        """Each target's cross-entropy ``logsumexp(z) - z[code]`` (float64
        z), shifted by the row's maximum so that exp cannot overflow."""
        codes = np.asarray(codes).reshape(-1).astype(np.intp)
        top = z.max(axis=1)
        lse = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
        return lse - z[np.arange(z.shape[0]), codes]

    def _check_loaded_targets(self):
        if np.shape(self.classes_) != (self.n_outputs_,):
            raise ValueError(f"classes_ has shape {np.shape(self.classes_)}; "
                             f"expected ({self.n_outputs_},) like n_outputs_")

    def _stratify(self, targets):
        if self.output != "last":
            return None
        _, counts = np.unique(targets, return_counts=True)
        return targets if counts.min() >= 2 else None

    def _before_fit(self, incremental, classes):
        if incremental:
            _check_partial_fit_first_call(self, classes)

    def _encode_targets(self, y, seqs, cold, incremental, classes):
        output = self._arch_output(cold)
        if output == "last":
            shape = check_target_shape(
                y, (1, 2), "with output='last' (n_samples,): one label per "
                "sequence (or (n_samples, 1))")
            if len(shape) == 2 and shape[1] != 1:
                raise ValueError(f"y has shape {shape}; with output='last' "
                                 "expected (n_samples,): one label per "
                                 "sequence (multi-output classification is "
                                 "not supported)")
            y = column_or_1d(y, warn=True)
            if y.shape[0] != seqs.n_samples:
                raise ValueError("Found input variables with inconsistent "
                                 f"numbers of samples: [{seqs.n_samples}, "
                                 f"{y.shape[0]}]")
            self._check_finite_targets(y, None)
            check_classification_targets(y)
            labels = y
        else:
            y = sequence_targets(y, seqs)
            if y.ndim != 2:
                raise ValueError(f"y has shape {y.shape}; with "
                                 "output='sequence' expected (n_samples, "
                                 "n_timesteps): one label per time step")
            self._check_finite_targets(y, seqs)
            valid = seqs.valid_mask().T
            labels = y[valid]
            check_classification_targets(labels)
        if cold and not incremental:
            self.classes_ = np.unique(labels)
        elif self.warm_start and not incremental:
            found = np.unique(labels)
            if not np.array_equal(found, self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same "
                    f"classes as in the previous call to fit. Previously got "
                    f"{self.classes_}, `y` has {found}")
        codes = np.searchsorted(self.classes_, labels)
        codes = np.minimum(codes, self.classes_.size - 1)
        bad = self.classes_[codes] != labels
        if np.any(bad):
            raise ValueError(f"`y` has classes not in `self.classes_`. "
                             f"`self.classes_` has {self.classes_}. `y` has "
                             f"{np.unique(labels[bad])} besides.")
        if output == "last":
            return codes.astype(np.int32), self.classes_.size
        full = np.zeros(y.shape, np.int32)
        full[valid] = codes
        return full, self.classes_.size

    def _score_values(self, z, codes, sample_weight=None):
        return float(np.average(np.argmax(z, axis=-1) == codes,
                                weights=sample_weight))

    def _steps_prediction(self, z):
        return self.classes_[np.argmax(z, axis=-1)]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to sequences ``X`` and labels ``y``.

        Parameters
        ----------
__FIT_X__
        y : array-like
            Labels of any type: ``(n_samples,)`` with ``output="last"``,
            ``(n_samples, n_timesteps)`` (or a list of ``(n_timesteps_i,)``
            arrays) with ``output="sequence"``.
__SAMPLE_WEIGHT__

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    def generate(self, seed_text, n_chars=200, temperature=1.0, *, codec=None,
                 random_state=None):
        """Sample text one character at a time from a character model.

        For a classifier trained with ``output="sequence"`` on one-hot
        characters (see :func:`cbptt.datasets.load_text`).

        Parameters
        ----------
        seed_text : str
            Text that primes the state.
        n_chars : int, default=200
            Characters to generate.
        temperature : float, default=1.0
            Softmax temperature; lower is more conservative.
        codec : CharCodec, default=None
            The character encoding used in training.
        random_state : int, RandomState or None, default=None
            Seed of the sampling.

        Returns
        -------
        text : str
            The generated characters; see
            :func:`cbptt.diagnostics.generate_text`.
        """
        from cbptt import diagnostics
        check_is_fitted(self)
        return diagnostics.generate_text(self, seed_text, n_chars, temperature,
                                         codec=codec, random_state=random_state)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train one epoch on ``X, y``, continuing the fitted network.

        Parameters
        ----------
        X : array-like or list of arrays
            As for :meth:`fit`.
        y : array-like
            Labels, as for :meth:`fit`.
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole data set; required on the first call,
            ignored afterwards.
        sample_weight : array-like of shape (n_samples,), default=None
            As for :meth:`fit`.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, y, incremental=True, classes=classes,
                         sample_weight=sample_weight)

    def predict_proba(self, X):
        """Class probabilities (softmax of the output layer).

        Parameters
        ----------
        X : array-like or list of arrays
            As for :meth:`fit`.

        Returns
        -------
        proba : ndarray or list of ndarray
            ``(n_samples, n_classes)`` with ``output="last"``;
            ``(n_samples, n_timesteps, n_classes)`` (NaN at padded steps) or a
            list of ``(n_timesteps_i, n_classes)`` arrays with
            ``output="sequence"``. Columns follow ``classes_``.
        """
        seqs, z = self._forward(X)
        p = SoftmaxCrossEntropy().transform(z)
        if self._output == "last":
            return p
        return self._per_sample(seqs, p, np.nan)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba` (same shapes).

        Parameters
        ----------
        X : array-like or list of arrays
            As for :meth:`fit`.

        Returns
        -------
        log_proba : ndarray or list of ndarray
        """
        p = self.predict_proba(X)
        if isinstance(p, list):
            return [np.log(a) for a in p]
        with np.errstate(divide="ignore"):
            return np.log(p)

    def predict(self, X):
        """Predicted labels (the most probable class).

        Parameters
        ----------
        X : array-like or list of arrays
            As for :meth:`fit`.

        Returns
        -------
        labels : ndarray or list of ndarray
            ``(n_samples,)`` with ``output="last"``. With
            ``output="sequence"``: ``(n_samples, n_timesteps)``, padded steps
            NaN when the labels are floats and None (in an object array)
            otherwise; or a list of ``(n_timesteps_i,)`` arrays for list input.
        """
        seqs, z = self._forward(X)
        labels = self.classes_[np.argmax(z, axis=-1)]
        if self._output == "last":
            return labels
        fill = np.nan if self.classes_.dtype.kind == "f" else None
        return self._per_sample(seqs, labels, fill)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of :meth:`predict`.

        With ``output="sequence"`` the accuracy is over every valid time step
        of every sequence.

        Parameters
        ----------
        X : array-like or list of arrays
            As for :meth:`fit`.
        y : array-like
            True labels, as for :meth:`fit`.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the sequences.

        Returns
        -------
        score : float
        """
        return self._score(X, y, sample_weight, accuracy_score)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = self._poor_score()
        return tags


# The parameters, notes and attributes are shared: keep one copy.
for _cls, _score in ((RNNRegressor, "R^2"), (RNNClassifier, "accuracy")):
    _cls.__doc__ = (_cls.__doc__.replace("__PARAMETERS__", _PARAMETERS)
                    .replace("__NOTES__", _NOTES)
                    .replace("__ATTRIBUTES__",
                             _ATTRIBUTES.format(score=_score).strip("\n")))
    _cls.fit.__doc__ = (_cls.fit.__doc__.replace("__FIT_X__", _FIT_X)
                        .replace("__SAMPLE_WEIGHT__", _SAMPLE_WEIGHT))
