"""cbptt against PyTorch, JAX/XLA and a plain NumPy BPTT: one training epoch, side by side.

The job (issue 7): one epoch = 20 mini-batches of 32 sequences of T steps with
8 inputs, one recurrent layer of H units (tanh Elman, forget-gate LSTM or
PyTorch's GRU), a
linear output on the last step, MSE loss, full BPTT and a plain SGD update of
every parameter. Configurations: H in {16, 64, 256} at T=100 and T in
{25, 100, 400} at H=64, in float32 and float64.

Method: every implementation gets the same data and the same initial
weights. Within one configuration the implementations alternate (the order
rotates every round) and each one's median over the rounds is reported, so a
shared, noisy machine slows all of them alike and the ratios stay meaningful.
A round's sample is the mean per epoch of epochs run back to back for at
least MIN_SAMPLE_S (one epoch when it takes longer), after an idle pause.
PyTorch runs with 1 and with 2 threads; its better median counts. The
forward-only (inference) pass is timed the same way. JAX/XLA (optional:
skipped with a note when jax is not installed; ``pip install jax jaxlib``)
runs in its best form, the whole train step one jitted function
(``jax.value_and_grad`` of a ``lax.scan`` over time, then SGD), time-major,
float64 through ``jax_enable_x64``. cbptt and PyTorch also run on the
batch-first ``(batch, T, features)`` arrays users pass (``bf``; PyTorch
with ``batch_first=True``). Peak resident memory is
measured per implementation in a fresh subprocess. The GEMM peak is a large
square matrix product through SciPy's BLAS (the BLAS cbptt calls) in the
same dtype, with 1 and 2 threads.

Run from the repository root after ``pip install .``::

    python benchmarks/bench_epoch.py            # full run, writes this CPU's section of BENCHMARKS.md
    python benchmarks/bench_epoch.py --quick    # smoke run, prints the tables

No test asserts a time; this script only measures and reports.
"""
import argparse
import datetime
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cpu_report  # noqa: E402
import numpy_bptt  # noqa: E402

# This script's subsection of its CPU class's section of BENCHMARKS.md.
TITLE = "Training epoch (benchmarks/bench_epoch.py)"

N_BATCHES, BATCH, N_IN = 20, 32, 8
LR = 0.01
CONFIGS = [(16, 100), (64, 100), (256, 100), (64, 25), (64, 400)]  # (H, T)
QUICK_CONFIGS = [(16, 100), (64, 25)]
CELLS = ["elman", "lstm", "gru"]
# Row blocks of the stacked weights, and the biases the job trains: one
# vector (PyTorch's bias_ih + bias_hh) where the two only appear summed;
# the GRU's b_hn sits inside r * (W_hn h + b_hn), so it trains both.
GATES = {"elman": 1, "lstm": 4, "gru": 3}
BIASES = {"elman": ("bias",), "lstm": ("bias",), "gru": ("bias_ih", "bias_hh")}
DTYPES = ["float32", "float64"]

# JAX ms / cbptt ms (training epoch) at least this, by H (issue 21: ahead of
# JAX everywhere, by 2x at H <= 64).
JAX_TARGETS = {16: 2.0, 64: 2.0, 256: 1.0}

# Ratio targets (PyTorch ms / cbptt ms, training epoch) from issue 7.
TARGETS = {
    ("elman", "float32"): {16: 30.0, 64: 8.0, 256: 2.5},
    ("elman", "float64"): {16: 30.0, 64: 8.0, 256: 2.5},
    ("lstm", "float32"): {16: 4.0, 64: 2.0, 256: 1.0},
    ("lstm", "float64"): {16: 10.0, 64: 3.0, 256: 1.5},
    # issue 17: the GRU's ratio to nn.GRU at least the LSTM's to nn.LSTM
    # (also checked against the LSTM's measured ratio, see render)
    ("gru", "float32"): {16: 4.0, 64: 2.0, 256: 1.0},
    ("gru", "float64"): {16: 10.0, 64: 3.0, 256: 1.5},
}
# The stretch: PyTorch + cuDNN on one H200 (issue 7), lower end, per dtype.
GPU_MS = {"float32": 29.0, "float64": 100.0}
# An implementation whose timed warm-up is this many times the fastest one's
# is timed once per configuration (see run_config).
SLOW_FACTOR = 8.0
# Seconds of idle before each timed run. A BLAS or OpenMP worker thread that
# has just finished busy-waits before it sleeps (OpenBLAS: 2^28 cycles, about
# 0.13 s here), on the other CPU: whatever runs next on a 2-CPU machine pays
# for it. Measured: cbptt's epoch right after the NumPy one took 1.5x as long
# with 0.02 s of idle as with 0.3 s. 0.15 s outlasts every such wait.
SETTLE_S = 0.15
# Seconds per timed sample at least: an implementation runs its epoch (or
# inference pass) back to back until this much time has passed and the
# sample is the mean per epoch, as timeit and asv do. A 4 ms epoch timed
# alone right after the idle pause also timed the machine waking up (caches
# and clock after idle: 2-17% of a 4-18 ms epoch here, measured), which a
# training job pays once, not per epoch; a 100 ms epoch hides it.
MIN_SAMPLE_S = 0.2


# --------------------------------------------------------------------------
# The job: data and initial weights shared by every implementation
# --------------------------------------------------------------------------

def make_job(cell, dtype, H, T, seed=0):
    """Mini-batches and PyTorch-default initial weights (numpy, given dtype)."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    k = 1.0 / np.sqrt(H)
    x = rng.standard_normal((N_BATCHES, BATCH, T, N_IN)).astype(dtype)
    # A learnable target: a smooth function of the sequence.
    y = np.tanh(x[:, :, :, :2].mean(axis=2).sum(axis=-1, keepdims=True))
    y = y.astype(dtype)
    params = {
        "weight_ih": rng.uniform(-k, k, (G * H, N_IN)).astype(dtype),
        "weight_hh": rng.uniform(-k, k, (G * H, H)).astype(dtype),
        **{b: rng.uniform(-k, k, G * H).astype(dtype) for b in BIASES[cell]},
        "w_out": rng.uniform(-k, k, (1, H)).astype(dtype),
        "b_out": rng.uniform(-k, k, 1).astype(dtype),
    }
    return [(x[i], y[i]) for i in range(N_BATCHES)], params


def copy_params(params):
    return {k: v.copy() for k, v in params.items()}


def time_major(x):
    """A (batch, T, I) mini-batch as a C-contiguous (T, batch, I) copy."""
    return np.ascontiguousarray(np.swapaxes(x, 0, 1))


def flops_per_epoch(cell, H, T, train=True):
    """Matrix-product flops of one epoch (the work every implementation does).

    Forward: the input and recurrent products, 2 B T G H (I + H). Training
    adds the recurrent error product, 2 B T G H H, and the weight gradients,
    2 B T G H (I + H). (dx is not counted: no implementation needs it.)
    """
    G = GATES[cell]
    fwd = 2.0 * BATCH * T * G * H * (N_IN + H)
    total = fwd + (2.0 * BATCH * T * G * H * H + fwd if train else 0.0)
    return N_BATCHES * total


# --------------------------------------------------------------------------
# Implementations: prepare(job) once per configuration, then epoch()/infer()
# --------------------------------------------------------------------------

_CONTROLLER = []


def set_native_threads(n):
    """OpenMP's and BLAS's thread limits for what runs next (cbptt's Elman
    kernels use OpenMP; the LSTM kernels and NumPy call BLAS)."""
    from threadpoolctl import ThreadpoolController
    if not _CONTROLLER:
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, cbptt's)
        _CONTROLLER.append(ThreadpoolController())
    _CONTROLLER[0].limit(limits=n)


def missing(module, hint=""):
    """None if ``module`` imports, else why its implementation is skipped."""
    try:
        importlib.import_module(module)
    except ImportError:
        return f"{module} not installed{hint}"
    return None


class Impl:
    name = "?"
    threads = None

    def available(self, cell):
        """None if this implementation can run ``cell``, else the reason not."""
        return None

    def set_threads(self):
        """Set this implementation's thread count (untimed, before each run)."""


class CbpttImpl(Impl):
    """cbptt's public functional API plus NumPy for the head and SGD.

    The data are time-major (T, batch, I), the kernels' own layout
    (``batch_first=False``, PyTorch's default layout too), or with
    ``batch_first=True`` the (batch, T, I) arrays as users pass them (the
    API converts at its boundary). ``threads=None``
    is the default build's behaviour (OpenMP's and BLAS's limit = the number
    of CPUs; the kernels decide per layer whether to use them);
    ``threads=1`` limits both to one thread.
    """

    def __init__(self, threads=None, batch_first=False):
        self.threads, self.batch_first = threads, batch_first
        self.name = ("cbptt" + (" bf" if batch_first else "")
                     + ("" if threads is None else f" {threads}thr"))

    def set_threads(self):
        set_native_threads(self.threads or os.cpu_count())

    def available(self, cell):
        import cbptt
        if not hasattr(cbptt, f"{cell}_forward") and cell != "elman":
            return f"cbptt.{cell}_forward not available yet"
        return None

    def prepare(self, cell, batches, params):
        import cbptt
        self.cell, self.p = cell, copy_params(params)
        if self.batch_first:
            self.batches = [(np.ascontiguousarray(x), y) for x, y in batches]
        else:
            self.batches = [(time_major(x), y) for x, y in batches]
        if cell == "elman":
            self.fwd, self.bwd = cbptt.rnn_forward, cbptt.rnn_backward
        else:
            self.fwd = getattr(cbptt, f"{cell}_forward")
            self.bwd = getattr(cbptt, f"{cell}_backward")
        self.names = ("weight_ih", "weight_hh") + BIASES[cell]
        B, T = batches[0][0].shape[:2]
        H = params["weight_hh"].shape[1]
        # dL/dh(t): zero but at the last step, where the head writes it.
        shape = (B, T, H) if self.batch_first else (T, B, H)
        self.grad_h = np.zeros(shape, params["weight_ih"].dtype)
        self.grad_h_last = self.grad_h[:, -1] if self.batch_first else self.grad_h[-1]

    def _forward(self, x, train=True):
        p = self.p
        # inference keeps no LSTM cache (cache=False), as torch.no_grad()
        kw = {} if (train or self.cell != "lstm") else {"cache": False}
        return self.fwd(x, *(p[n] for n in self.names),
                        batch_first=self.batch_first, **kw)

    def epoch(self):
        p, grad_h = self.p, self.grad_h
        w_out, b_out = p["w_out"], p["b_out"]
        for x, y in self.batches:
            res = self._forward(x)
            h_last = res.h_last
            d_pred = np.matmul(h_last, w_out.T)     # in place from here on:
            d_pred += b_out                         # each NumPy temporary
            d_pred -= y                             # costs about 1 us
            d_pred *= 2.0 / d_pred.size
            np.matmul(d_pred, w_out, out=self.grad_h_last)
            g = self.bwd(res, grad_h, input_grad=False)  # x is data
            w_out -= LR * np.matmul(d_pred.T, h_last)
            b_out -= LR * d_pred.sum(0)
            for name in self.names:
                step = getattr(g, name)             # fresh: scaled in place
                step *= LR
                p[name] -= step

    def infer(self):
        p = self.p
        return [self._forward(x, train=False).h_last @ p["w_out"].T + p["b_out"]
                for x, _ in self.batches]


class NumpyImpl(Impl):
    """The plain NumPy BPTT of ``numpy_bptt.py``."""

    name = "numpy"

    def available(self, cell):
        if cell not in ("elman", "lstm"):
            return f"no NumPy {cell} in numpy_bptt.py"
        return None

    def set_threads(self):
        set_native_threads(os.cpu_count())

    def prepare(self, cell, batches, params):
        self.cell, self.batches, self.p = cell, batches, copy_params(params)

    def epoch(self):
        if self.cell == "lstm":
            numpy_bptt.lstm_epoch(self.p, self.batches, LR)
        else:
            numpy_bptt.elman_epoch(self.p, self.batches, LR)

    def infer(self):
        if self.cell == "lstm":
            return numpy_bptt.lstm_infer(self.p, self.batches)
        return numpy_bptt.elman_infer(self.p, self.batches)


class TorchImpl(Impl):
    """torch.nn.RNN / LSTM / GRU + nn.Linear, MSELoss, optim.SGD, on
    time-major (T, batch, I) data (the modules' default layout), or with
    ``batch_first=True`` on (batch, T, I) data."""

    def __init__(self, threads, batch_first=False):
        self.threads, self.batch_first = threads, batch_first
        self.name = f"torch {'bf ' if batch_first else ''}{threads}thr"

    def available(self, cell):
        return missing("torch")

    def prepare(self, cell, batches, params):
        import torch
        dtype = (torch.float32 if params["weight_ih"].dtype == np.float32
                 else torch.float64)
        H = params["weight_hh"].shape[1]
        cls = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM,
               "gru": torch.nn.GRU}[cell]
        kw = {"nonlinearity": "tanh"} if cell == "elman" else {}
        self.rnn = cls(N_IN, H, batch_first=self.batch_first, **kw).to(dtype)
        self.head = torch.nn.Linear(H, 1).to(dtype)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(torch.from_numpy(params["weight_ih"]))
            self.rnn.weight_hh_l0.copy_(torch.from_numpy(params["weight_hh"]))
            if "bias" in params:
                self.rnn.bias_ih_l0.copy_(torch.from_numpy(params["bias"]))
                self.rnn.bias_hh_l0.zero_()
            else:
                self.rnn.bias_ih_l0.copy_(torch.from_numpy(params["bias_ih"]))
                self.rnn.bias_hh_l0.copy_(torch.from_numpy(params["bias_hh"]))
            self.head.weight.copy_(torch.from_numpy(params["w_out"]))
            self.head.bias.copy_(torch.from_numpy(params["b_out"]))
        # one bias vector, as in the other implementations: SGD on both of
        # PyTorch's would move their sum twice as far (the GRU trains both)
        self.rnn.bias_hh_l0.requires_grad_("bias" not in params)
        layout = np.ascontiguousarray if self.batch_first else time_major
        self.batches = [(torch.from_numpy(layout(x)), torch.from_numpy(y))
                        for x, y in batches]
        self.last = (lambda out: out[:, -1]) if self.batch_first else (lambda out: out[-1])
        self.opt = torch.optim.SGD(
            [q for q in self.rnn.parameters() if q.requires_grad]
            + list(self.head.parameters()), lr=LR)
        self.loss = torch.nn.MSELoss()

    def set_threads(self):
        import torch
        torch.set_num_threads(self.threads)

    def epoch(self):
        for x, y in self.batches:
            self.opt.zero_grad()
            out, _ = self.rnn(x)
            self.loss(self.head(self.last(out)), y).backward()
            self.opt.step()

    def infer(self):
        import torch
        with torch.no_grad():
            return [self.head(self.last(self.rnn(x)[0])) for x, _ in self.batches]


def jax_last_hidden(cell, p, x):
    """h(T) of the layer in JAX for time-major x (T, B, I): the input
    product for all steps first, (T*B x G*H) = (T*B x I)(I x G*H), then a
    lax.scan of the recurrence (gates as PyTorch packs them: i, f, g, o for
    the LSTM, r, z, n for the GRU, whose b_hn stays inside r * (.))."""
    import jax
    import jax.numpy as jnp
    b_ih = p["bias_ih"] if cell == "gru" else p["bias"]
    xp = x @ p["weight_ih"].T + b_ih                # (T, B, G*H)
    w_hh_t = p["weight_hh"].T
    zeros = jnp.zeros((x.shape[1], w_hh_t.shape[0]), x.dtype)
    if cell == "gru":
        def step(h, xz):
            xr, xu, xn = jnp.split(xz, 3, axis=-1)
            hr, hu, hn = jnp.split(h @ w_hh_t + p["bias_hh"], 3, axis=-1)
            r, u = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xu + hu)
            n = jnp.tanh(xn + r * hn)
            return (1 - u) * n + u * h, None
        h, _ = jax.lax.scan(step, zeros, xp)
    elif cell == "lstm":
        def step(carry, z):
            h, c = carry
            i, f, g, o = jnp.split(z + h @ w_hh_t, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            return (jax.nn.sigmoid(o) * jnp.tanh(c), c), None
        (h, _), _ = jax.lax.scan(step, (zeros, zeros), xp)
    else:
        def step(h, z):
            return jnp.tanh(z + h @ w_hh_t), None
        h, _ = jax.lax.scan(step, zeros, xp)
    return h


def jax_loss(cell, p, x, y):
    """The job's MSE of the linear head on h(T), as torch.nn.MSELoss."""
    pred = jax_last_hidden(cell, p, x) @ p["w_out"].T + p["b_out"]
    return ((pred - y) ** 2).mean()


class JaxImpl(Impl):
    """JAX/XLA in its best form: the whole train step (forward, MSE,
    gradients by ``jax.value_and_grad`` of the ``lax.scan``, SGD) is one
    jitted function, on time-major (T, batch, I) data held on the device;
    float64 through ``jax_enable_x64``. XLA chooses its own threads."""

    name = "jax"

    def available(self, cell):
        return missing("jax", " (pip install jax jaxlib)")

    def prepare(self, cell, batches, params):
        import functools
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)   # float32 stays float32
        self.jax, self.cell = jax, cell
        self.p = {k: jnp.asarray(v) for k, v in params.items()}
        self.batches = [(jnp.asarray(time_major(x)), jnp.asarray(y))
                        for x, y in batches]
        loss = functools.partial(jax_loss, cell)
        self.loss_and_grads = jax.jit(jax.value_and_grad(loss))

        def train_step(p, x, y):
            grads = jax.grad(loss)(p, x, y)
            return {k: p[k] - LR * grads[k] for k in p}
        self._step = jax.jit(train_step, donate_argnums=0)
        self._predict = jax.jit(lambda p, x: jax_last_hidden(cell, p, x)
                                @ p["w_out"].T + p["b_out"])

    def epoch(self):
        p = self.p
        for x, y in self.batches:
            p = self._step(p, x, y)
        self.p = self.jax.block_until_ready(p)

    def infer(self):
        out = [self._predict(self.p, x) for x, _ in self.batches]
        return [np.asarray(o) for o in self.jax.block_until_ready(out)]


class EstimatorImpl(Impl):
    """The same epoch through ``cbptt.RNNRegressor.fit`` (max_iter=1, warm)."""

    name = "estimator"

    def set_threads(self):
        set_native_threads(os.cpu_count())

    def available(self, cell):
        import cbptt
        if not hasattr(cbptt, "RNNRegressor"):
            return "cbptt.RNNRegressor not available yet"
        return None

    def prepare(self, cell, batches, params):
        import cbptt
        H = params["weight_hh"].shape[1]
        self.X = np.concatenate([x for x, _ in batches])
        self.y = np.concatenate([y for _, y in batches])[:, 0]
        wanted = dict(cell=cell, hidden_layer_sizes=(H,), activation="tanh",
                      solver="sgd", momentum=0.0, nesterovs_momentum=False,
                      learning_rate_init=LR, batch_size=BATCH, max_iter=1,
                      shuffle=False, alpha=0.0, clip_norm=None, tol=0.0,
                      early_stopping=False, warm_start=True, random_state=0)
        est = cbptt.RNNRegressor()
        known = est.get_params()
        est.set_params(**{k: v for k, v in wanted.items() if k in known})
        self.est = est
        self._fit()  # initialise; later calls continue warm, one epoch each

    def _fit(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter=1
            self.est.fit(self.X, self.y)

    def epoch(self):
        self._fit()

    def infer(self):
        return self.est.predict(self.X)


def all_impls(with_estimator=True, with_jax=True, with_batch_first=True):
    impls = [CbpttImpl(), CbpttImpl(1), TorchImpl(1), TorchImpl(2), NumpyImpl()]
    if with_jax:
        impls.append(JaxImpl())
    if with_batch_first:
        impls += [CbpttImpl(batch_first=True), TorchImpl(1, batch_first=True),
                  TorchImpl(2, batch_first=True)]
    if with_estimator:
        impls.append(EstimatorImpl())
    return impls


def family(name):
    """An implementation's name without its thread count ("torch bf 2thr"
    -> "torch bf"): the thread counts of one family are siblings."""
    return " ".join(t for t in name.split() if not t.endswith("thr"))


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------

def _timed(impl, fn):
    """ms per call of ``fn``: the mean of back-to-back calls over at least
    MIN_SAMPLE_S (one call when it takes that long), after SETTLE_S idle."""
    impl.set_threads()
    time.sleep(SETTLE_S)  # the previous one's worker threads go to sleep
    gc.collect()
    gc.disable()
    try:
        calls = 0
        t0 = time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= MIN_SAMPLE_S:
                return elapsed / calls * 1e3
    finally:
        gc.enable()


def run_config(impls, cell, dtype, H, T, rounds, log):
    """Median ms per implementation for training and inference, alternating."""
    batches, params = make_job(cell, dtype, H, T)
    ready = []
    skipped = {}
    for impl in impls:
        why = impl.available(cell)
        if why:
            skipped[impl.name] = why
            continue
        impl.prepare(cell, batches, params)
        impl.set_threads()
        impl.epoch()  # warm-up: first-call costs (allocators, JIT caches, BLAS threads)
        impl.infer()
        ready.append(impl)
    train = {i.name: [] for i in ready}
    infer = {i.name: [] for i in ready}
    # A timed warm-up decides who runs every round: on a busy machine a
    # 2-thread run can take 10-100x its 1-thread sibling (every barrier waits
    # for a descheduled thread); a run that slow next to its own sibling is
    # timed once, not every round: still measured, without eating the hour.
    first = {impl.name: _timed(impl, impl.epoch) for impl in ready}
    family_of = {k: family(k) for k in first}           # "torch 2thr" -> "torch"
    fastest = {f: min(v for k, v in first.items() if family_of[k] == f)
               for f in family_of.values()}
    slow = {k for k, v in first.items() if v > SLOW_FACTOR * fastest[family_of[k]]}
    for k in slow:
        train[k].append(first[k])
        infer[k].append(_timed(next(i for i in ready if i.name == k),
                               next(i for i in ready if i.name == k).infer))
    for r in range(rounds):
        order = ready[r % len(ready):] + ready[:r % len(ready)]
        order = [i for i in order if i.name not in slow]
        for impl in order:
            train[impl.name].append(_timed(impl, impl.epoch))
        for impl in order:
            infer[impl.name].append(_timed(impl, impl.infer))
    res = {"train": {k: statistics.median(v) for k, v in train.items()},
           "infer": {k: statistics.median(v) for k, v in infer.items()},
           "train_all": train, "infer_all": infer, "skipped": skipped,
           "once": sorted(slow)}
    line = "  ".join(f"{k} {v:8.2f}" for k, v in res["train"].items())
    log(f"{cell:5s} {dtype} H={H:3d} T={T:3d}  train ms: {line}")
    return res


def run_linearity(cell, dtype, rounds, log, H=64, Ts=(25, 400)):
    """T=400 / T=25 training time of cbptt (default threads and one thread),
    paired: in every round each thread setting times a T=25 epoch and then a
    T=400 epoch, seconds apart, and the ratio of the two is taken, then the
    median over the rounds. The configurations' own medians (run_config) are
    minutes apart, and the machine's speed drifts by tens of percent from
    minute to minute, which lands on the ratio in full."""
    impls = {}
    for T in Ts:
        batches, params = make_job(cell, dtype, H, T)
        for threads in (None, 1):
            impl = CbpttImpl(threads)
            if impl.available(cell):
                return {}
            impl.prepare(cell, batches, params)
            impl.set_threads()
            impl.epoch()                                    # warm-up
            impls[(impl.name, T)] = impl
    ratios = {name: [] for name, _ in impls}
    for r in range(rounds):
        for name in ratios:
            short, long_ = (_timed(impls[(name, T)], impls[(name, T)].epoch)
                            for T in Ts)
            ratios[name].append(long_ / short)
    log(f"{cell:5s} {dtype} T={Ts[1]}/T={Ts[0]} paired: " + "  ".join(
        f"{k} {statistics.median(v):.1f}" for k, v in ratios.items()))
    return ratios


def gemm_peak(dtype, threads, n, repeats=5):
    """GFLOP/s of a large square product through SciPy's BLAS (cbptt's BLAS)."""
    from scipy.linalg import blas
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(1)
    a = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
    b = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
    f = blas.sgemm if dtype == "float32" else blas.dgemm
    best = np.inf
    with threadpool_limits(limits=threads, user_api="blas"):
        f(1.0, a, b)
        for _ in range(repeats):
            t0 = time.perf_counter()
            f(1.0, a, b)
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


# --------------------------------------------------------------------------
# Peak resident memory, one implementation per fresh subprocess
# --------------------------------------------------------------------------

def _status_kb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def memory_probe(impl_name, cell, dtype, H, T):
    """Run in a subprocess: RSS before, peak of 2 epochs, whole-process peak (MiB)."""
    impl = {i.name: i for i in all_impls()}[impl_name]
    why = impl.available(cell)
    if why:
        return {"skipped": why}
    batches, params = make_job(cell, dtype, H, T)
    impl.prepare(cell, batches, params)
    impl.set_threads()
    gc.collect()
    before = _status_kb("VmRSS")
    try:  # reset the peak (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    impl.epoch()
    impl.epoch()
    peak = _status_kb("VmHWM")
    return {"before": before / 1024, "peak": peak / 1024,
            "fit": (peak - before) / 1024}


def measure_memory(impl_names, cell, dtype, H, T):
    out = {}
    for name in impl_names:
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-probe",
               name, cell, dtype, str(H), str(T)]
        env = dict(os.environ)
        if name.startswith("torch"):
            env["OMP_NUM_THREADS"] = str(_threads_of(name))
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            out[name] = {"skipped": "probe failed: " + p.stderr.strip()[-200:]}
        else:
            out[name] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def _git_rev():
    try:
        return subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def machine_info():
    import scipy
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__}
    try:
        import cbptt
        info["cbptt"] = f"{cbptt.__version__} (git {_git_rev()})"
    except ImportError:
        info["cbptt"] = "not installed"
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = "not installed"
    try:
        import jax
        info["jax"] = jax.__version__
    except ImportError:
        info["jax"] = "not installed"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = f"{cpu}, {os.cpu_count()} logical CPUs"
    try:
        from cbptt import _elman, _layer
        info["cbptt kernels"] = ("SIMD level "
                                 f"{['baseline', 'AVX2+FMA', 'AVX-512'][_elman.simd_level()]}, "
                                 f"OpenMP threads {'yes' if _layer.threads_used('elman', 100, 32, 256) > 1 else 'no (1)'}")
    except (ImportError, AttributeError):
        pass
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
    try:
        from threadpoolctl import threadpool_info
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS)
        info["blas"] = "; ".join(
            f"{d['internal_api']} {d.get('version')} {d.get('architecture', '')} "
            f"({os.path.basename(d['filepath'])})" for d in threadpool_info()
            if d["user_api"] == "blas")
    except ImportError:
        pass
    info["load average"] = " ".join(f"{v:.1f}" for v in os.getloadavg())
    return info


def _fmt(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)


def _best(row, prefix, kind):
    """(ms, name) of the faster thread count of the family ``prefix``."""
    vals = [(v, k) for k, v in row[kind].items() if family(k) == prefix]
    return min(vals) if vals else (None, None)


def torch_best(row, kind="train"):
    return _best(row, "torch", kind)[0]


def cbptt_best(row, kind="train"):
    return _best(row, "cbptt", kind)[0]


def _per_round(samples, names):
    """Per round, the fastest of the implementations ``names`` (one timed
    once, see run_config, counts with that time in every round)."""
    lists = [samples[k] for k in names if samples.get(k)]
    if not lists:
        return None
    n = max(len(v) for v in lists)
    return [min(v[r] if len(v) == n else v[0] for v in lists) for r in range(n)]


def _paired(num, den):
    """Median over the rounds of num / den taken in the same round."""
    if not num or not den or len(num) != len(den):
        return None
    return statistics.median(a / b for a, b in zip(num, den))


def paired_ratio(row, kind="train", ours=("cbptt", "cbptt 1thr"),
                 peer="torch"):
    """Peer ms / cbptt ms, paired: in every round the faster of the peer's
    thread counts (family ``peer``: PyTorch's two, time-major; "torch bf";
    "jax") over the faster of ``ours`` (samples seconds apart), then the
    median over the rounds, so the machine's drift from minute to minute
    cancels instead of landing on one side."""
    samples = row.get(f"{kind}_all", {})
    return _paired(_per_round(samples, [k for k in samples
                                        if family(k) == peer]),
                   _per_round(samples, ours))


def estimator_ratio(row):
    """Estimator epoch / functional epoch, paired as in ``paired_ratio``: the
    two medians of the table differ by the machine's drift (the cbptt and
    cbptt 1thr columns, one code path below the thread threshold, differ by
    up to 15% in one run)."""
    samples = row.get("train_all", {})
    return _paired(_per_round(samples, ["estimator"]),
                   _per_round(samples, ["cbptt"]))


def _threads_of(name):
    """Thread count in an implementation's name; the default means all CPUs."""
    counts = [t for t in name.split() if t.endswith("thr")]
    return int(counts[0][:-3]) if counts else min(os.cpu_count(), 2)


def render_jax(results, add, summary):
    """The JAX/XLA table: JAX ms / cbptt ms paired per round, training and
    inference, against issue 21's targets (none when jax did not run)."""
    rows = [(k, r) for k, r in results.items() if r["train_all"].get("jax")]
    if not rows:
        return
    add("## JAX/XLA: one jitted train step\n")
    add("JAX's best form: forward, MSE, `jax.value_and_grad` of the `lax.scan` "
        "over time and the SGD update in one `jax.jit` function per "
        "mini-batch, time-major arrays on the device, float64 through "
        "`jax_enable_x64`; XLA picks its threads. **jax/cbptt** = JAX ms over "
        "cbptt ms (its better thread count), paired per round as the PyTorch "
        "ratio. Target (issue 21): ahead at every configuration, by at least "
        "2x at H <= 64.\n")
    add("| cell | dtype | H | T | cbptt | jax | jax/cbptt | target | met "
        "| inference jax/cbptt |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for (cell, dtype, H, T), row in rows:
        ratio = paired_ratio(row, peer="jax")
        infer = paired_ratio(row, "infer", peer="jax")
        tgt = JAX_TARGETS.get(H, 1.0)
        ok = None if ratio is None else (ratio >= tgt if tgt > 1 else ratio > 1)
        if ok is not None:
            summary.append((f"{cell} {dtype} H={H} T={T}: ahead of JAX"
                            + (f" by >= {tgt:g}x" if tgt > 1 else ""),
                            f"{ratio:.1f}x", ok))
        add(f"| {cell} | {dtype} | {H} | {T} | {_fmt(cbptt_best(row), '{:.2f}')} "
            f"| {_fmt(row['train'].get('jax'), '{:.2f}')} | {_fmt(ratio, '{:.2f}')} "
            f"| {'>= ' + format(tgt, 'g') if tgt > 1 else '> 1'} "
            f"| {'' if ok is None else ('yes' if ok else '**no**')} "
            f"| {_fmt(infer, '{:.2f}')} |")
    add("")


def render_batch_first(results, add):
    """Time-major beside batch-first input, for cbptt and PyTorch."""
    rows = [(k, r) for k, r in results.items() if r["train_all"].get("cbptt bf")]
    if not rows:
        return
    add("## Batch-first input, as users pass it\n")
    add("The same epochs on `(batch, T, features)` arrays: cbptt's "
        "`batch_first=True` (the default of its API, which converts at the "
        "boundary) and PyTorch's `batch_first=True` modules, beside the "
        "time-major runs above. torch = its faster thread count; **ratio** "
        "= PyTorch ms / cbptt ms paired per round in each layout; **bf cost** "
        "= batch-first ms over time-major ms, paired.\n")
    add("| cell | dtype | H | T | cbptt | cbptt bf | torch | torch bf "
        "| ratio time-major | ratio batch-first | cbptt bf cost | torch bf cost |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (cell, dtype, H, T), row in rows:
        tr, samples = row["train"], row["train_all"]
        tm = paired_ratio(row, ours=("cbptt",))
        bf = paired_ratio(row, ours=("cbptt bf",), peer="torch bf")
        c_cost = _paired(_per_round(samples, ["cbptt bf"]),
                         _per_round(samples, ["cbptt"]))
        t_cost = _paired(_per_round(samples, [k for k in samples
                                              if family(k) == "torch bf"]),
                         _per_round(samples, [k for k in samples
                                              if family(k) == "torch"]))
        add(f"| {cell} | {dtype} | {H} | {T} | {_fmt(tr.get('cbptt'), '{:.2f}')} "
            f"| {_fmt(tr.get('cbptt bf'), '{:.2f}')} | {_fmt(torch_best(row))} "
            f"| {_fmt(_best(row, 'torch bf', 'train')[0])} | {_fmt(tm)} | {_fmt(bf)} "
            f"| {_fmt(c_cost, '{:.2f}')} | {_fmt(t_cost, '{:.2f}')} |")
    add("")


def render(results, peaks, memory, info, args, config_peaks=None,
           linearity=None):
    L = []
    add = L.append
    add("# Benchmarks: one training epoch, cbptt vs PyTorch vs JAX vs NumPy\n")
    add("Written by `python benchmarks/bench_epoch.py` "
        f"({'quick' if args.quick else 'full'} run, {args.rounds} alternating rounds, "
        f"medians); {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.\n")
    add("The job (issue 7): 20 mini-batches of 32 sequences, T steps, 8 inputs, one "
        "recurrent layer of H units, linear output on the last step, MSE, full BPTT, "
        "plain SGD on every parameter. **ratio** = PyTorch ms / cbptt ms, each at "
        "its better thread count (1 or 2), same run; **default** = the ratio with "
        "cbptt at its default (OpenMP may use every CPU; the kernels use one "
        "thread where a second does not pay). cbptt = the functional API "
        "(`rnn_forward`/`rnn_backward`, `lstm_forward`/`lstm_backward`, "
        "`gru_forward`/`gru_backward`, time-major "
        "arrays, `input_grad=False`) plus NumPy for the output layer and the "
        "update; PyTorch gets the same time-major batches (`nn.RNN`/`nn.LSTM`/`nn.GRU`'s "
        "default layout; the input needs no gradient). The machine is a 2-CPU "
        "virtual machine whose speed varies by tens of percent from minute to "
        "minute, so absolute times are noisy; the implementations alternate "
        "within a run so the ratios are comparable. Each round's sample of an "
        f"implementation is the mean of back-to-back epochs over at least "
        f"{MIN_SAMPLE_S} s (one epoch when it takes longer), after "
        f"{SETTLE_S} s of idle.\n")
    add("## Machine\n")
    for k, v in info.items():
        add(f"- {k}: {v}")
    add("")
    add("## Training epoch (ms, median)\n")
    add("**ratio** and **default** are paired: in each round PyTorch's time "
        "(its faster thread count in that round) over cbptt's taken seconds "
        "apart, then the median over the rounds (`paired_ratio`); the ms columns "
        "are each implementation's median, so their quotient can differ by the "
        "machine's drift. **est/cbptt** = the estimator's epoch over the "
        "functional one, paired the same way (`estimator_ratio`).\n")
    add("| cell | dtype | H | T | cbptt | cbptt 1thr | torch 1thr | torch 2thr | jax "
        "| numpy | estimator | est/cbptt | ratio | default | target | met |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    summary = []
    for (cell, dtype, H, T), row in results.items():
        tr = row["train"]
        ratio = paired_ratio(row)
        rdef = paired_ratio(row, ours=("cbptt",))
        tgt = TARGETS[(cell, dtype)].get(H) if T == 100 else None
        met = "" if (tgt is None or ratio is None) else ("yes" if ratio >= tgt else "**no**")
        if tgt is not None and ratio is not None:
            summary.append((f"{cell} {dtype} H={H}: ratio >= {tgt:g}",
                            f"{ratio:.1f}x", ratio >= tgt))
        add(f"| {cell} | {dtype} | {H} | {T} | {_fmt(tr.get('cbptt'), '{:.2f}')} "
            f"| {_fmt(tr.get('cbptt 1thr'), '{:.2f}')} "
            f"| {_fmt(tr.get('torch 1thr'))} | {_fmt(tr.get('torch 2thr'))} "
            f"| {_fmt(tr.get('jax'), '{:.2f}')} "
            f"| {_fmt(tr.get('numpy'))} | {_fmt(tr.get('estimator'), '{:.2f}')} "
            f"| {_fmt(estimator_ratio(row), '{:.2f}')} "
            f"| {_fmt(ratio)} | {_fmt(rdef)} | {_fmt(tgt, '{:g}')} | {met} |")
    # issue 17: the GRU's ratio to nn.GRU at least the LSTM's to nn.LSTM
    for (cell, dtype, H, T), row in results.items():
        other = results.get(("lstm", dtype, H, T))
        if cell != "gru" or other is None:
            continue
        g, l_ = paired_ratio(row), paired_ratio(other)
        if g is not None and l_ is not None:
            summary.append((f"gru {dtype} H={H} T={T}: ratio >= the LSTM's",
                            f"{g:.1f}x vs {l_:.1f}x", g >= l_))
    once = sorted({f"{k[0]} {k[1]} H={k[2]} T={k[3]}: {n}"
                   for k, row in results.items() for n in row.get("once", [])})
    if once:
        add(f"\nTimed once (warm-up over {SLOW_FACTOR:g}x its other thread count's, see "
            "`run_config`): " + "; ".join(once) + ".")
    skipped = {}
    for row in results.values():
        skipped.update(row["skipped"])
    for k, v in sorted(skipped.items()):
        add(f"\nSkipped: {k}: {v}.")
    add("")
    add("## Inference: forward pass of the same 20 mini-batches (ms, median)\n")
    add("PyTorch under `torch.no_grad()`, cbptt's LSTM with `cache=False` (the "
        "same: no activations kept for a backward pass); ratio = PyTorch / cbptt, each at its "
        "better thread count, paired per round as for training.\n")
    add("| cell | dtype | H | T | cbptt | cbptt 1thr | torch 1thr | torch 2thr | jax "
        "| numpy | ratio | ahead |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    infer_ok = True
    for (cell, dtype, H, T), row in results.items():
        inf = row["infer"]
        ratio = paired_ratio(row, "infer")
        if ratio is not None:
            infer_ok &= ratio > 1.0
        add(f"| {cell} | {dtype} | {H} | {T} | {_fmt(inf.get('cbptt'), '{:.2f}')} "
            f"| {_fmt(inf.get('cbptt 1thr'), '{:.2f}')} "
            f"| {_fmt(inf.get('torch 1thr'))} | {_fmt(inf.get('torch 2thr'))} "
            f"| {_fmt(inf.get('jax'), '{:.2f}')} "
            f"| {_fmt(inf.get('numpy'))} | {_fmt(ratio)} "
            f"| {'' if ratio is None else ('yes' if ratio > 1 else '**no**')} |")
    if any(cbptt_best(r, "infer") for r in results.values()):
        summary.append(("inference ahead of PyTorch everywhere", "", infer_ok))
    add("")
    render_jax(results, add, summary)
    render_batch_first(results, add)
    add("## Linear in T (training ms at T=400 / T=25, H=64; at most 16 x 1.2 = 19.2)\n")
    add("**paired**: cbptt's T=25 and T=400 epochs timed one after the other in "
        "every round, the median over the rounds of their ratio (what the "
        "target is judged on; the machine's drift from minute to minute "
        "cancels). The other columns: the ratio of the two configurations' "
        "medians above, measured minutes apart.\n")
    add("| cell | dtype | cbptt paired | cbptt 1thr paired | cbptt | cbptt 1thr "
        "| torch 1thr | torch 2thr | numpy |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for cell in CELLS:
        for dtype in DTYPES:
            a, b = results.get((cell, dtype, 64, 25)), results.get((cell, dtype, 64, 400))
            if not (a and b):
                continue
            pairs = (linearity or {}).get((cell, dtype)) or {}
            paired = [statistics.median(pairs[k]) if pairs.get(k) else None
                      for k in ("cbptt", "cbptt 1thr")]
            cells = []
            for name in ["cbptt", "cbptt 1thr", "torch 1thr", "torch 2thr", "numpy"]:
                if name in a["train"] and name in b["train"]:
                    cells.append(b["train"][name] / a["train"][name])
                else:
                    cells.append(None)
            add(f"| {cell} | {dtype} | " + " | ".join(
                _fmt(v) for v in paired + cells) + " |")
            judged = paired if all(v is not None for v in paired) else cells[:2]
            known = [v for v in judged if v is not None]
            if known:
                summary.append((f"{cell} {dtype}: T=400 / T=25 <= 19.2"
                                + (" (paired)" if judged is paired else ""),
                                "/".join(f"{v:.1f}" for v in known),
                                all(v <= 19.2 for v in known)))
    add("")
    if peaks:
        add("## Share of the GEMM peak\n")
        add("Peak: a square product through SciPy's BLAS, sampled twice right "
            "after every configuration's rounds (and 5 times at the end); the "
            "best over the run: "
            + ", ".join(f"{k[0]} {k[1]}thr {v:.0f} GFLOP/s" for k, v in peaks.items())
            + ". Matrix-product flops of one epoch: forward 2BTGH(I+H), backward "
            "2BTGH(I+2H) (G=4 for the LSTM). Each implementation at its better "
            "thread count, compared with the peak at that thread count sampled "
            "right after its configuration (**% peak**; the machine's speed "
            "drifts by tens of percent, so like for like in time), and with the "
            "best peak of the run (**% best**, a lower bound). "
            "**target needs**: the rate the ratio target implies (its flops in "
            "PyTorch's time over the target ratio), as a share of the best peak "
            "of that dtype (any thread count): near or over 100% the target is "
            "out of this machine's reach whatever the code.\n")
        add("| cell | dtype | H | T | GFLOP/epoch | cbptt GFLOP/s | % peak | % best "
            "| torch GFLOP/s | % peak | target needs GFLOP/s | % best peak |")
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (cell, dtype, H, T), row in results.items():
            if T != 100:
                continue
            fl = flops_per_epoch(cell, H, T)
            c, cname = _best(row, "cbptt", "train")
            t, tname = _best(row, "torch", "train")
            here = (config_peaks or {}).get((cell, dtype, H, T), peaks)
            cg = fl / c / 1e6 if c else None
            cp = 100 * cg / here[(dtype, _threads_of(cname))] if cg else None
            cb = 100 * cg / peaks[(dtype, _threads_of(cname))] if cg else None
            tg = fl / t / 1e6 if t else None
            tp = 100 * tg / here[(dtype, _threads_of(tname))] if tg else None
            tgt = TARGETS[(cell, dtype)].get(H)
            need = tg * tgt if (tg and tgt) else None
            best = max((v for k, v in peaks.items() if k[0] == dtype), default=None)
            needp = 100 * need / best if (need and best) else None
            add(f"| {cell} | {dtype} | {H} | {T} | {fl / 1e9:.2f} | {_fmt(cg)} "
                f"| {_fmt(cp, '{:.0f}')} | {_fmt(cb, '{:.0f}')} | {_fmt(tg)} "
                f"| {_fmt(tp, '{:.0f}')} "
                f"| {_fmt(need)} | {_fmt(needp, '{:.0f}')} |")
            if H == 256 and cp is not None:
                summary.append((f"{cell} {dtype} H=256: >= 50% of GEMM peak",
                                f"{cp:.0f}% (of the best: {cb:.0f}%)", cp >= 50))
        add("")
    if memory:
        add("## Peak resident memory (MiB), each implementation in a fresh process\n")
        add("`fit` = peak RSS during two training epochs minus RSS before them "
            "(what the training itself needs); `process` = the whole process's peak "
            "(imports included).\n")
        add("| cell | dtype | H | T | implementation | fit | process |")
        add("|---|---|---:|---:|---|---:|---:|")
        for (cell, dtype, H, T), per in memory.items():
            fits = {}
            for name, m in per.items():
                if "skipped" in m:
                    continue
                fits[name] = m["fit"]
                add(f"| {cell} | {dtype} | {H} | {T} | {name} | {m['fit']:.1f} "
                    f"| {m['peak']:.0f} |")
            t = [v for k, v in fits.items() if family(k) == "torch"]
            if "cbptt" in fits and t:
                summary.append((f"{cell} {dtype} H={H} T={T}: fit memory <= PyTorch's",
                                f"{fits['cbptt']:.1f} vs {min(t):.1f} MiB",
                                fits["cbptt"] <= min(t)))
        add("")
    est_rows = [(k, estimator_ratio(r)) for k, r in results.items()
                if estimator_ratio(r) is not None]
    if est_rows:
        worst = max(est_rows, key=lambda kv: kv[1])
        summary.append(("estimator epoch within 15% of the functional epoch (paired)",
                        f"worst {worst[1]:.2f}x ({worst[0][0]} {worst[0][1]} "
                        f"H={worst[0][2]} T={worst[0][3]})", worst[1] <= 1.15))
    gpu = [(k, cbptt_best(r)) for k, r in results.items()
           if k[2] <= 64 and cbptt_best(r)]
    if gpu:
        add("## The stretch: under PyTorch + cuDNN on one H200 (issue 7's figures)\n")
        add("GPU: 29-40 ms per epoch in float32, 100-120 ms in float64, at every "
            "configuration with H <= 64; compared with the lower end.\n")
        add("| cell | dtype | H | T | cbptt ms | GPU ms | under |")
        add("|---|---|---:|---:|---:|---:|---|")
        ok = True
        for (cell, dtype, H, T), c in gpu:
            ok &= c < GPU_MS[dtype]
            add(f"| {cell} | {dtype} | {H} | {T} | {c:.2f} | {GPU_MS[dtype]:.0f} "
                f"| {'yes' if c < GPU_MS[dtype] else '**no**'} |")
        summary.append(("stretch: under the H200 GPU at every H <= 64", "", ok))
        add("")
    add("## Targets\n")
    add("| target | measured | met |")
    add("|---|---|---|")
    for what, val, ok in summary:
        add(f"| {what} | {val} | {'yes' if ok else '**no**'} |")
    add("")
    add("Rerun: `pip install . && python benchmarks/bench_epoch.py` "
        "(`--quick` for a smoke run; `--help` for the options).")
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: two configurations, 3 rounds, no memory probes, "
                         "prints instead of writing BENCHMARKS.md")
    ap.add_argument("--rounds", type=int, default=None,
                    help="alternating rounds per configuration (default 9; 3 with --quick)")
    ap.add_argument("--cells", nargs="+", choices=CELLS, default=CELLS)
    ap.add_argument("--dtypes", nargs="+", choices=DTYPES, default=DTYPES)
    ap.add_argument("--configs", nargs="+", default=None, metavar="HxT",
                    help="e.g. 64x100 256x100 (default: the issue's five)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    ap.add_argument("--no-estimator", action="store_true",
                    help="skip the RNNRegressor.fit column")
    ap.add_argument("--no-jax", action="store_true",
                    help="skip the JAX/XLA column (skipped anyway without jax)")
    ap.add_argument("--no-batch-first", action="store_true",
                    help="skip the batch-first cbptt and PyTorch columns")
    ap.add_argument("--out", default=None,
                    help="write the report into this file's section for this CPU "
                         "class (default: BENCHMARKS.md at the "
                         "repository root for a full run; none for --quick)")
    ap.add_argument("--memory-probe", nargs=5, metavar=("IMPL", "CELL", "DTYPE", "H", "T"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_probe:
        name, cell, dtype, H, T = args.memory_probe
        print(json.dumps(memory_probe(name, cell, dtype, int(H), int(T))))
        return 0
    args.rounds = args.rounds or (3 if args.quick else 9)
    if args.configs:
        configs = [tuple(int(v) for v in c.lower().split("x")) for c in args.configs]
    else:
        configs = QUICK_CONFIGS if args.quick else CONFIGS
    out = args.out
    if out is None and not args.quick:
        out = os.path.join(os.path.dirname(HERE), "BENCHMARKS.md")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    info = machine_info()
    impls = all_impls(with_estimator=not args.no_estimator,
                      with_jax=not args.no_jax,
                      with_batch_first=not args.no_batch_first)
    results = {}
    # The machine's GEMM peak is what it can do: the best over the run,
    # sampled after every configuration (the machine's speed drifts by tens
    # of percent, so one sample at one moment can be far below it).
    peaks = {}
    n_peak = {"float32": 1024 if args.quick else 2048,
              "float64": 768 if args.quick else 1536}

    config_peaks = {}

    def sample_peaks(dtype, repeats):
        now = {}
        for thr in (1, 2):
            now[(dtype, thr)] = gemm_peak(dtype, thr, n_peak[dtype], repeats)
            peaks[(dtype, thr)] = max(peaks.get((dtype, thr), 0.0),
                                      now[(dtype, thr)])
        return now

    for cell in args.cells:
        for dtype in args.dtypes:
            for H, T in configs:
                results[(cell, dtype, H, T)] = run_config(
                    impls, cell, dtype, H, T, args.rounds, log)
                config_peaks[(cell, dtype, H, T)] = sample_peaks(dtype, 2)
    linearity = {}
    if (64, 25) in configs and (64, 400) in configs:
        for cell in args.cells:
            for dtype in args.dtypes:
                linearity[(cell, dtype)] = run_linearity(cell, dtype,
                                                         args.rounds, log)
    for dtype in args.dtypes:
        sample_peaks(dtype, 5)
        for thr in (1, 2):
            log(f"GEMM peak {dtype} {thr}thr: {peaks[(dtype, thr)]:.1f} GFLOP/s")
    memory = {}
    if not (args.quick or args.no_memory):
        mem_configs = [c for c in [(256, 100), (64, 400)] if c in configs]
        for cell in args.cells:
            for dtype in args.dtypes:
                for H, T in mem_configs:
                    names = [i.name for i in impls]
                    memory[(cell, dtype, H, T)] = measure_memory(names, cell, dtype, H, T)
                    log(f"memory {cell} {dtype} H={H} T={T}: " + ", ".join(
                        f"{k} {v.get('fit', float('nan')):.1f}"
                        for k, v in memory[(cell, dtype, H, T)].items()))
    text = render(results, peaks, memory, info, args, config_peaks,
                  linearity)
    if out:
        # this CPU class's section only: the other classes' tables stay
        heading = cpu_report.write_section(out, TITLE, cpu_report.demote(text))
        log(f"wrote {out}, section {heading!r}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
