"""The estimators' network: a stack of recurrent layers, a dense output layer, a loss.

Contract
--------
* Parameters. :class:`Network` lays every trainable number out in ONE flat
  vector: first every weight matrix (L2-penalised), then every bias, layer by
  layer, the output layer (``out.weight (k, H_top)``, ``out.bias (k,)``)
  last. :meth:`Network.views` returns per-layer dicts of views into such a
  vector (parameters or their gradients), so the optimizer update and the
  gradient clipping are one compiled call on the whole vector.
* Data. Sequences are time-major ``(T, B, F)`` C-contiguous, zero beyond each
  sequence's length (``lengths``; None when every sequence has all ``T``
  steps). A unidirectional RNN's trailing padding cannot reach earlier steps,
  and the loss gradient is zero at padded steps, so BPTT's error signal is
  exactly zero there: padding changes no prediction and no gradient.
* Stack. Layer ``l``'s output ``h (T, B, H_l)`` is layer ``l+1``'s input; in
  BPTT layer ``l+1``'s input gradient ``dL/dx`` is layer ``l``'s ``grad_h``.
  Each layer is one compiled kernel call per window (no Python per step).
* Output layer and loss (one compiled :func:`cbptt._train.dense_head` call
  per mini-batch) on the top layer's states: ``z = h W^T + b``; with
  ``output="last"`` at each sequence's own last step, with
  ``output="sequence"`` at every valid step. Losses are means over the N
  targets of the update: ``SquaredError`` is ``1/(2N) sum_n ||z_n - y_n||^2``
  (scikit-learn MLP's convention), ``SoftmaxCrossEntropy`` is
  ``-1/N sum_n log softmax(z_n)[y_n]``. With sample weights ``w_n`` both
  become weighted means, ``sum_n w_n l_n / sum_n w_n``, and the L2
  coefficient ``alpha / B`` becomes ``alpha / sum_b w_b`` over the batch's
  sequences (as in scikit-learn's MLP), so integer weights are repeated
  sequences.
* Work memory. :class:`Workspace` allocates flat buffers once (per fit or per
  predict call) for the largest ``(T, B)``; smaller batches, shorter
  sequences and truncation windows use C-contiguous views of their prefixes.
* Overflow. :func:`predict_raw` (``check=True``) refuses, as the functional
  API does, values that left the working dtype's range: a saturating unit
  (tanh(inf) = 1, relu(NaN) = 0) would otherwise hide the overflow and
  return finite garbage. A cheap sufficient test runs on every chunk; only
  when it fails are the sample and step located (:class:`OverflowInX`).
"""
import math

import numpy as np

from cbptt import _scan, _train
from cbptt._cells import glorot_uniform
from cbptt._validation import aligned_empty, colmax_abs


class NonFiniteError(ArithmeticError):
    """A loss or a gradient became NaN or infinite during training."""

    def __init__(self, what):
        super().__init__(what)
        self.what = what


class OverflowInX(ValueError):
    """Finite input whose network values left the working dtype's range.

    The message names X, the sample and the step (within the sample's own
    length) where it happened, and the layer.
    """


_QUARTER_MAX = {np.dtype(t): float(np.finfo(t).max) / 4
                for t in (np.float32, np.float64)}


class Network:
    """Layout of a stacked recurrent network's parameters in a flat vector.

    Parameters
    ----------
    cell : cell adapter (see :mod:`cbptt._cells`)
    n_features : int
        Features per time step of the input.
    hidden_sizes : tuple of int
        Units of each stacked recurrent layer.
    n_outputs : int
        Units of the dense output layer.
    """

    def __init__(self, cell, n_features, hidden_sizes, n_outputs):
        self.cell = cell
        self.sizes = (int(n_features),) + tuple(int(h) for h in hidden_sizes)
        self.n_outputs = int(n_outputs)
        entries = []
        for layer, (I, H) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            entries += [(layer, n, s, d) for n, s, d in cell.param_specs(I, H)]
        entries += [("out", "weight", (self.n_outputs, self.sizes[-1]), True),
                    ("out", "bias", (self.n_outputs,), False)]
        ordered = [e for e in entries if e[3]] + [e for e in entries if not e[3]]
        self.slots = []                      # (group, name, start, shape)
        start = 0
        for group, name, shape, _ in ordered:
            self.slots.append((group, name, start, shape))
            start += int(np.prod(shape))
        self.size = start
        self.n_decay = sum(int(np.prod(e[2])) for e in entries if e[3])

    @property
    def n_layers(self):
        return len(self.sizes) - 1

    def views(self, flat):
        """Per-layer dicts of views into ``flat``, and the output layer's dict."""
        layers = [{} for _ in range(self.n_layers)]
        out = {}
        for group, name, start, shape in self.slots:
            view = flat[start:start + math.prod(shape)].reshape(shape)
            (out if group == "out" else layers[group])[name] = view
        return layers, out

    def init_params(self, rng, dtype, forget_bias):
        """A fresh flat parameter vector, drawn from ``rng`` in a fixed order."""
        flat = np.zeros(self.size, dtype)
        layers, out = self.views(flat)
        for p in layers:
            self.cell.init_params(p, rng, forget_bias)
        out["weight"][...] = glorot_uniform(rng, *out["weight"].shape)
        out["bias"][...] = 0.0
        return flat


class _Views:
    """Views of a :class:`Workspace`'s buffers for one ``(T, B)``."""

    __slots__ = ("x", "layers", "dx", "grad_top", "zero_states", "states")


class Workspace:
    """Preallocated work memory for batches of at most ``(T_max, B_max)``.

    ``train=False`` allocates only what the forward pass needs, and of a
    ``"step"`` buffer in the cell's ``infer_steps`` only those steps (a
    forward that will not be differentiated: prediction).
    """

    def __init__(self, net, T_max, B_max, dtype, train=True):
        self.net = net
        self.train = train
        self.dtype = np.dtype(dtype)
        cell = net.cell
        steps, batch = T_max * B_max, B_max
        sizes = net.sizes
        self._x = np.empty(steps * sizes[0], dtype)
        self._layer_bufs = []
        for I, H in zip(sizes[:-1], sizes[1:]):
            bufs = {}
            for name, kind, width, phase in cell.buffer_specs(I, H):
                if phase == "forward" or train:
                    kept = None if train else cell.infer_steps.get(name)
                    n = batch * width
                    if kind == "step":
                        n *= T_max if kept is None else min(T_max, kept)
                    bufs[name] = (kind, width, kept, aligned_empty(n, dtype))
            self._layer_bufs.append(bufs)
        self._zero = np.zeros(batch * max(sizes[1:]), dtype)
        n_states = len(cell.state_names)
        self._states = [[np.zeros(batch * H, dtype) for _ in range(n_states)]
                        for H in sizes[1:]]
        if train:
            self._dx = [aligned_empty(steps * I, dtype)
                        if layer > 0 or cell.first_layer_dx else None
                        for layer, I in enumerate(sizes[:-1])]
            # Kept all-zero between uses (output="last" writes a few rows and
            # clears them again after BPTT).
            self._grad_top = np.zeros(steps * sizes[-1], dtype)
            self._z = np.empty(steps * net.n_outputs, dtype)
            self._dh = np.empty(batch * sizes[-1], dtype)
        self._cache = {}

    def views(self, T, B):
        """C-contiguous views of every buffer for ``T`` steps of ``B`` sequences."""
        v = self._cache.get((T, B))
        if v is not None:
            return v
        sizes = self.net.sizes
        v = _Views()
        v.x = self._x[:T * B * sizes[0]].reshape(T, B, sizes[0])
        v.layers = []
        for bufs in self._layer_bufs:
            d = {}
            for name, (kind, width, kept, flat) in bufs.items():
                if kind == "step":
                    Tk = T if kept is None else min(T, kept)
                    d[name] = flat[:Tk * B * width].reshape(Tk, B, width)
                else:
                    d[name] = flat[:B * width].reshape(B, width)
            v.layers.append(d)
        v.zero_states = [
            tuple(self._zero[:B * H].reshape(B, H) for _ in states)
            for H, states in zip(sizes[1:], self._states)]
        v.states = [tuple(s[:B * H].reshape(B, H) for s in states)
                    for H, states in zip(sizes[1:], self._states)]
        if self.train:
            v.dx = [None if d is None else d[:T * B * I].reshape(T, B, I)
                    for d, I in zip(self._dx, sizes[:-1])]
            v.grad_top = self._grad_top[:T * B * sizes[-1]].reshape(
                T, B, sizes[-1])
        self._cache[(T, B)] = v
        return v

    def head_buffers(self, n):
        """Work ``z (n, k)`` and ``d_h (n, H_top)`` for ``n <= B_max`` rows
        (``z`` also for up to ``T_max * B_max`` rows)."""
        k, H = self.net.n_outputs, self.net.sizes[-1]
        dh = self._dh[:n * H].reshape(n, H) if n * H <= self._dh.size else None
        return self._z[:n * k].reshape(n, k), dh


def forward_stack(net, p_layers, x, v, states):
    """Run every layer's forward kernel; returns the top layer's ``h (T, B, H)``."""
    cell = net.cell
    inp = x
    for p, buf, s0 in zip(p_layers, v.layers, states):
        cell.forward(inp, p, s0, buf)
        inp = buf["h"]
    return inp


def backward_stack(net, p_layers, g_layers, x, v, states):
    """BPTT through every layer from ``v.grad_top`` (fills ``g_layers``)."""
    cell = net.cell
    grad_h = v.grad_top
    for layer in range(net.n_layers - 1, -1, -1):
        inp = x if layer == 0 else v.layers[layer - 1]["h"]
        cell.backward(inp, p_layers[layer], states[layer], v.layers[layer],
                      grad_h, g_layers[layer], v.dx[layer])
        grad_h = v.dx[layer]


class SquaredError:
    """``L = 1/(2N) sum_n ||z_n - y_n||^2``; the prediction is ``z``."""

    code = _train.SQUARED_ERROR

    def transform(self, z):
        return z


class SoftmaxCrossEntropy:
    """``L = -1/N sum_n log p_n[y_n]`` with ``p_n = softmax(z_n)``; predicts ``p``."""

    code = _train.SOFTMAX_CROSS_ENTROPY

    def transform(self, z):
        z = z - z.max(axis=-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
        return z


class Trainer:
    """Forward, loss, BPTT and the optimizer update of one mini-batch.

    Parameters
    ----------
    net : Network
    params : ndarray of shape (net.size,)
        The flat parameter vector, updated in place by ``optimizer``.
    loss : SquaredError or SoftmaxCrossEntropy
    output : {"last", "sequence"}
    truncate : int or None
        Window length of truncated BPTT; None for full BPTT.
    optimizer : cbptt._optim.Optimizer
    workspace : Workspace
        Allocated with ``train=True`` for the largest batch.

    :meth:`batch` raises :class:`NonFiniteError` when the loss is not
    finite or, for a cell whose states are unbounded, when a window's
    forward pass left the dtype's range at a valid step
    (:func:`check_window`).
    """

    def __init__(self, net, params, loss, output, truncate, optimizer,
                 workspace):
        self.net = net
        self.params = params
        self.grads = np.zeros_like(params)
        self.p_layers, self.p_out = net.views(params)
        self.g_layers, self.g_out = net.views(self.grads)
        self.loss = loss
        self._codes = loss.code == _train.SOFTMAX_CROSS_ENTROPY
        self.last = output == "last"
        self.truncate = truncate
        self.optimizer = optimizer
        self.ws = workspace
        # Unbounded states (relu, identity, the CEC) can overflow and be
        # hidden again (relu(NaN) = 0): each window's forward is scanned
        # (check_window). Bounded ones are bounded per epoch by DataGuard.
        self.check_states = not net.cell.bounded_state

    def batch(self, x, lengths, target, weight=None, size=None):
        """Train on one mini-batch; returns (sum of the target losses, N targets).

        ``x (T, B, F)`` is a C-contiguous batch (zero beyond ``lengths``);
        ``target`` is ``(B, k)`` (values) or ``(B,)`` (class codes) for
        ``output="last"`` and ``(T, B, k)`` (``k = 1`` for class codes) for
        ``output="sequence"``. Every window of
        truncated BPTT makes its own update; the state it ends in (computed
        with the weights before that update) starts the next window.

        ``weight`` (sample weights, of the parameters' dtype): ``(B,)`` for
        ``output="last"``, ``(T, B, 1)`` for ``output="sequence"``; the loss
        is then the weighted mean, and the sum returned is weighted and ``N``
        is the targets' summed weight. ``size`` replaces ``B`` in the L2
        coefficient ``alpha / size`` (the batch's summed sequence weights).
        A window whose targets all have weight 0 makes no update.
        """
        T, B = x.shape[0], x.shape[1]
        k = self.truncate if self.truncate else T
        self.optimizer.begin_batch(B if size is None else size)
        total, count = 0.0, 0
        for t0 in range(0, T, k):
            t1 = min(T, t0 + k)
            v = self.ws.views(t1 - t0, B)
            states = v.zero_states if t0 == 0 else v.states
            xw = x[t0:t1] if k < T else x
            forward_stack(self.net, self.p_layers, xw, v, states)
            if self.check_states:
                check_window(self.net, self.p_layers, xw, v,
                             None if t0 == 0 else states, lengths, t0)
            if self.last:
                s, n = self._last_head(v, lengths, target, t0, t1, T, weight)
            else:
                s, n = self._sequence_head(v, lengths, target, t0, t1, weight)
            if n:
                if not math.isfinite(s):
                    raise NonFiniteError("loss")
                backward_stack(self.net, self.p_layers, self.g_layers, xw, v,
                               states)
                if self.last:
                    v.grad_top[self._rows_t, self._rows_b] = 0.0
                self.optimizer.step(self.params, self.grads)
                total += s
                count += n
            if t1 < T:
                for dst, src in zip(v.states, self._final_states(v)):
                    for d, s_ in zip(dst, src):
                        np.copyto(d, s_)
        return total, count

    def _final_states(self, v):
        return [self.net.cell.final_state(buf) for buf in v.layers]

    def _head(self, h_rows, target, valid, d_h, weight):
        z, _ = self.ws.head_buffers(h_rows.shape[0])
        y, codes = (None, target) if self._codes else (target, None)
        if weight is None:
            return _train.dense_head(h_rows, self.p_out["weight"],
                                     self.p_out["bias"], y, codes, valid,
                                     self.loss.code, z, self.g_out["weight"],
                                     self.g_out["bias"], d_h)
        return _train.dense_head_weighted(
            h_rows, self.p_out["weight"], self.p_out["bias"], y, codes, valid,
            self.loss.code, z, self.g_out["weight"], self.g_out["bias"], d_h,
            weight)

    def _last_head(self, v, lengths, target, t0, t1, T, weight):
        """Loss at each sequence's last step inside the window [t0, t1)."""
        h = v.layers[-1]["h"]
        if lengths is None:
            if t1 < T:
                return 0.0, 0
            t = h.shape[0] - 1
            self._rows_t, self._rows_b = t, slice(None)
            return self._head(h[t], target, None, v.grad_top[t], weight)
        t_last = lengths - 1
        rows = np.flatnonzero((t_last >= t0) & (t_last < t1))
        if rows.size == 0:
            return 0.0, 0
        t = t_last[rows] - t0
        _, d_h = self.ws.head_buffers(rows.size)
        s, n = self._head(h[t, rows], target[rows], None, d_h,
                          None if weight is None else weight[rows])
        v.grad_top[t, rows] = d_h
        self._rows_t, self._rows_b = t, rows
        return s, n

    def _sequence_head(self, v, lengths, target, t0, t1, weight):
        """Loss at every valid step of the window [t0, t1)."""
        h = v.layers[-1]["h"]
        Tw, B, H = h.shape
        y = target[t0:t1].reshape(Tw * B, -1)
        if self._codes:
            y = y.reshape(-1)
        valid = None
        if lengths is not None:
            valid = (np.arange(t0, t1)[:, None] < lengths[None, :]).ravel()
            valid = valid.view(np.uint8)
        if weight is not None:
            weight = weight[t0:t1].reshape(Tw * B)
        return self._head(h.reshape(Tw * B, H), y, valid,
                          v.grad_top.reshape(Tw * B, H), weight)


def _bias_bound(p):
    """``|b|`` of a layer's pre-activations, float64: the sum of the absolute
    values of all its bias vectors (one ``bias``, or a GRU's ``bias_ih`` and
    ``bias_hh``, whose ``r * (W_hn h + b_hn)`` with ``0 < r < 1`` stays
    within the same bound)."""
    return sum(np.abs(v.astype(np.float64)) for name, v in p.items()
               if name.startswith("bias"))


def _preact_worst(p, x_max, h_in):
    """max_j of the bound sum_k |W_ih[j,k]| x_max[k] + sum_k |W_hh[j,k]|
    h_in[k] + |b[j]| on a layer's pre-activations (float64; NaN or inf when
    an input maximum is).

    Every cell's parameters take the compiled bound (one pass, no
    temporaries): a GRU's two biases as their float64 bound
    :func:`_bias_bound`, which ``preact_bound_or_none`` accepts beside
    float32 weights too. :func:`_preact_worst_numpy` gives the same value
    (up to the order of the sums) for anything it declines.
    """
    bias = p["bias"] if "bias" in p else _bias_bound(p)
    worst = _scan.preact_bound_or_none(bias, p["weight_ih"], x_max,
                                       p["weight_hh"], h_in)
    return _preact_worst_numpy(p, x_max, h_in) if worst is None else worst


def _preact_worst_numpy(p, x_max, h_in):
    """:func:`_preact_worst` in NumPy (any layout or dtype; temporaries)."""
    with np.errstate(over="ignore", invalid="ignore"):
        bound = (_bias_bound(p)
                 + np.abs(p["weight_ih"].astype(np.float64)) @ x_max
                 + np.abs(p["weight_hh"].astype(np.float64)) @ h_in)
        return float(bound.max())


def _layer_ok(cell, p, inp, h, h0=None):
    """The cheap, sufficient test that a layer's forward pass over a chunk
    stayed in range: its output scanned (an unbounded unit) or a bound on
    every pre-activation from the input's column maxima (|h| <= 1 for a
    saturating unit). ``h0``: the chunk's initial state, None for zero
    (a truncation window's is the state the window before ended in).
    Padded steps count too: a False is then re-examined per sample and
    step by :func:`_locate_layer`."""
    if "weight_hh" not in p:
        # CEC: s(t) = s(t-1) + W x(t) + b. A NaN or infinite state stays so
        # at every later step (inf + finite = inf; NaN and inf - inf are
        # NaN), padded steps included (x = 0 there): the last step tells.
        return bool(_scan.all_finite(np.ascontiguousarray(h[-1]).reshape(-1)))
    T, _, H = h.shape
    if not cell.bounded_state:
        # unbounded states: one scan (colmax_abs propagates NaN and inf)
        if not _scan.all_finite(np.ascontiguousarray(h[-1]).reshape(-1)):
            return False
        h_in = colmax_abs(h[:-1]) if T > 1 else np.zeros(H)
        if h0 is not None:
            h_in = np.maximum(h_in, colmax_abs(h0))
    else:
        h_in = np.ones(H)          # |h0| <= 1 and |h| <= 1 (bounded_state)
    return _preact_worst(p, colmax_abs(inp), h_in) <= _QUARTER_MAX[h.dtype]


def _locate_layer(p, inp, h, lengths, h0=None):
    """The first (sample, step, what) of a chunk where a layer's values are
    not finite or its pre-activations may exceed the dtype's range, over
    each sample's own steps only; None when there is none (``h0`` as for
    :func:`_layer_ok`)."""
    T, B, H = h.shape
    limit = _QUARTER_MAX[h.dtype]
    valid = (np.ones((T, B), bool) if lengths is None
             else np.arange(T)[:, None] < lengths[None, :])
    first = np.full(B, T)
    bound_seen = np.zeros(B)
    finite_h = np.isfinite(h).all(axis=2)            # (T, B)
    with np.errstate(over="ignore", invalid="ignore"):
        if "weight_hh" in p:
            w_ih = np.abs(p["weight_ih"].astype(np.float64))
            w_hh = np.abs(p["weight_hh"].astype(np.float64))
            b = _bias_bound(p)
            h_prev = (np.zeros((B, H)) if h0 is None
                      else np.abs(h0.astype(np.float64)))
            for t in range(T):
                bound = (np.abs(inp[t].astype(np.float64)) @ w_ih.T
                         + h_prev @ w_hh.T + b).max(axis=1)
                bad = ~(bound <= limit) & valid[t] & (first == T)
                bound_seen[bad] = bound[bad]
                first[bad] = t
                h_prev = np.abs(h[t].astype(np.float64))
        bad_h = ~finite_h & valid
        steps = np.where(bad_h.any(axis=0), bad_h.argmax(axis=0), T)
        first = np.minimum(first, steps)
    if not (first < T).any():
        return None
    n = int(np.argmax(first < T))
    t = int(first[n])
    if np.isfinite(h[t, n]).all() and bound_seen[n]:
        return n, t, (f"a bound on its pre-activations |W x + W h + b| "
                      f"reaches {bound_seen[n]:.3g} (at most {limit:.3g} is "
                      "safe)")
    return n, t, "its states are NaN or infinite"


def _overflow(n, t, where, what, dtype, garbage="the predictions would be",
              data="X"):
    """The :class:`OverflowInX` naming sample ``n`` (an index, or its
    description) of ``data``, step ``t``, the layer and what left the
    range; ``garbage`` says what the overflow would spoil (predictions, or
    a fit). Its ``parts`` are these arguments, so that a caller that knows
    more (the block of Dask data a sample came from) can restate it."""
    advice = (f"Scale {data} (e.g. with StandardScaler) or the weights down"
              + ("" if dtype == np.float64 else ", or fit in float64"))
    e = OverflowInX(
        f"{data} overflows the network in {dtype}: at sample {n}, step {t}, "
        f"{where}: {what}; {garbage} garbage (a saturated "
        f"tanh(inf) = 1 or relu(NaN) = 0 hides the overflow). {advice}.")
    e.parts = dict(n=n, t=t, where=where, what=what, dtype=dtype,
                   garbage=garbage, data=data)
    return e


def restated(e, **changes):
    """The :class:`OverflowInX` ``e`` with some of its parts changed (see
    :func:`_overflow`)."""
    return _overflow(**{**e.parts, **changes})


def _data_colmax(data, lengths):
    """max |data[n, t, f]| over every sample's own steps, per feature
    (float64), without a copy of the data (chunks of samples where NaN
    pads the shorter ones)."""
    if lengths is None:
        return colmax_abs(data.reshape(-1, data.shape[-1]))
    out = np.zeros(data.shape[-1])
    step = max(1, (1 << 13) // max(1, data[0].size))      # 64 KiB chunks
    for s in range(0, data.shape[0], step):
        chunk = data[s:s + step].astype(np.float64)
        np.abs(chunk, out=chunk)
        out = np.fmax(out, np.fmax.reduce(chunk.reshape(-1, chunk.shape[-1])))
    return out


class DataGuard:
    """Refuse training data the network overflows on, as ``predict`` would.

    ``check(params)``, before training, raises :class:`OverflowInX` (its
    message for a fit, naming the sample and step) when the network with
    ``params`` overflows on the batch-first ``data`` (``lengths`` as for
    :func:`predict_raw`); ``after_epoch(params)`` raises
    :class:`NonFiniteError` instead, for the estimators' divergence
    fallback, when weights grown in training do.

    For a stack whose states stay in [-1, 1] (``cell.bounded_state``, from
    the zero state) a bound from the data's column maxima suffices (every
    layer above the first sees inputs in [-1, 1]): one pass over the data
    when the guard is made, then O(parameters) per check; only when the
    bound fails does the checked forward pass of :func:`predict_raw` decide
    and locate.

    For unbounded states no bound holds without the states themselves, so
    the training passes are checked instead: the :class:`Trainer` scans
    every window it computes (:func:`check_window`) and raises
    :class:`NonFiniteError`, with no forward pass of its own. ``check`` is
    then deferred to ``on_divergence(start)``, which the fitting loop calls
    with the weights the call started from when training stops on a
    non-finite value: the checked forward pass with them raises
    :class:`OverflowInX` when the data was to blame, before any fallback.
    """

    def __init__(self, net, data, lengths, output):
        self.net, self.data, self.lengths, self.output = (net, data, lengths,
                                                          output)
        self.x_max = None
        if net.cell.bounded_state:
            self.x_max = _data_colmax(data, lengths)

    def _bound_ok(self, params):
        if self.x_max is None:
            return False
        limit = _QUARTER_MAX[self.data.dtype]
        x_max = self.x_max
        for p in self.net.views(params)[0]:
            h_in = np.ones(p["weight_hh"].shape[1])
            if not _preact_worst(p, x_max, h_in) <= limit:
                return False
            x_max = h_in
        return True

    def _forward_check(self, params):
        """The checked forward pass: OverflowInX, restated for a fit."""
        try:
            predict_raw(self.net, params, self.data, self.lengths,
                        self.output, batch_first=True, check=True)
        except OverflowInX as e:
            raise restated(e, garbage="training on it would fit") from None

    def check(self, params):
        if self.x_max is not None and not self._bound_ok(params):
            self._forward_check(params)

    def on_divergence(self, start):
        """Raise :class:`OverflowInX` when the weights ``start`` (those the
        call began with) already overflow on the data; for unbounded
        states only (bounded ones were checked before training)."""
        if self.x_max is None:
            self._forward_check(start)

    def after_epoch(self, params):
        if self.x_max is None or self._bound_ok(params):
            return
        try:
            self._forward_check(params)
        except OverflowInX:
            raise NonFiniteError(
                "network's values on the training data") from None


def check_chunk(net, p_layers, v, lengths, samples):
    """Raise :class:`OverflowInX` when a forward chunk (``v`` of
    :class:`Workspace` after :func:`forward_stack`) left the range; cheap
    when it did not. ``samples[n]``: the index in the caller's ``x`` of the
    chunk's ``n``-th sequence, the sample the message names."""
    inp = v.x
    for layer, (p, buf) in enumerate(zip(p_layers, v.layers)):
        h = buf["h"]
        if not _layer_ok(net.cell, p, inp, h):
            found = _locate_layer(p, inp, h, lengths)
            if found is not None:
                n, t, what = found
                raise _overflow(int(samples[n]), t, f"recurrent layer {layer}",
                                what, h.dtype)
        inp = h


def check_window(net, p_layers, x, v, states, lengths, t0):
    """Raise :class:`NonFiniteError` when a training window's forward pass
    (:func:`forward_stack` on ``x`` from ``states``, None for the zero
    state) left the range at a valid step; cheap when it did not.

    The window is steps ``[t0, t0 + T)`` of a mini-batch whose sequences
    have ``lengths`` (None: all of them). Steps beyond a sequence's end do
    not count: a short sequence's padded continuation may overflow where
    the sequence itself does not. Such steps' states are then set to zero:
    BPTT's error there is zero, and 0 * inf would make the weight
    gradients NaN (no valid step reads them, and a window that follows
    starts those sequences from zero, as their steps there are padding
    too). Which weights or data are to blame is the caller's to decide
    (:meth:`DataGuard.on_divergence`).
    """
    inp = x
    for layer, (p, buf) in enumerate(zip(p_layers, v.layers)):
        h = buf["h"]
        h0 = None if states is None else states[layer][0]
        if not _layer_ok(net.cell, p, inp, h, h0):
            T = h.shape[0]
            own = None if lengths is None else np.clip(lengths - t0, 0, T)
            if _locate_layer(p, inp, h, own, h0) is not None:
                raise NonFiniteError("network's values on the training data")
            if own is not None:
                h[np.arange(T)[:, None] >= own[None, :]] = 0
        inp = h


def _check_output(z, lengths, samples, last, dtype, T):
    """The output layer's ``z`` of a chunk (``(B, k)`` at each sample's last
    step, or ``(T, B, k)``) finite at every valid step (``samples`` as for
    :func:`check_chunk`)."""
    if _scan.all_finite(z.reshape(-1)):
        return
    bad = ~np.isfinite(z).all(axis=-1)
    if last:
        n = int(np.argmax(bad))
        t = T - 1 if lengths is None else int(lengths[n]) - 1
    else:
        if lengths is not None:
            bad &= np.arange(T)[:, None] < lengths[None, :]
        if not bad.any():
            return
        n = int(np.argmax(bad.any(axis=0)))
        t = int(np.argmax(bad[:, n]))
    raise _overflow(int(samples[n]), t, "the output layer (z = h W^T + b)",
                    "its values are NaN or infinite", dtype)


def predict_raw(net, params, x, lengths, output, max_elements=1 << 22,
                batch_first=False, check=False, rows=None):
    """The output layer's values ``z`` (before the loss's transform).

    Parameters
    ----------
    net : Network
    params : ndarray of shape (net.size,)
    x : ndarray of shape (T, N, F), or (N, T, F) with ``batch_first``
        Time-major sequences, zero beyond ``lengths``; with ``batch_first``
        the C-contiguous batch-first data of
        :class:`cbptt._sequences.Sequences` (any values beyond ``lengths``,
        e.g. NaN padding: each chunk is gathered time-major with zeros
        there, so no time-major copy of the whole data set is made).
    lengths : ndarray of shape (N,) or None
    output : {"last", "sequence"}
    max_elements : int
        Bound on ``T * B * H`` per chunk of sequences (memory use).
    batch_first : bool
        The layout of ``x``.
    check : bool
        Refuse values that left the dtype's range (:class:`OverflowInX`,
        naming the sample and step) instead of returning them. The sample
        is its index in ``x`` (with ``rows``, ``rows[i]``, not ``i``): the
        row of the data the caller holds.
    rows : ndarray of intp or None
        With ``batch_first``: predict only the sequences ``x[rows]``,
        gathered chunk by chunk (the results of ``x[rows]`` trimmed to its
        longest sequence, without copying it); ``lengths`` stays that of
        ``x``. None: every sequence.

    Returns
    -------
    z : ndarray of shape (N, k) or (T, N, k)
        With ``output="sequence"``, rows beyond a sequence's length are
        meaningless (the caller masks them).
    """
    T, N = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    if rows is not None:
        N = rows.size
        if lengths is not None:
            lengths = lengths[rows]
            T = int(lengths.max())
    p_layers, p_out = net.views(params)
    W, b = p_out["weight"], p_out["bias"]
    k = net.n_outputs
    B = int(max(1, min(N, max_elements // (T * max(net.sizes)))))
    ws = Workspace(net, T, B, x.dtype, train=False)
    z = np.zeros((N, k) if output == "last" else (T, N, k), x.dtype)
    for s in range(0, N, B):
        e = min(N, s + B)
        Tb = T if lengths is None else int(lengths[s:e].max())
        v = ws.views(Tb, e - s)
        samples = np.arange(s, e) if rows is None else rows[s:e]   # in x
        if batch_first:
            _train.gather_batch_first(
                x, samples, None if lengths is None else lengths[s:e], v.x)
        else:
            np.copyto(v.x, x[:Tb, s:e])
        h = forward_stack(net, p_layers, v.x, v, v.zero_states)
        lb = None if lengths is None else lengths[s:e]
        if check:
            check_chunk(net, p_layers, v, lb, samples)
        with np.errstate(over="ignore", invalid="ignore"):
            if output == "last":
                if lengths is None:
                    h_last = h[-1]
                else:
                    h_last = h[lb - 1, np.arange(e - s)]
                z[s:e] = h_last @ W.T + b
            else:
                z[:Tb, s:e] = h @ W.T + b
        if check:
            _check_output(z[s:e] if output == "last" else z[:Tb, s:e], lb,
                          samples, output == "last", x.dtype, Tb)
    return z
