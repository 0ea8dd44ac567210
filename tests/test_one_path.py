"""One path per layer pass: the form of the input changes no bit and no message.

Every call of ``rnn_*``, ``cec_*``, ``lstm_*`` and ``gru_*`` computes
through one compiled function (``forward_call``/``backward_call`` of
``_elman`` and ``_lstm``, ``cec_forward_call``/``cec_backward_call``,
``gru_forward_call``/``gru_backward_call``): the checks, the copies, the
kernel and the range checks. When it declines the arguments as
given, the Python checks raise the precise error or convert the arguments
for a second call of the same function. Here:

* every valid ndarray call (any initial state, grad_c, activation, cache,
  dtype, layout) is taken by the first compiled call;
* the route through the Python checks (``checked_route``: the first
  compiled call declines, ``_scan``'s shortcuts answer 'not this case')
  gives the same bits and the same errors as the default call;
* converted inputs (lists, float16 or int arrays, mixed dtypes, strided,
  Fortran-ordered, big-endian, subclasses) give the bits of the plain
  ndarray call with the same values in the working dtype;
* the compiled scans are compared with NumPy.
"""
import dataclasses

import numpy as np
import pytest

from cbptt import _elman, _lstm, _scan, functional
from cbptt import (cec_backward, cec_forward, gru_backward, gru_forward,
                   lstm_backward, lstm_forward, rnn_backward, rnn_forward)
from cbptt._validation import check_preactivation_range

B, T, I, H = 3, 5, 4, 6

#: The compiled one-call functions of each kernel module.
ONE_CALL = {"_elman": ("forward_call", "backward_call"),
            "_lstm": ("forward_call", "backward_call", "gru_forward_call",
                      "gru_backward_call", "cec_forward_call",
                      "cec_backward_call")}


class _Full:
    """``cbptt._scan`` with the common-case shortcuts answering 'not this
    case', so that the functional API runs its full Python checks."""

    def __getattr__(self, name):
        return getattr(_scan, name)

    @staticmethod
    def forward_inputs(*args):
        return None

    @staticmethod
    def grad_input(*args):
        return None


class _Recording:
    """A kernel module whose one-call functions are recorded as ``(name,
    answered)``; with ``decline_first``, every first call of a public
    call (each odd-numbered call of a function) answers None, as for
    arguments it does not take as given, so that the caller checks and
    converts them and calls again."""

    def __init__(self, module, decline_first=False):
        self.module = module
        self.decline_first = decline_first
        self.taken = []
        self.calls = {}

    def __getattr__(self, name):
        real = getattr(self.module, name)
        if name not in ONE_CALL[self.module.__name__.split(".")[-1]]:
            return real

        def call(*args):
            n = self.calls[name] = self.calls.get(name, 0) + 1
            out = None if self.decline_first and n % 2 else real(*args)
            self.taken.append((name, out is not None))
            return out
        return call


@pytest.fixture
def checked_route(monkeypatch):
    """A context manager: inside it, the functional API takes the route
    through its Python checks and conversions."""
    def enter():
        ctx = monkeypatch.context()
        m = ctx.__enter__()
        m.setattr(functional, "_scan", _Full())
        m.setattr(functional, "_elman", _Recording(_elman, True))
        m.setattr(functional, "_lstm", _Recording(_lstm, True))
        return ctx
    return enter


def _tm(v):
    return np.ascontiguousarray(np.swapaxes(v, 0, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [True, False])
def test_every_valid_call_takes_the_one_call(monkeypatch, dtype,
                                             batch_first):
    """With or without initial states, grad_c, a cache, for every
    activation and input_grad: one compiled call per pass, which answers."""
    rec = {m: _Recording(mod) for m, mod in (("_elman", _elman),
                                              ("_lstm", _lstm))}
    for m, r in rec.items():
        monkeypatch.setattr(functional, m, r)
    lay = (lambda v: v) if batch_first else _tm
    kw = dict(batch_first=batch_first)
    a = _arrays("elman", dtype, seed=3)
    x, g = lay(a["x"]), lay(a["grad_h"])
    for act in ("tanh", "logistic", "relu", "identity"):
        for h0 in (None, a["h0"]):
            res = rnn_forward(x, a["weight_ih"], a["weight_hh"], a["bias"],
                              h0, activation=act, **kw)
            for input_grad in (True, False):
                rnn_backward(res, g, input_grad=input_grad, truncate=2)
    assert rec["_elman"].taken == [("forward_call", True),
                                   ("backward_call", True),
                                   ("backward_call", True)] * 8
    for fg in (True, False):
        a = _arrays("lstm", dtype, seed=3, forget_gate=fg)
        x, g, gc = lay(a["x"]), lay(a["grad_h"]), lay(a["grad_c"])
        w = (a["weight_ih"], a["weight_hh"], a["bias"])
        for h0, c0 in ((None, None), (a["h0"], None), (None, a["c0"]),
                       (a["h0"], a["c0"])):
            res = lstm_forward(x, *w, h0, c0, forget_gate=fg, **kw)
            lstm_backward(res, g)
            lstm_backward(res, g, gc, input_grad=False)
            lstm_forward(x, *w, h0, c0, forget_gate=fg, cache=False, **kw)
    a = _arrays("gru", dtype, seed=3)
    x, g = lay(a["x"]), lay(a["grad_h"])
    w = (a["weight_ih"], a["weight_hh"], a["bias"], a["bias_hh"])
    for h0 in (None, a["h0"]):
        res = gru_forward(x, *w, h0, **kw)
        gru_backward(res, g)
        gru_backward(res, g, input_grad=False, truncate=2)
        gru_forward(x, *w, h0, cache=False, **kw)
    a = _arrays("cec", dtype, seed=3)
    x, g = lay(a["x"]), lay(a["grad_h"])
    for h0 in (None, a["h0"]):
        res = cec_forward(x, a["weight_ih"], a["bias"], h0, **kw)
        cec_backward(res, g)
        cec_backward(res, g, input_grad=False, truncate=2)
    lstm_one = [("forward_call", True), ("backward_call", True),
                ("backward_call", True), ("forward_call", True)]
    gru_one = [("gru_forward_call", True), ("gru_backward_call", True),
               ("gru_backward_call", True), ("gru_forward_call", True)]
    cec_one = [("cec_forward_call", True), ("cec_backward_call", True),
               ("cec_backward_call", True)]
    assert rec["_lstm"].taken == lstm_one * 8 + gru_one * 2 + cec_one * 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("model", ["elman", "lstm", "lstm97", "gru", "cec"])
def test_backward_call_refuses_a_non_finite_grad(dtype, bad, model):
    """grad_h is not scanned before the kernel: its non-finite value shows
    in the gradients (with saturated gates too: inf * 0 is NaN), the
    one-call path answers None, and the checks then name grad_h, for every
    step it may sit in."""
    fg = model != "lstm97"
    a = _arrays(model.rstrip("97"), dtype, seed=4, forget_gate=fg)
    for scale in (1.0, 1e4):        # 1e4: every gate saturated
        w = [a["weight_ih"] * scale, a["weight_hh"] * scale,
             a["bias"] * scale]
        if model == "elman":
            res = rnn_forward(a["x"], *w)
            call = _elman.backward_call
            args = (res._x_tm, res.weight_ih, res.weight_hh, res.h0,
                    res._h_tm)
            tail = (True, functional.check_activation("tanh"))
            backward = rnn_backward
        elif model == "gru":
            res = gru_forward(a["x"], *w, a["bias_hh"] * scale)
            call = _lstm.gru_backward_call
            args = (res._x_tm, res.weight_ih, res.weight_hh, res.h0,
                    res._gates_tm, res._hn_tm, res._h_tm)
            tail = (True,)
            backward = gru_backward
        elif model == "cec":
            res = cec_forward(a["x"], w[0], w[2])
            call = _lstm.cec_backward_call
            args = (res._x_tm, res.weight_ih, res._h_tm)
            tail = (True,)
            backward = cec_backward
        else:
            res = lstm_forward(a["x"], *w, forget_gate=fg)
            args = (res._x_tm, res.weight_ih, res.weight_hh, res.h0, res.c0,
                    res._gates_tm, res._c_tm, res._h_tm)
            tail = (True, fg)

            def call(*args):
                return _lstm.backward_call(*args[:9], None, *args[9:])
            backward = lstm_backward
        assert call(*args, a["grad_h"], *tail, 0, False, False) is not None
        for t in range(T):
            for truncate in (0, 2):
                g = a["grad_h"].copy()
                g[1, t, 2] = bad
                assert call(*args, g, *tail, truncate, False,
                            False) is None, (t, truncate)
                with pytest.raises(ValueError, match="grad_h"):
                    backward(res, g, truncate=truncate or None)


BACKWARD_OF = {"elman": rnn_backward, "lstm": lstm_backward,
               "gru": gru_backward, "cec": cec_backward}


def test_a_result_changed_by_hand_is_refused():
    """A result whose arrays do not fit together (a field overwritten
    behind the frozen dataclass's back): the one-call path declines it,
    and a clear error follows the checks of grad_h."""
    import copy
    for model in ("elman", "lstm", "gru", "cec"):
        a = _arrays(model, np.float64)
        res = _run(model, a, want_result=True)
        name = "weight_ih" if model == "cec" else "weight_hh"
        bad = copy.copy(res)
        object.__setattr__(bad, name, getattr(res, name)[:, :-1])
        with pytest.raises(ValueError, match="forward_result's arrays do "
                           "not fit together"):
            BACKWARD_OF[model](bad, a["grad_h"])


@pytest.mark.parametrize("model", ["elman", "lstm", "gru", "cec"])
def test_results_are_made_by_forward_passes_only(model):
    """dataclasses.replace keeps the old result's other fields (its cached
    gates and states), so a replaced weight, state or input of the same
    shape would be differentiated with gates it did not make: a silently
    wrong gradient. Replacing and constructing are refused; copies and
    pickles (which do not run __init__) differentiate as the original."""
    import copy
    import pickle
    a = _arrays(model, np.float64)
    res = _run(model, a, want_result=True)
    producer = {"elman": "rnn_forward", "lstm": "lstm_forward",
                "gru": "gru_forward", "cec": "cec_forward"}[model]
    for f in dataclasses.fields(res):
        value = getattr(res, f.name)
        if not isinstance(value, np.ndarray):
            continue
        with pytest.raises(TypeError, match=f"made only by {producer}"):
            dataclasses.replace(res, **{f.name: value * 2.0})
    with pytest.raises(TypeError, match=f"made only by {producer}"):
        type(res)(**{f.name: getattr(res, f.name)
                     for f in dataclasses.fields(res)})
    backward = BACKWARD_OF[model]
    want = backward(res, a["grad_h"])
    for twin in (copy.copy(res), copy.deepcopy(res),
                 pickle.loads(pickle.dumps(res))):
        got = backward(twin, a["grad_h"])
        for name in want._fields:
            np.testing.assert_array_equal(getattr(got, name),
                                          getattr(want, name))


def _arrays(model, dtype, seed=0, i=I, forget_gate=True):
    rng = np.random.default_rng(seed)
    G = {"elman": 1, "cec": 1, "gru": 3}.get(model, 4 if forget_gate else 3)
    k = 1 / np.sqrt(H)
    return {
        "x": rng.standard_normal((B, T, i)).astype(dtype),
        "weight_ih": rng.uniform(-k, k, (G * H, i)).astype(dtype),
        "weight_hh": rng.uniform(-k, k, (G * H, H)).astype(dtype),
        "bias": rng.uniform(-k, k, G * H).astype(dtype),
        "bias_hh": rng.uniform(-k, k, G * H).astype(dtype),
        "h0": rng.standard_normal((B, H)).astype(dtype),
        "c0": rng.standard_normal((B, H)).astype(dtype),
        "grad_h": rng.standard_normal((B, T, H)).astype(dtype),
        "grad_c": rng.standard_normal((B, T, H)).astype(dtype),
    }


def _run(model, a, batch_first=True, states=True, input_grad=True,
         truncate=None, activation="tanh", forget_gate=True, grad_c=True,
         want_result=False):
    """Forward and backward; every array of both results, by name (the
    forward result itself with ``want_result``)."""
    x, g, gc = a["x"], a["grad_h"], a["grad_c"]
    if not batch_first:
        x, g, gc = (_tm(v) if isinstance(v, np.ndarray) else v
                    for v in (x, g, gc))
    h0 = a["h0"] if states else None
    w = (a["weight_ih"], a["weight_hh"], a["bias"])
    if model == "elman":
        res = rnn_forward(x, *w, h0, activation=activation,
                          batch_first=batch_first)
        if want_result:
            return res
        grads = rnn_backward(res, g, truncate=truncate, input_grad=input_grad)
    elif model == "gru":
        res = gru_forward(x, *w, a["bias_hh"], h0, batch_first=batch_first)
        if want_result:
            return res
        grads = gru_backward(res, g, truncate=truncate, input_grad=input_grad)
    elif model == "cec":
        res = cec_forward(x, a["weight_ih"], a["bias"], h0,
                          batch_first=batch_first)
        if want_result:
            return res
        grads = cec_backward(res, g, truncate=truncate, input_grad=input_grad)
    else:
        res = lstm_forward(x, *w, h0, a["c0"] if states else None,
                           forget_gate=forget_gate, batch_first=batch_first)
        if want_result:
            return res
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


def _both(checked_route, fn):
    """fn() by default and by the route through the Python checks, which
    must have been taken: each compiled call first declined, then answered
    (or raised)."""
    got = fn()
    ctx = checked_route()
    try:
        want = fn()
        for module in (functional._elman, functional._lstm):
            for k, (name, answered) in enumerate(module.taken):
                assert answered == (k % 2 == 1), module.taken
    finally:
        ctx.__exit__(None, None, None)
    return got, want


MODELS = [("elman", "tanh", True), ("elman", "relu", True),
          ("elman", "logistic", True), ("elman", "identity", True),
          ("lstm", None, True), ("lstm", None, False), ("gru", None, True),
          ("cec", None, True)]


@pytest.mark.parametrize("model,activation,forget_gate", MODELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize("input_grad,truncate", [(True, None), (False, 2)])
def test_checked_route_gives_the_same_bits(checked_route, model, activation,
                                           forget_gate, dtype, batch_first,
                                           states, input_grad, truncate):
    a = _arrays(model, dtype, forget_gate=forget_gate)
    kw = dict(batch_first=batch_first, states=states, input_grad=input_grad,
              truncate=truncate, forget_gate=forget_gate,
              grad_c=states)
    if activation:
        kw["activation"] = activation
    # the ndarrays are the compiled checks' common case
    x = a["x"] if batch_first else np.ascontiguousarray(a["x"].swapaxes(0, 1))
    gates = {"elman": 1, "cec": 1, "gru": 3}.get(model,
                                                 4 if forget_gate else 3)
    assert _scan.forward_inputs(
        x, batch_first, gates, a["weight_ih"],
        None if model == "cec" else a["weight_hh"], a["bias"],
        a["h0"] if states else None,
        a["c0"] if states and model == "lstm" else None,
        model != "cec") is not None
    got, want = _both(checked_route, lambda: _run(model, a, **kw))
    _assert_same(got, want)


@pytest.mark.parametrize("model", ["elman", "lstm", "gru", "cec"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("i", [1, 8, 9, 21, 300])
def test_wide_and_narrow_inputs(checked_route, model, dtype, i):
    """Rows shorter and longer than the copy chunk (8), and more columns
    than the scans keep on the stack (256)."""
    a = _arrays(model, dtype, seed=i, i=i)
    for bf in (True, False):
        got, want = _both(checked_route, lambda: _run(model, a, batch_first=bf))
        _assert_same(got, want)


def _skip_absent(model, name):
    """Skip an argument the ``model``'s layer does not have."""
    if model != "lstm" and name in ("c0", "grad_c"):
        pytest.skip("only the LSTM layer has a cell state")
    if model != "gru" and name == "bias_hh":
        pytest.skip("only the GRU keeps a recurrent bias apart")
    if model == "cec" and name == "weight_hh":
        pytest.skip("the CEC's self-weight is fixed at 1")


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


@pytest.mark.parametrize("model", ["elman", "lstm", "gru", "cec"])
@pytest.mark.parametrize("name", ["x", "weight_ih", "weight_hh", "bias",
                                  "bias_hh", "h0", "c0", "grad_h", "grad_c"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_unusual_memory_gives_the_same_bits(checked_route, model, name,
                                            batch_first):
    _skip_absent(model, name)
    base = _arrays(model, np.float32, seed=3)
    for label, v in _unusual(name, base[name]):
        a = dict(base, **{name: v})
        if name in ("x", "grad_h", "grad_c") and not batch_first:
            # time-major: the unusual memory is the caller's time-major array
            tm = np.ascontiguousarray(np.swapaxes(base[name], 0, 1))
            v = dict(_unusual(name, tm))[label]
            a = dict(base, **{name: _BatchFirstOf(v)})
        got, want = _both(checked_route, lambda: _run_tm(model, a, batch_first))
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
    elif model == "gru":
        res = gru_forward(x, a["weight_ih"], a["weight_hh"], a["bias"],
                          a["bias_hh"], a["h0"], batch_first=False)
        grads = gru_backward(res, g)
    elif model == "cec":
        res = cec_forward(x, a["weight_ih"], a["bias"], a["h0"],
                          batch_first=False)
        grads = cec_backward(res, g)
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
    "bias_hh": [np.zeros(H - 1), [1.0] * H, "inf"],
    "h0": [np.zeros((B + 1, H)), np.zeros(H), "nan"],
    "c0": [np.zeros((B, H + 1)), "inf"],
    "grad_h": [np.zeros((T, B, H)), np.zeros((B, T, H + 1)), "nan", "inf",
               np.zeros((B, T, H), complex), None],
    "grad_c": [np.zeros((B, T, H - 1)), "nan"],
    "batch_first": ["yes", 1, None],
    "input_grad": [1, "no"],
    "truncate": [0, 1.5, True],
}


@pytest.mark.parametrize("model", ["elman", "lstm", "gru", "cec"])
@pytest.mark.parametrize("name", sorted(BAD))
def test_errors_are_the_same(checked_route, model, name):
    _skip_absent(model, name)
    a = _arrays(model, np.float32, seed=5)
    fwd, bwd = {"elman": (rnn_forward, rnn_backward),
                "lstm": (lstm_forward, lstm_backward),
                "gru": (gru_forward, gru_backward),
                "cec": (cec_forward, cec_backward)}[model]
    fw_names = {"elman": ("x", "weight_ih", "weight_hh", "bias", "h0"),
                "cec": ("x", "weight_ih", "bias", "h0"),
                "lstm": ("x", "weight_ih", "weight_hh", "bias", "h0", "c0"),
                "gru": ("x", "weight_ih", "weight_hh", "bias", "bias_hh",
                        "h0")}[model]
    for dtype in (np.float32, np.float64):
        base = {k: v.astype(dtype) for k, v in a.items()}
        for v in _error_values(name, base, model):
            def call():
                kw = {k: base[k] for k in fw_names}
                bw = {"grad_h": base["grad_h"], "truncate": None,
                      "input_grad": True}
                if model == "lstm":
                    bw["grad_c"] = base["grad_c"]
                if name in kw:
                    kw[name] = v
                elif name == "batch_first":
                    kw["batch_first"] = v
                else:
                    bw[name] = v
                if model == "gru":
                    kw["bias_ih"] = kw.pop("bias")
                try:
                    res = fwd(**kw)
                    bwd(res, **bw)
                except (ValueError, TypeError) as exc:
                    return type(exc), str(exc)
                return None
            got, want = _both(checked_route, call)
            assert want is not None, (name, repr(v)[:60])
            assert got == want, (name, repr(v)[:60])


def _error_values(name, base, model):
    """Bad values of argument ``name`` in the dtype of ``base``."""
    G = {"elman": 1, "cec": 1, "gru": 3}.get(model, 4)
    dtype = base["x"].dtype
    for v in BAD[name]:
        if isinstance(v, str) and v in ("nan", "inf"):
            w = base[name].copy()
            w.flat[w.size // 3] = np.nan if v == "nan" else np.inf
            yield w
        elif isinstance(v, np.ndarray) and v.dtype == np.float64:
            if name in ("weight_ih", "weight_hh", "bias", "bias_hh") \
                    and v.ndim:
                v = np.zeros((v.shape[0] * G,) + v.shape[1:])
            yield v.astype(dtype)
        else:
            yield v


@pytest.mark.parametrize("model", ["elman", "lstm", "gru", "cec"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_overflow_in_the_error_signals_is_still_refused(checked_route, model,
                                                        batch_first):
    """delta (and delta_c) are scanned only when the bias gradient (their
    sum) is not finite: an overflow in them must still be found and named."""
    a = _arrays(model, np.float32, seed=7)
    for name in (["grad_h", "grad_c"] if model == "lstm" else ["grad_h"]):
        b = dict(a, **{name: np.full((B, T, H), 3e38, np.float32)})

        def call():
            try:
                _run(model, b, batch_first=batch_first)
            except ValueError as exc:
                return str(exc)
            return None
        got, want = _both(checked_route, call)
        assert got is not None and got == want
        assert "overflowed the float32 range" in got
        assert ": delta overflowed" in got, got


def _record_output_checks(monkeypatch):
    """The calls of ``_lstm``'s ``check_outputs_finite``, ``(func, dtype,
    advice, arrays)``, recorded from now on (each still checks)."""
    real = _lstm.check_outputs_finite
    seen = []

    def record(func, dtype, advice, **arrays):
        seen.append((func, dtype, advice, arrays))
        real(func, dtype, advice, **arrays)
    monkeypatch.setattr(_lstm, "check_outputs_finite", record)
    return seen


@pytest.mark.parametrize("batch_first", [True, False])
def test_cec_states_checked_finite(checked_route, monkeypatch, batch_first):
    """The carousel sums its input over the steps, which no bound on one
    step covers: the compiled path hands its states to the finiteness
    check (with the advice cec_forward always gave), and an overflow is
    refused with the same message by both routes."""
    seen = _record_output_checks(monkeypatch)
    a = _arrays("cec", np.float32, seed=9)
    res = _run("cec", a, batch_first=batch_first, want_result=True)
    (func, dtype, advice, arrays), = seen
    assert (func, dtype) == ("cec_forward", np.float32)
    assert arrays["h"] is res._h_tm and list(arrays) == ["h"]
    assert advice == ("The carousel sums its input over all T steps: scale "
                      "x, weight_ih, bias or h0 down.")
    # each step adds about 3e38: finite inputs, s(1) overflows
    b = dict(a, x=np.full((B, T, I), 1e38, np.float32),
             weight_ih=np.ones((H, I), np.float32))

    def call():
        try:
            _run("cec", b, batch_first=batch_first)
        except ValueError as exc:
            return str(exc)
        return None
    got, want = _both(checked_route, call)
    assert got == want and got.startswith(
        "cec_forward: h overflowed the float32 range"), got
    assert got.endswith("scale x, weight_ih, bias or h0 down. Or pass "
                        "float64 arrays."), got


def test_forward_inputs_without_recurrent_weights():
    """recurrent=False (the CEC): w_hh is not looked at and its copy is
    None; the default still refuses a w_hh that is not an array."""
    a = _arrays("cec", np.float64)
    args = (a["x"], True, 1, a["weight_ih"])
    for w_hh in (None, a["weight_hh"], "anything"):
        x_tm, x_max, w, u, b, h0, c0 = _scan.forward_inputs(
            *args, w_hh, a["bias"], a["h0"], None, False)
        assert u is None and c0 is None
        for c, v in ((w, a["weight_ih"]), (b, a["bias"]), (h0, a["h0"])):
            np.testing.assert_array_equal(c, v, strict=True)
            assert not c.flags.writeable and not np.shares_memory(c, v)
    assert _scan.forward_inputs(*args, None, a["bias"], a["h0"],
                                None) is None
    # the bias and the states are still checked in that mode
    for bias, h0 in ((a["bias"][:-1], a["h0"]), (a["bias"], a["h0"][:-1]),
                     (a["bias"].astype(np.float32), None)):
        assert _scan.forward_inputs(*args, None, bias, h0, None,
                                    False) is None


@pytest.mark.parametrize("cache", [True, False])
def test_lstm_cell_states_scanned_from_a_given_c0(monkeypatch, cache):
    """c is scanned for an overflow when c0 is given (from zero it cannot
    overflow: |c(t)| <= t + 1), and then only: the compiled path hands the
    result's c (all of it, or c(T-1) without the cache) to the check, whose
    message names c."""
    seen = _record_output_checks(monkeypatch)
    a = _arrays("lstm", np.float32, seed=8)
    w = (a["weight_ih"], a["weight_hh"], a["bias"])
    lstm_forward(a["x"], *w, a["h0"], cache=cache)
    assert seen == []
    res = lstm_forward(a["x"], *w, a["h0"], a["c0"], cache=cache)
    (func, dtype, advice, arrays), = seen
    assert arrays["c"] is res._c_tm and list(arrays) == ["c"]
    c = np.array(arrays["c"])
    c[-1, 0, 0] = np.inf
    with pytest.raises(ValueError, match="lstm_forward: c overflowed "
                       "the float32 range .* Scale c0 down"):
        functional.check_outputs_finite(func, dtype, advice, c=c)


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
    r3 = cec_forward(a["x"], a["weight_ih"][:H], a["bias"][:H])
    assert set(vars(r3)) == functional._FIELDS[type(r3)]
    with pytest.raises(AttributeError):
        r3.h = None


def _converted(v):
    """The same values in other forms, each with the working dtype it
    implies next to float32 arrays (float64 unless float32)."""
    yield "list", v.tolist(), np.float64
    yield "float16", v.astype(np.float16), np.float64
    yield "int16", np.rint(v * 4).astype(np.int16), np.float64
    yield "float64", v.astype(np.float64), np.float64
    yield "strided", np.repeat(v, 2, axis=-1)[..., ::2], np.float32
    yield "fortran", np.asfortranarray(v), np.float32
    # the other byte order is the same float32 (np.result_type('>f4', '<f4'))
    yield "byte-swapped", v.astype(v.dtype.newbyteorder("S")), np.float32
    yield "subclass", v.view(type("Sub", (np.ndarray,), {})), np.float32


@pytest.mark.parametrize("model", ["elman", "lstm", "gru", "cec"])
@pytest.mark.parametrize("name", ["x", "weight_ih", "weight_hh", "bias",
                                  "bias_hh", "h0", "c0"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_converted_inputs_give_the_bits_of_ndarrays(model, name,
                                                    batch_first):
    """An argument in another form computes exactly what the plain
    C-contiguous ndarrays of its values in the working dtype compute."""
    _skip_absent(model, name)
    base = _arrays(model, np.float32, seed=11)
    for label, v, dtype in _converted(base[name]):
        values = np.asarray(v, dtype=np.float64).astype(np.float32)
        if dtype == np.float64:
            values = np.asarray(v, dtype=np.float64)
        want_in = {k: np.array(a, dtype=dtype) for k, a in base.items()}
        want_in[name] = np.array(values, dtype=dtype)
        got_in = dict(base, **{name: v})
        if not batch_first and name == "x":
            got_in["x"] = np.swapaxes(v if isinstance(v, np.ndarray)
                                      else np.array(v), 0, 1)
            want_in["x"] = np.ascontiguousarray(want_in["x"].swapaxes(0, 1))
            kw = dict(batch_first=False)
            got = _run_given_x(model, got_in, kw)
            want = _run_given_x(model, want_in, kw)
        else:
            got = _run(model, got_in, batch_first=batch_first)
            want = _run(model, want_in, batch_first=batch_first)
        _assert_same(got, want)


def _run_given_x(model, a, kw):
    """_run with ``x`` passed as it is (already time-major)."""
    g = np.ascontiguousarray(np.swapaxes(a["grad_h"], 0, 1))
    w = (a["weight_ih"], a["weight_hh"], a["bias"])
    if model == "elman":
        res = rnn_forward(a["x"], *w, a["h0"], **kw)
        grads = rnn_backward(res, g)
    elif model == "gru":
        res = gru_forward(a["x"], *w, a["bias_hh"], a["h0"], **kw)
        grads = gru_backward(res, g)
    elif model == "cec":
        res = cec_forward(a["x"], a["weight_ih"], a["bias"], a["h0"], **kw)
        grads = cec_backward(res, g)
    else:
        res = lstm_forward(a["x"], *w, a["h0"], a["c0"], **kw)
        grads = lstm_backward(res, g)
    out = {f"res.{k}": v for k, v in vars(res).items()}
    out.update({f"grad.{k}": v for k, v in grads._asdict().items()})
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("Tn", [1, 2, 5])
@pytest.mark.parametrize("states", [True, False])
def test_gru_without_cache(dtype, batch_first, Tn, states):
    """cache=False: h (and h_last) bitwise those of the cached pass, no
    gates kept, and gru_backward refuses the result."""
    a = _arrays("gru", dtype, seed=12)
    x = a["x"][:, :Tn]
    if not batch_first:
        x = _tm(x)
    args = (x, a["weight_ih"], a["weight_hh"], a["bias"], a["bias_hh"],
            a["h0"] if states else None)
    full = gru_forward(*args, batch_first=batch_first)
    lean = gru_forward(*args, batch_first=batch_first, cache=False)
    assert lean.h.tobytes() == full.h.tobytes()
    assert lean.h.strides == full.h.strides
    assert lean.h_last.tobytes() == full.h_last.tobytes()
    assert lean.gates is None and lean._gates_tm is None
    assert lean._hn_tm is None and not lean.h.flags.writeable
    with pytest.raises(ValueError, match="computed with cache=False.*"
                       "gru_forward with cache=True"):
        gru_backward(lean, np.zeros_like(lean.h))
    with pytest.raises(TypeError, match="cache=1 has type int"):
        gru_forward(*args, cache=1)
