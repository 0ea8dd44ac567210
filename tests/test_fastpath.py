"""The functional API's common-case fast path changes no bit and no message.

``rnn_forward`` / ``lstm_forward`` first try one compiled call
(``_scan.forward_inputs``) that checks and copies every array of the common
case, and the backward passes ``_scan.grad_input`` for ``grad_h`` / ``grad_c``;
the Elman and LSTM layers' whole calls are one each (``forward_fast`` and
``backward_fast`` of ``_elman`` and ``_lstm``); anything else goes through
the full validation.
Here every result and every error of the default call is compared with the
same call with every shortcut switched off (``full_path``), for the common
case and for inputs that must leave it; and the compiled pieces are compared
with NumPy.
"""
import numpy as np
import pytest

from cbptt import _elman, _lstm, _scan, functional
from cbptt import (lstm_backward, lstm_forward, rnn_backward, rnn_forward)
from cbptt._validation import check_preactivation_range

B, T, I, H = 3, 5, 4, 6


class _Full:
    """``cbptt._scan`` with the common-case shortcuts answering 'not this
    case', so that the functional API runs its full validation."""

    def __getattr__(self, name):
        return getattr(_scan, name)

    @staticmethod
    def forward_inputs(*args):
        return None

    @staticmethod
    def grad_input(*args):
        return None


class _NoOneCall:
    """A kernel module (``cbptt._elman`` or ``cbptt._lstm``) whose one-call
    fast paths answer 'not this case'."""

    def __init__(self, module):
        self.module = module

    def __getattr__(self, name):
        return getattr(self.module, name)

    @staticmethod
    def forward_fast(*args):
        return None

    @staticmethod
    def backward_fast(*args):
        return None


@pytest.fixture
def full_path(monkeypatch):
    """A context manager: inside it, the functional API takes no shortcut."""
    def enter():
        ctx = monkeypatch.context()
        m = ctx.__enter__()
        m.setattr(functional, "_scan", _Full())
        m.setattr(functional, "_elman", _NoOneCall(_elman))
        m.setattr(functional, "_lstm", _NoOneCall(_lstm))
        return ctx
    return enter


class _Counting:
    """A kernel module counting the fast calls that returned a result."""

    def __init__(self, module):
        self.module = module
        self.taken = []

    def __getattr__(self, name):
        return getattr(self.module, name)

    def forward_fast(self, *args):
        out = self.module.forward_fast(*args)
        self.taken.append(("forward", out is not None))
        return out

    def backward_fast(self, *args):
        out = self.module.backward_fast(*args)
        self.taken.append(("backward", out is not None))
        return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("input_grad", [True, False])
def test_elman_one_call_paths_are_taken(monkeypatch, dtype, batch_first,
                                        input_grad):
    """The common case (h0 None, tanh or logistic) runs each pass in one
    compiled call; an initial state or a non-saturating activation does not
    (the bound on the pre-activations then needs the states' maxima)."""
    counting = _Counting(_elman)
    monkeypatch.setattr(functional, "_elman", counting)
    a = _arrays("elman", dtype, seed=3)
    x = a["x"] if batch_first else np.ascontiguousarray(a["x"].swapaxes(0, 1))
    g = (a["grad_h"] if batch_first
         else np.ascontiguousarray(a["grad_h"].swapaxes(0, 1)))
    for activation in ("tanh", "logistic"):
        res = rnn_forward(x, a["weight_ih"], a["weight_hh"], a["bias"],
                          activation=activation, batch_first=batch_first)
        rnn_backward(res, g, input_grad=input_grad)
    assert counting.taken == [("forward", True), ("backward", True)] * 2
    counting.taken.clear()
    rnn_forward(x, a["weight_ih"], a["weight_hh"], a["bias"], a["h0"],
                batch_first=batch_first)
    res = rnn_forward(x, a["weight_ih"], a["weight_hh"], a["bias"],
                      activation="relu", batch_first=batch_first)
    assert counting.taken == [("forward", False)]
    rnn_backward(res, g, input_grad=input_grad)   # any result: one call
    assert counting.taken == [("forward", False), ("backward", True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_elman_backward_fast_refuses_a_non_finite_grad(dtype, bad):
    """grad_h is not scanned before the kernel: its non-finite value shows
    in the gradients, and the one-call path answers None (the checked path
    then names grad_h), for every step it may sit in."""
    a = _arrays("elman", dtype, seed=4)
    res = rnn_forward(a["x"], a["weight_ih"], a["weight_hh"], a["bias"],
                      batch_first=True)
    args = (res._x_tm, res.weight_ih, res.weight_hh, res.h0, res._h_tm)
    assert _elman.backward_fast(*args, a["grad_h"], True, 2, 0,
                                False) is not None
    for t in range(T):
        for truncate in (0, 2):
            g = a["grad_h"].copy()
            g[1, t, 2] = bad
            assert _elman.backward_fast(*args, g, True, 2, truncate,
                                        False) is None, (t, truncate)
            with pytest.raises(ValueError, match="grad_h"):
                rnn_backward(res, g, truncate=truncate or None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("forget_gate", [True, False])
def test_lstm_one_call_paths_are_taken(monkeypatch, dtype, batch_first,
                                       forget_gate):
    """The common case (no h0, c0; backward without grad_c) runs each pass
    in one compiled call, with and without the cache; initial states and
    grad_c take the checked path."""
    counting = _Counting(_lstm)
    monkeypatch.setattr(functional, "_lstm", counting)
    a = _arrays("lstm", dtype, seed=3, forget_gate=forget_gate)
    tm = (lambda v: v) if batch_first else (
        lambda v: np.ascontiguousarray(v.swapaxes(0, 1)))
    x, g, gc = tm(a["x"]), tm(a["grad_h"]), tm(a["grad_c"])
    w = (a["weight_ih"], a["weight_hh"], a["bias"])
    kw = dict(batch_first=batch_first, forget_gate=forget_gate)
    for input_grad in (True, False):
        res = lstm_forward(x, *w, **kw)
        lstm_backward(res, g, input_grad=input_grad, truncate=2)
    lstm_forward(x, *w, cache=False, **kw)
    assert counting.taken == [("forward", True), ("backward", True)] * 2 + [
        ("forward", True)]
    counting.taken.clear()
    lstm_forward(x, *w, a["h0"], **kw)
    lstm_forward(x, *w, None, a["c0"], **kw)
    assert counting.taken == []
    lstm_backward(res, g, gc)
    assert counting.taken == []
    res = lstm_forward(x, *w, a["h0"], a["c0"], **kw)
    counting.taken.clear()
    lstm_backward(res, g)           # any result: one call
    assert counting.taken == [("backward", True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("forget_gate", [True, False])
def test_lstm_backward_fast_refuses_a_non_finite_grad(dtype, bad,
                                                      forget_gate):
    """As for the Elman layer: a non-finite grad_h, wherever it sits and
    with saturated gates too (inf * 0 is NaN), shows in the gradients, so
    the one-call path answers None and the checked path names grad_h."""
    a = _arrays("lstm", dtype, seed=4, forget_gate=forget_gate)
    G = 4 if forget_gate else 3
    for scale in (1.0, 1e4):        # 1e4: every gate saturated
        w = [a["weight_ih"] * scale, a["weight_hh"] * scale,
             a["bias"] * scale]
        res = lstm_forward(a["x"], *w, forget_gate=forget_gate)
        args = (res._x_tm, res.weight_ih, res.weight_hh, res.h0, res.c0,
                res._gates_tm, res._c_tm, res._h_tm)
        assert _lstm.backward_fast(*args, a["grad_h"], True, forget_gate, 0,
                                   False) is not None
        assert res.gates.shape[2] == G * H
        for t in range(T):
            for truncate in (0, 2):
                g = a["grad_h"].copy()
                g[1, t, 2] = bad
                assert _lstm.backward_fast(*args, g, True, forget_gate,
                                           truncate, False) is None, (
                                               t, truncate)
                with pytest.raises(ValueError, match="grad_h"):
                    lstm_backward(res, g, truncate=truncate or None)


def _arrays(model, dtype, seed=0, i=I, forget_gate=True):
    rng = np.random.default_rng(seed)
    G = 1 if model == "elman" else (4 if forget_gate else 3)
    k = 1 / np.sqrt(H)
    return {
        "x": rng.standard_normal((B, T, i)).astype(dtype),
        "weight_ih": rng.uniform(-k, k, (G * H, i)).astype(dtype),
        "weight_hh": rng.uniform(-k, k, (G * H, H)).astype(dtype),
        "bias": rng.uniform(-k, k, G * H).astype(dtype),
        "h0": rng.standard_normal((B, H)).astype(dtype),
        "c0": rng.standard_normal((B, H)).astype(dtype),
        "grad_h": rng.standard_normal((B, T, H)).astype(dtype),
        "grad_c": rng.standard_normal((B, T, H)).astype(dtype),
    }


def _run(model, a, batch_first=True, states=True, input_grad=True,
         truncate=None, activation="tanh", forget_gate=True, grad_c=True):
    """Forward and backward; every array of both results, by name."""
    x, g, gc = a["x"], a["grad_h"], a["grad_c"]
    if not batch_first:
        x, g, gc = (np.ascontiguousarray(np.swapaxes(v, 0, 1))
                    if isinstance(v, np.ndarray) else v for v in (x, g, gc))
    h0 = a["h0"] if states else None
    if model == "elman":
        res = rnn_forward(x, a["weight_ih"], a["weight_hh"], a["bias"], h0,
                          activation=activation, batch_first=batch_first)
        grads = rnn_backward(res, g, truncate=truncate, input_grad=input_grad)
    else:
        res = lstm_forward(x, a["weight_ih"], a["weight_hh"], a["bias"], h0,
                           a["c0"] if states else None,
                           forget_gate=forget_gate, batch_first=batch_first)
        grads = lstm_backward(res, g, gc if grad_c else None,
                              truncate=truncate, input_grad=input_grad)
    out = {f"res.{k}": v for k, v in vars(res).items()}
    out.update({f"grad.{k}": v for k, v in grads._asdict().items()})
    return out


def _assert_same(got, want):
    assert got.keys() == want.keys()
    for k, w in want.items():
        v = got[k]
        if not isinstance(w, np.ndarray):
            assert v == w and type(v) is type(w), k
            continue
        assert type(v) is np.ndarray, k
        assert v.dtype == w.dtype and v.shape == w.shape, k
        assert v.strides == w.strides, k                 # the same layout
        assert v.flags.writeable == w.flags.writeable, k
        np.testing.assert_array_equal(v, w, err_msg=k, strict=True)
        # bitwise, NaN payloads and signed zeros included
        assert v.tobytes() == w.tobytes(), k


def _both(full_path, fn):
    """fn() by default and with the shortcuts off."""
    got = fn()
    ctx = full_path()
    try:
        want = fn()
    finally:
        ctx.__exit__(None, None, None)
    return got, want


MODELS = [("elman", "tanh", True), ("elman", "relu", True),
          ("elman", "logistic", True), ("elman", "identity", True),
          ("lstm", None, True), ("lstm", None, False)]


@pytest.mark.parametrize("model,activation,forget_gate", MODELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize("input_grad,truncate", [(True, None), (False, 2)])
def test_fast_path_gives_the_same_bits(full_path, model, activation,
                                       forget_gate, dtype, batch_first,
                                       states, input_grad, truncate):
    a = _arrays(model, dtype, forget_gate=forget_gate)
    kw = dict(batch_first=batch_first, states=states, input_grad=input_grad,
              truncate=truncate, forget_gate=forget_gate,
              grad_c=states)
    if activation:
        kw["activation"] = activation
    # the common case does take the shortcut
    x = a["x"] if batch_first else np.ascontiguousarray(a["x"].swapaxes(0, 1))
    gates = 1 if model == "elman" else (4 if forget_gate else 3)
    assert _scan.forward_inputs(
        x, batch_first, gates, a["weight_ih"], a["weight_hh"], a["bias"],
        a["h0"] if states else None,
        a["c0"] if states and model == "lstm" else None) is not None
    got, want = _both(full_path, lambda: _run(model, a, **kw))
    _assert_same(got, want)


@pytest.mark.parametrize("model", ["elman", "lstm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("i", [1, 8, 9, 21, 300])
def test_fast_path_wide_and_narrow_inputs(full_path, model, dtype, i):
    """Rows shorter and longer than the copy chunk (8), and more columns
    than the scans keep on the stack (256)."""
    a = _arrays(model, dtype, seed=i, i=i)
    for bf in (True, False):
        got, want = _both(full_path, lambda: _run(model, a, batch_first=bf))
        _assert_same(got, want)


def _unusual(name, v):
    """The same values in memory the shortcut must copy right or refuse."""
    every = tuple(slice(None, None, 2) for _ in v.shape)
    big = np.zeros(tuple(2 * s for s in v.shape), v.dtype)
    big[every] = v
    back = tuple(slice(None, None, -1) for _ in v.shape)
    yield "strided", big[every]
    yield "negative", np.ascontiguousarray(v[back])[back]
    yield "fortran", np.asfortranarray(v)
    yield "float64", v.astype(np.float64)
    yield "big-endian", v.astype(v.dtype.newbyteorder(">"))
    yield "list", v.tolist()
    yield "matrix-like subclass", v.view(type("Sub", (np.ndarray,), {}))
    if v.ndim == 3:
        yield "zero-stride", np.broadcast_to(v[:1], v.shape)
        yield "int", np.rint(v * 3).astype(np.int16)


@pytest.mark.parametrize("model", ["elman", "lstm"])
@pytest.mark.parametrize("name", ["x", "weight_ih", "weight_hh", "bias", "h0",
                                  "c0", "grad_h", "grad_c"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_unusual_memory_gives_the_same_bits(full_path, model, name,
                                            batch_first):
    if model == "elman" and name in ("c0", "grad_c"):
        pytest.skip("the Elman layer has no cell state")
    base = _arrays(model, np.float32, seed=3)
    for label, v in _unusual(name, base[name]):
        a = dict(base, **{name: v})
        if name in ("x", "grad_h", "grad_c") and not batch_first:
            # time-major: the unusual memory is the caller's time-major array
            tm = np.ascontiguousarray(np.swapaxes(base[name], 0, 1))
            v = dict(_unusual(name, tm))[label]
            a = dict(base, **{name: _BatchFirstOf(v)})
        got, want = _both(full_path, lambda: _run_tm(model, a, batch_first))
        _assert_same(got, want)


class _BatchFirstOf:
    """Marks an argument already in time-major layout (see _run_tm)."""

    def __init__(self, v):
        self.v = v


def _run_tm(model, a, batch_first):
    """_run, where _BatchFirstOf arguments are passed as they are."""
    if batch_first:
        return _run(model, a, batch_first=True)
    a = dict(a)
    for k in ("x", "grad_h", "grad_c"):
        if isinstance(a[k], _BatchFirstOf):
            a[k] = a[k].v
        else:
            a[k] = np.ascontiguousarray(np.swapaxes(a[k], 0, 1))
    x, g, gc = a["x"], a["grad_h"], a["grad_c"]
    if model == "elman":
        res = rnn_forward(x, a["weight_ih"], a["weight_hh"], a["bias"],
                          a["h0"], batch_first=False)
        grads = rnn_backward(res, g)
    else:
        res = lstm_forward(x, a["weight_ih"], a["weight_hh"], a["bias"],
                           a["h0"], a["c0"], batch_first=False)
        grads = lstm_backward(res, g, gc)
    out = {f"res.{k}": v for k, v in vars(res).items()}
    out.update({f"grad.{k}": v for k, v in grads._asdict().items()})
    return out


def test_unusual_inputs_that_leave_the_shortcut():
    a = _arrays("lstm", np.float32)
    args = [a["x"], True, 4, a["weight_ih"], a["weight_hh"], a["bias"],
            a["h0"], a["c0"]]
    assert _scan.forward_inputs(*args) is not None
    for pos, name in [(0, "x"), (3, "weight_ih"), (4, "weight_hh"),
                      (5, "bias"), (6, "h0"), (7, "c0")]:
        for label, v in _unusual(name, args[pos]):
            changed = list(args)
            changed[pos] = v
            fast = _scan.forward_inputs(*changed)
            # x may have any strides (it is copied anyway); a 1-D array in
            # Fortran order is C-contiguous too
            takes = (pos == 0 and label in ("strided", "negative", "fortran",
                                            "zero-stride")
                     or (label == "fortran" and args[pos].ndim == 1))
            assert (fast is not None) == takes, (name, label)
    # a float64 x with float32 weights (and the other way round): float64
    # is the working dtype, which only the full path converts to
    args64 = list(args)
    args64[0] = args[0].astype(np.float64)
    assert _scan.forward_inputs(*args64) is None
    # the wrong number of gates, shapes that do not fit, no hidden unit
    assert _scan.forward_inputs(*args[:2], 3, *args[3:]) is None
    assert _scan.forward_inputs(*args[:2], 4, a["weight_ih"][:, :-1],
                                *args[4:]) is None
    assert _scan.forward_inputs(*args[:2], 4, a["weight_ih"][:0],
                                a["weight_hh"][:0], a["bias"][:0],
                                None, None) is None
    assert _scan.forward_inputs(args[0][:, :0], *args[1:]) is None
    assert _scan.forward_inputs(args[0], False, *args[2:]) is None  # B != T
    for bad in (np.nan, np.inf, -np.inf):
        for pos in (0, 3, 4, 5, 6, 7):
            changed = [np.array(v, copy=True) if isinstance(v, np.ndarray)
                       else v for v in args]
            changed[pos].flat[changed[pos].size // 2] = bad
            assert _scan.forward_inputs(*changed) is None, (pos, bad)


def test_fast_copies_are_private_read_only_and_equal():
    a = _arrays("lstm", np.float64)
    for bf in (True, False):
        x = a["x"] if bf else np.ascontiguousarray(a["x"].swapaxes(0, 1))
        ins = (a["weight_ih"], a["weight_hh"], a["bias"], a["h0"], a["c0"])
        x_tm, x_max, *copies = _scan.forward_inputs(x, bf, 4, *ins)
        want_tm = np.swapaxes(a["x"], 0, 1)
        np.testing.assert_array_equal(x_tm, want_tm, strict=True)
        np.testing.assert_array_equal(
            x_max, np.abs(want_tm).max(axis=(0, 1)), strict=True)
        for c, v in zip((x_tm, *copies), (x, *ins)):
            assert not c.flags.writeable and c.flags.c_contiguous
            assert not np.shares_memory(c, v)
        for c, v in zip(copies, ins):
            np.testing.assert_array_equal(c, v, strict=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grad_input(dtype):
    g = np.random.default_rng(1).standard_normal((T, B, H)).astype(dtype)
    size = np.dtype(dtype).itemsize
    assert _scan.grad_input(g, False, T, B, H, size) is g   # no copy needed
    gb = np.ascontiguousarray(g.swapaxes(0, 1))
    got = _scan.grad_input(gb, True, T, B, H, size)
    assert got.flags.c_contiguous and not np.shares_memory(got, gb)
    np.testing.assert_array_equal(got, g, strict=True)
    strided = np.zeros((2 * T, B, H), dtype)[::2]
    strided[...] = g
    got = _scan.grad_input(strided, False, T, B, H, size)
    np.testing.assert_array_equal(got, g, strict=True)
    assert got.flags.c_contiguous
    other = 4 if size == 8 else 8
    assert _scan.grad_input(g, False, T, B, H, other) is None     # dtype
    assert _scan.grad_input(g, True, T, B, H, size) is None       # shape
    assert _scan.grad_input(g[:, :, :-1], False, T, B, H, size) is None
    assert _scan.grad_input(g.tolist(), False, T, B, H, size) is None
    for bad in (np.nan, np.inf):
        for v, bf in ((g, False), (gb, True), (strided, False)):
            v = v.copy()
            v[-1, -1, -1] = bad
            assert _scan.grad_input(v, bf, T, B, H, size) is None


BAD = {
    "x": [None, np.zeros((B, T)), np.zeros((0, T, I)), np.zeros((B, T, I),
          complex), np.zeros((B, T, I), bool), "nan", "inf", [[1, 2], [3]]],
    "weight_ih": [None, np.zeros((H, I + 1)), np.zeros((0, I)), "nan",
                  np.zeros((H, I), object)],
    "weight_hh": [np.zeros((H, H + 1)), np.zeros(H), "nan", "inf"],
    "bias": [np.zeros(H + 1), np.zeros((H, 1)), "nan"],
    "h0": [np.zeros((B + 1, H)), np.zeros(H), "nan"],
    "c0": [np.zeros((B, H + 1)), "inf"],
    "grad_h": [np.zeros((T, B, H)), np.zeros((B, T, H + 1)), "nan", "inf",
               np.zeros((B, T, H), complex), None],
    "grad_c": [np.zeros((B, T, H - 1)), "nan"],
    "batch_first": ["yes", 1, None],
    "input_grad": [1, "no"],
    "truncate": [0, 1.5, True],
}


@pytest.mark.parametrize("model", ["elman", "lstm"])
@pytest.mark.parametrize("name", sorted(BAD))
def test_errors_are_the_same(full_path, model, name):
    if model == "elman" and name in ("c0", "grad_c"):
        pytest.skip("the Elman layer has no cell state")
    a = _arrays(model, np.float32, seed=5)
    for dtype in (np.float32, np.float64):
        base = {k: v.astype(dtype) for k, v in a.items()}
        for v in _error_values(name, base, model):
            def call():
                kw = {k: base[k] for k in ("x", "weight_ih", "weight_hh",
                                           "bias", "h0")}
                if model == "lstm":
                    kw["c0"] = base["c0"]
                bw = {"grad_h": base["grad_h"], "truncate": None,
                      "input_grad": True}
                if model == "lstm":
                    bw["grad_c"] = base["grad_c"]
                fw_extra = {}
                if name in kw:
                    kw[name] = v
                elif name == "batch_first":
                    fw_extra["batch_first"] = v
                else:
                    bw[name] = v
                fwd, bwd = ((rnn_forward, rnn_backward) if model == "elman"
                            else (lstm_forward, lstm_backward))
                try:
                    res = fwd(**kw, **fw_extra)
                    bwd(res, **bw)
                except (ValueError, TypeError) as exc:
                    return type(exc), str(exc)
                return None
            got, want = _both(full_path, call)
            assert want is not None, (name, repr(v)[:60])
            assert got == want, (name, repr(v)[:60])


def _error_values(name, base, model):
    """Bad values of argument ``name`` in the dtype of ``base``."""
    G = 1 if model == "elman" else 4
    dtype = base["x"].dtype
    for v in BAD[name]:
        if isinstance(v, str) and v in ("nan", "inf"):
            w = base[name].copy()
            w.flat[w.size // 3] = np.nan if v == "nan" else np.inf
            yield w
        elif isinstance(v, np.ndarray) and v.dtype == np.float64:
            if name in ("weight_ih", "weight_hh", "bias") and v.ndim:
                v = np.zeros((v.shape[0] * G,) + v.shape[1:])
            yield v.astype(dtype)
        else:
            yield v


@pytest.mark.parametrize("model", ["elman", "lstm"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_overflow_in_the_error_signals_is_still_refused(full_path, model,
                                                        batch_first):
    """delta (and delta_c) are scanned only when the bias gradient (their
    sum) is not finite: an overflow in them must still be found and named."""
    a = _arrays(model, np.float32, seed=7)
    for name in (["grad_h"] if model == "elman" else ["grad_h", "grad_c"]):
        b = dict(a, **{name: np.full((B, T, H), 3e38, np.float32)})

        def call():
            try:
                _run(model, b, batch_first=batch_first)
            except ValueError as exc:
                return str(exc)
            return None
        got, want = _both(full_path, call)
        assert got is not None and got == want
        assert "overflowed the float32 range" in got
        assert ": delta overflowed" in got, got


def test_lstm_cell_states_scanned_from_a_given_c0(monkeypatch):
    """c is scanned for an overflow when c0 is given (from zero it cannot
    overflow: |c(t)| <= t + 1): a kernel that left an infinity in c is then
    refused, by the shortcut and by the full path alike."""
    real = functional._lstm

    class Overflowing:
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def lstm_forward(*args):
            real.lstm_forward(*args)
            args[-2][-1, 0, 0] = np.inf          # c (T-1) of the first row

    monkeypatch.setattr(functional, "_lstm", Overflowing())
    a = _arrays("lstm", np.float32, seed=8)
    for scan in (_scan, _Full()):
        monkeypatch.setattr(functional, "_scan", scan)
        with pytest.raises(ValueError, match="lstm_forward: c overflowed "
                           "the float32 range .* Scale c0 down"):
            lstm_forward(a["x"], a["weight_ih"], a["weight_hh"], a["bias"],
                         a["h0"], a["c0"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("Bn,Tn,F", [(1, 1, 1), (3, 5, 7), (4, 3, 8),
                                     (2, 6, 17), (5, 2, 300)])
def test_time_major_copies_every_layout(dtype, Bn, Tn, F):
    rng = np.random.default_rng(F)
    src = rng.standard_normal((Bn, Tn, F)).astype(dtype)
    layouts = {
        "batch-first": src,
        "time-major view": np.ascontiguousarray(src.swapaxes(0, 1))
        .swapaxes(0, 1),
        "strided": np.repeat(src, 2, axis=2)[:, :, ::2],
        "reversed": np.ascontiguousarray(src[::-1, ::-1, ::-1])[::-1, ::-1,
                                                                  ::-1],
        "fortran": np.asfortranarray(src),
    }
    want = np.swapaxes(src, 0, 1)
    for label, s in layouts.items():
        out = np.empty((Tn, Bn, F), dtype)
        cm = _scan.time_major(s, out)
        np.testing.assert_array_equal(out, want, strict=True, err_msg=label)
        np.testing.assert_array_equal(cm, np.abs(want).max(axis=(0, 1)),
                                      err_msg=label)
    bad = src.copy()
    bad[0, -1, F - 1] = np.nan
    out = np.empty((Tn, Bn, F), dtype)
    cm = _scan.time_major(bad.swapaxes(0, 1).copy().swapaxes(0, 1), out)
    assert np.isnan(cm[F - 1]) and np.isfinite(cm[:F - 1]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_bound_and_finite_scans(dtype):
    rng = np.random.default_rng(2)
    b = rng.standard_normal(12).astype(dtype)
    w1 = rng.standard_normal((12, 5)).astype(dtype)
    w2 = rng.standard_normal((12, 3)).astype(dtype)
    v1, v2 = rng.random(5), rng.random(3)
    assert _scan.preact_bound_or_none(b, w1, v1, w2, v2) == \
        _scan.preact_bound(b, w1, v1, w2, v2)
    assert _scan.preact_bound_or_none(b, np.asfortranarray(w1), v1, w2,
                                      v2) is None
    assert _scan.preact_bound_or_none(b, w1.astype(np.float16), v1, w2,
                                      v2) is None
    assert _scan.preact_bound_or_none(b, w1, v1.astype(np.float32), w2,
                                      v2) is None
    with pytest.raises(ValueError, match="inconsistent shapes"):
        _scan.preact_bound_or_none(b, w1, v2, w2, v2)
    # the range check still refuses what is too large, by either route
    with pytest.raises(ValueError, match="too large"):
        check_preactivation_range("f", dtype, b, (w1, np.full(5, np.inf)),
                                  (w2, v2))
    assert _scan.all_finite_arrays([b, None, w1, w2])
    assert not _scan.all_finite_arrays([b, np.asfortranarray(w1)])
    assert not _scan.all_finite_arrays([b[:0]])
    assert not _scan.all_finite_arrays([w1.tolist()])
    for bad in (np.nan, np.inf, -np.inf):
        w = w2.copy()
        w[-1, -1] = bad
        assert not _scan.all_finite_arrays([b, w])


def test_results_have_every_field():
    a = _arrays("lstm", np.float32)
    res = lstm_forward(a["x"], a["weight_ih"], a["weight_hh"], a["bias"])
    assert set(vars(res)) == functional._FIELDS[type(res)]
    assert "batch_first=True" in repr(res) and res.batch_first is True
    with pytest.raises(AttributeError):
        res.h = None                         # still frozen
    r2 = rnn_forward(a["x"], a["weight_ih"][:H], a["weight_hh"][:H],
                     a["bias"][:H], batch_first=True)
    assert set(vars(r2)) == functional._FIELDS[type(r2)]
