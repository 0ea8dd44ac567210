"""Safe persistence: est.save(path) / cbptt.load(path) round trips, and every
kind of bad file (truncated, tampered, wrong version, pickle-carrying, not on
the allow-list) is refused with a clear ValueError, never unpickled, never a
crash.

The format is generic (constructor parameters plus the fitted attributes
whose names end in "_"), so it is tested on small stand-in estimators built
on the functional API here, and on cbptt's own estimators when they exist.
"""
import io
import numbers
import json
import os
import pickle
import re
import zipfile

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions

import cbptt
from cbptt import _persistence, rnn_forward
from model_files import _edit_metadata, _members, _refused, _write


# -- stand-in estimators -------------------------------------------------------

class _TinyRNN(BaseEstimator):
    """A random Elman layer and a ridge readout of its last state: enough to
    have constructor parameters, fitted arrays, lists and private state."""

    _persistent_attributes = ("_targets_ndim",)

    _parameter_constraints = {
        "hidden_layer_sizes": [tuple],
        "activation": [StrOptions({"tanh", "relu", "logistic", "identity"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "random_state": [None, numbers.Integral],
    }

    def __init__(self, hidden_layer_sizes=(6,), *, activation="tanh",
                 alpha=1e-3, random_state=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.random_state = random_state

    def _features(self, X):
        c = self._net
        return rnn_forward(X, c["weight_ih"], c["weight_hh"], c["bias"],
                           activation=self.activation).h_last

    def _fit_readout(self, X, Y):
        X = np.asarray(X)
        rng = np.random.default_rng(self.random_state)
        H = self.hidden_layer_sizes[0]
        dtype = X.dtype if X.dtype == np.float32 else np.float64
        self._net = dict(
            weight_ih=(rng.standard_normal((H, X.shape[2])) * 0.5).astype(dtype),
            weight_hh=(rng.standard_normal((H, H)) * 0.3).astype(dtype),
            bias=np.zeros(H, dtype))
        F = self._features(X)
        A = F.T @ F + self.alpha * np.eye(H)
        w = np.linalg.solve(A, F.T @ Y).astype(dtype)
        self.coefs_ = [dict(self._net),
                       dict(weight=w.T.copy(), bias=np.zeros(Y.shape[1], dtype))]
        self.n_features_in_ = X.shape[2]
        self.loss_curve_ = [float(np.mean((F @ w - Y) ** 2)), 0.5, 0.25]
        self.n_iter_ = 3
        self.best_loss_ = np.inf
        self.validation_scores_ = None

    def _rebuild_from_fitted(self):
        """The private network, from coefs_ (what cbptt.load calls)."""
        layer = self.coefs_[0]
        H = self.hidden_layer_sizes[0]
        if layer["weight_ih"].shape != (H, self.n_features_in_):
            raise ValueError(f"coefs_[0]['weight_ih'] has shape "
                             f"{layer['weight_ih'].shape}; expected "
                             f"{(H, self.n_features_in_)}")
        self._net = dict(layer)

    def _raw(self, X):
        out = self.coefs_[-1]
        return self._features(X) @ out["weight"].T + out["bias"]

    def save(self, path):
        return _persistence.save(self, path)


@_persistence.allow
class TinyRNNRegressor(RegressorMixin, _TinyRNN):
    def fit(self, X, y):
        self._targets_ndim = np.ndim(y)
        self._fit_readout(X, np.asarray(y, np.float64).reshape(len(y), -1))
        return self

    def predict(self, X):
        z = self._raw(X)
        return z[:, 0] if self._targets_ndim == 1 else z


@_persistence.allow
class TinyRNNClassifier(ClassifierMixin, _TinyRNN):
    def fit(self, X, y):
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        self._fit_readout(X, np.eye(len(self.classes_))[codes])
        return self

    def predict(self, X):
        return self.classes_[np.argmax(self._raw(X), axis=1)]


def _data(seed=0, n=40, T=7, I=3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, I)).astype(dtype)
    return X, X.sum((1, 2))


LABELS = {
    "str": np.array(["ant", "bee", "cat"]),
    "object-str": np.array(["ant", "bee", "cat"], dtype=object),
    "int": np.array([3, -1, 7]),
    "float": np.array([0.5, 1.5, -2.0]),
    "bool": np.array([True, False, True]),
}


def _fitted(kind="regressor", labels="str", dtype=np.float64):
    X, y = _data(dtype=dtype)
    if kind == "regressor":
        return TinyRNNRegressor(hidden_layer_sizes=(5,), random_state=1).fit(X, y), X
    lab = LABELS[labels]
    return TinyRNNClassifier(random_state=2).fit(X, lab[np.arange(len(X)) % len(lab)]), X


def _assert_same(a, b):
    """Equal values with equal types, recursively (arrays: dtype and bits)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


# -- round trips ---------------------------------------------------------------

@pytest.mark.parametrize("kind,labels", [("regressor", None)] +
                         [("classifier", k) for k in LABELS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_keeps_everything(tmp_path, kind, labels, dtype):
    est, X = _fitted(kind, labels, dtype)
    path = tmp_path / "model.npz"
    assert est.save(path) == str(path)
    loaded = cbptt.load(path)
    assert type(loaded) is type(est)
    _assert_same(loaded.get_params(), est.get_params())
    fitted = {k: v for k, v in vars(est).items() if k.endswith("_")}
    assert {k for k in vars(loaded) if k.endswith("_")} == set(fitted)
    if kind == "regressor":
        assert loaded._targets_ndim == est._targets_ndim == 1
    for k, v in fitted.items():
        _assert_same(getattr(loaded, k), v)
    _assert_same(loaded.predict(X), est.predict(X))
    assert loaded.coefs_[0]["weight_ih"].dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_file_of_the_other_byte_order_loads(tmp_path, dtype):
    """A model file written on a machine of the other byte order (its
    arrays '>f4' here) loads as the same model in the native dtype, its
    optimizer state included (both were refused)."""
    X, y = _data(dtype=dtype)
    est = cbptt.RNNRegressor(hidden_layer_sizes=(3,), max_iter=2,
                             random_state=0)
    with pytest.warns(Warning):                         # not converged
        est.fit(X, y)
    path = est.save(tmp_path / "model.npz")
    m = _members(path)
    meta = json.loads(m["metadata.json"])
    for key, spec in meta["arrays"].items():
        a = np.load(io.BytesIO(m[f"arrays/{key}.npy"]))
        if a.dtype.kind == "f":
            a = a.astype(a.dtype.newbyteorder("S"))
            spec["dtype"] = a.dtype.str
            buf = io.BytesIO()
            np.save(buf, a)
            m[f"arrays/{key}.npy"] = buf.getvalue()
    m["metadata.json"] = json.dumps(meta)
    loaded = cbptt.load(_write(tmp_path / "swapped.npz", m))
    assert loaded._params.dtype == dtype and loaded._params.dtype.isnative
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    for e in (est, loaded):                 # the optimizer continues alike
        e.partial_fit(X, y)
    np.testing.assert_array_equal(loaded._params, est._params)


def test_unfitted_estimator_round_trips(tmp_path):
    est = TinyRNNRegressor(hidden_layer_sizes=(3,), alpha=0.5)
    cbptt.load(est.save(tmp_path / "m.npz"))
    loaded = cbptt.load(tmp_path / "m.npz")
    assert loaded.get_params() == est.get_params()
    assert not hasattr(loaded, "coefs_")


def test_the_file_is_a_documented_npz(tmp_path):
    est, _ = _fitted("classifier", "str")
    path = est.save(tmp_path / "m.npz")
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read("metadata.json"))
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    assert meta["format"] == "cbptt-estimator" and meta["format_version"] == 1
    assert meta["cbptt_version"] == cbptt.__version__
    assert meta["class"] == "TinyRNNClassifier"
    assert meta["params"]["hidden_layer_sizes"] == {"__tuple__": [6]}
    assert meta["fitted"]["best_loss_"] == {"__float__": "inf"}
    npz = np.load(path, allow_pickle=False)        # NumPy reads it as an .npz
    for key, spec in meta["arrays"].items():
        a = npz[f"arrays/{key}"]
        assert a.dtype.str == spec["dtype"] and list(a.shape) == spec["shape"]


def test_pickle_keeps_working():
    est, X = _fitted("classifier", "object-str")
    again = pickle.loads(pickle.dumps(est))
    _assert_same(again.predict(X), est.predict(X))


# -- what save refuses -----------------------------------------------------------

class NotAllowed(TinyRNNRegressor):
    pass


def test_save_refuses_classes_off_the_allow_list(tmp_path):
    X, y = _data()
    with pytest.raises(TypeError, match="cannot save a NotAllowed"):
        _persistence.save(NotAllowed().fit(X, y), tmp_path / "m.npz")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("value", [lambda: 0, object(), {1: 2},
                                   np.array([object()]), 1 + 2j])
def test_save_refuses_what_needs_pickle_and_writes_nothing(tmp_path, value):
    est, _ = _fitted()
    path = tmp_path / "m.npz"
    est.save(path)
    before = path.read_bytes()
    est.extra_ = value
    with pytest.raises(TypeError, match="extra_"):
        est.save(path)
    assert path.read_bytes() == before            # the old file is intact
    assert os.listdir(tmp_path) == ["m.npz"]      # and no temporary is left


def test_save_into_a_directory_or_a_missing_one_names_the_path(tmp_path):
    """The error names the caller's path, not save's temporary file, and
    nothing is written."""
    est, _ = _fitted()
    with pytest.raises(IsADirectoryError, match=re.escape(
            f"cannot save to {str(tmp_path)!r}: it is a directory; expected "
            "the path of a file")) as info:
        est.save(tmp_path)
    assert ".cbptt-save" not in str(info.value)
    missing = tmp_path / "no" / "such" / "m.npz"
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"cannot save to {str(missing)!r}: its directory "
            f"{str(missing.parent)!r} does not exist")) as info:
        est.save(missing)
    assert ".cbptt-save" not in str(info.value)
    assert os.listdir(tmp_path) == []


# -- crafting bad files ------------------------------------------------------------

def _npy(a, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


class _Boom:
    """Unpickling this writes a marker file: proof that code would run."""

    marker = None

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def saved(tmp_path):
    est, X = _fitted("classifier", "str")
    return est.save(tmp_path / "m.npz")


@pytest.fixture
def boom(tmp_path):
    _Boom.marker = str(tmp_path / "EXECUTED")
    yield _Boom()
    assert not os.path.exists(_Boom.marker), "the file's code ran"


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        cbptt.load("/nonexistent/model.npz")


def test_a_pickle_is_never_unpickled(tmp_path, boom):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(boom))
    _refused(path, "not a ZIP")


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04" + b"\0" * 40,
                                     b"\x93NUMPY" + b"\0" * 100])
def test_not_a_model_file(tmp_path, content):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    _refused(path)


def test_truncated_files_are_refused(saved, tmp_path):
    data = open(saved, "rb").read()
    cuts = sorted({1, 22, 100, len(data) // 3, len(data) // 2, len(data) - 23,
                   len(data) - 1} | set(range(0, len(data), max(1, len(data) // 25))))
    for n in cuts:
        path = tmp_path / f"cut{n}.npz"
        path.write_bytes(data[:n])
        _refused(path)


def test_a_flipped_byte_fails_the_crc(saved, tmp_path):
    data = bytearray(open(saved, "rb").read())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo("arrays/a0.npy")
    pos = info.header_offset + 30 + len(info.filename) + info.file_size - 3
    data[pos] ^= 0xFF                               # inside the array's data
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    _refused(path, "corrupt")


@pytest.mark.parametrize("change,words", [
    (lambda m: m.update(format_version=2), ["newer", "upgrade"]),
    (lambda m: m.update(format_version=0), ["format_version is 0"]),
    (lambda m: m.update(format_version="1"), ["format_version"]),
    (lambda m: m.update(format="something-else"), ["does not describe"]),
    (lambda m: m.pop("params"), ["keys"]),
    (lambda m: m.update(extra=1), ["keys"]),
    (lambda m: m.update({"class": "os.system"}), ["not one cbptt loads"]),
    (lambda m: m.update({"class": "NotAllowed"}), ["not one cbptt loads"]),
    (lambda m: m.update({"class": ["TinyRNNClassifier"]}), ["not one cbptt loads"]),
    (lambda m: m["params"].update(evil=1), ["evil"]),
    (lambda m: m["params"].pop("alpha"), ["alpha"]),
    (lambda m: m["params"].update(alpha=-1.0), ["alpha"]),
    (lambda m: m["params"].update(activation="softmax"), ["activation"]),
    (lambda m: m["fitted"].update(_net=1), ["_net"]),
    (lambda m: m["fitted"].update(__class__="x"), ["__class__"]),
    (lambda m: m["fitted"].update(n_iter_={"__pickle__": "x"}), ["n_iter_"]),
    (lambda m: m["fitted"].update(n_iter_={"__array__": "a99"}), ["unknown array"]),
    (lambda m: m["fitted"].update(n_iter_={"__float__": "1e999"}), ["n_iter_"]),
    (lambda m: m["fitted"].update(n_iter_={"__scalar__": "|O", "value": 1}), ["scalar"]),
    (lambda m: m["arrays"]["a0"].update(shape=[99, 2]), ["shape"]),
    (lambda m: m["arrays"]["a0"].update(dtype="<f4"), ["dtype"]),
    (lambda m: m["arrays"]["a0"].update(dtype="|O"), ["object"]),
    (lambda m: m["arrays"]["a0"].update(dtype=[["a", "<f8"]]), ["malformed"]),
    (lambda m: m["arrays"]["a0"].update(dtype="not a dtype"), ["dtype"]),
    (lambda m: m["arrays"]["a0"].update(shape=[-1]), ["malformed"]),
    (lambda m: m["arrays"].update(a99={"dtype": "<f8", "shape": [1]}), ["missing"]),
])
def test_tampered_metadata_is_refused(saved, change, words):
    _refused(_edit_metadata(saved, change), *words)


def test_weights_inconsistent_with_the_parameters_are_refused(saved):
    def change(meta):
        meta["params"]["hidden_layer_sizes"] = {"__tuple__": [7]}
    _refused(_edit_metadata(saved, change), "inconsistent", "weight_ih")


def test_metadata_that_is_not_json(saved):
    m = _members(saved)
    for bad in [b"{not json", b"\xff\xfe", b'{"format": NaN}', b"[" * 100000,
                b'{"format_version": 1' + b"0" * 5000 + b"}"]:
        m["metadata.json"] = bad
        _refused(_write(saved, m))


def test_extra_missing_and_duplicated_members_are_refused(saved, tmp_path):
    m = _members(saved)
    _refused(_write(tmp_path / "a.npz", dict(m, **{"evil.py": b"import os"})),
             "evil.py")
    _refused(_write(tmp_path / "b.npz", {k: v for k, v in m.items()
                                         if k != "arrays/a0.npy"}), "missing")
    _refused(_write(tmp_path / "c.npz", {k: v for k, v in m.items()
                                         if k != "metadata.json"}), "metadata.json")
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as z:
        for name, data in m.items():
            z.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate"):
            z.writestr("arrays/a0.npy", m["arrays/a0.npy"])
    _refused(tmp_path / "d.npz", "duplicated")


def test_compressed_members_are_refused(saved, tmp_path):
    _refused(_write(tmp_path / "z.npz", _members(saved), zipfile.ZIP_DEFLATED),
             "compressed")


def test_an_object_array_is_refused_and_never_unpickled(saved, boom):
    m = _members(saved)
    m["arrays/a0.npy"] = _npy(np.array([boom], dtype=object), allow_pickle=True)
    _refused(_write(saved, m), "arrays/a0.npy")
    # ... also when the metadata admits it is an object array
    _refused(_edit_metadata(saved, lambda meta: meta["arrays"]["a0"].update(
        dtype="|O", shape=[1])), "object")


def test_a_pickle_in_an_array_member_is_never_unpickled(saved, boom):
    m = _members(saved)
    m["arrays/a0.npy"] = pickle.dumps(boom)
    _refused(_write(saved, m), "not a valid .npy")


def test_array_data_shorter_or_longer_than_its_header(saved):
    m = _members(saved)
    good = m["arrays/a0.npy"]
    for bad in (good[:-8], good + b"\0" * 8):
        m["arrays/a0.npy"] = bad
        _refused(_write(saved, m), "arrays/a0.npy")


def test_header_disagreeing_with_metadata(saved):
    m = _members(saved)
    meta = json.loads(m["metadata.json"])
    spec = meta["arrays"]["a0"]
    a = np.zeros(spec["shape"], np.float32)          # same shape, other dtype
    m["arrays/a0.npy"] = _npy(a)
    _refused(_write(saved, m), "the metadata says")
    m["arrays/a0.npy"] = _npy(np.zeros(7))           # other shape
    _refused(_write(saved, m), "the metadata says")


def test_non_finite_weights_are_refused(saved):
    m = _members(saved)
    meta = json.loads(m["metadata.json"])
    key = meta["fitted"]["coefs_"][0]["__dict__"]["weight_ih"]["__array__"]
    spec = meta["arrays"][key]
    a = np.zeros(spec["shape"], spec["dtype"])
    a.flat[0] = np.nan
    m[f"arrays/{key}.npy"] = _npy(a)
    _refused(_write(saved, m), "NaN")


def test_huge_declared_arrays_do_not_allocate(saved):
    def change(meta):
        meta["arrays"]["a0"]["shape"] = [2**40, 2**20]
    _refused(_edit_metadata(saved, change), "the metadata says")


# -- cbptt's own estimators ----------------------------------------------------

needs_estimators = pytest.mark.skipif(
    not hasattr(cbptt, "RNNRegressor"),
    reason="the estimators (RNNRegressor/RNNClassifier) are not in this build")


def _real_fitted(cls_name, cell, output):
    import warnings
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 6, 2))
    if output == "last":
        y = X.sum(axis=(1, 2))
    else:
        y = np.cumsum(X.sum(axis=2), axis=1)
    if cls_name == "RNNClassifier":
        y = np.where(y > 0, "up", "down")
    est = getattr(cbptt, cls_name)(hidden_layer_sizes=(5, 4), cell=cell,
                                   output=output, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y), X, y


@needs_estimators
def test_pickle_keeps_working_for_the_estimators():
    for cls_name in ("RNNRegressor", "RNNClassifier"):
        est, X, _ = _real_fitted(cls_name, "lstm", "last")
        again = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(again.predict(X), est.predict(X))


@needs_estimators
@pytest.mark.parametrize("cls_name", ["RNNRegressor", "RNNClassifier"])
@pytest.mark.parametrize("cell", ["lstm", "lstm1997", "elman", "cec"])
@pytest.mark.parametrize("output", ["last", "sequence"])
def test_estimators_round_trip(tmp_path, cls_name, cell, output):
    est, X, y = _real_fitted(cls_name, cell, output)
    loaded = cbptt.load(est.save(tmp_path / "m.npz"))
    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    if cls_name == "RNNClassifier":
        np.testing.assert_array_equal(loaded.predict_proba(X),
                                      est.predict_proba(X))
    assert loaded.score(X, y) == est.score(X, y)
    for d, e in zip(loaded.coefs_, est.coefs_):
        for k in e:
            _assert_same(d[k], e[k])
            assert not d[k].flags.writeable
    fitted = [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    assert sorted(k for k in vars(loaded)
                  if k.endswith("_") and not k.startswith("_")) == sorted(fitted)
    for k in fitted:
        _assert_same(getattr(loaded, k), getattr(est, k))
    for a, b in zip(loaded.error_signals(X, y), est.error_signals(X, y)):
        np.testing.assert_array_equal(a.delta, b.delta)
    again = pickle.loads(pickle.dumps(loaded))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.partial_fit(X, y)             # training goes on after a load...
        est.partial_fit(X, y)
    # ...exactly as it goes on in the saved estimator (optimizer state kept)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert loaded.n_iter_ == est.n_iter_ and loaded.loss_curve_ == est.loss_curve_


@needs_estimators
@pytest.mark.parametrize("solver", ["sgd", "rmsprop"])
def test_estimators_round_trip_every_solver_and_float32(tmp_path, solver):
    import warnings
    rng = np.random.default_rng(7)
    X = rng.standard_normal((20, 5, 3)).astype(np.float32)
    y = X.sum(axis=(1, 2))
    est = cbptt.RNNRegressor(hidden_layer_sizes=(4,), cell="elman",
                             solver=solver, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        loaded = cbptt.load(est.save(tmp_path / "m.npz"))
        assert loaded.coefs_[0]["weight_ih"].dtype == np.float32
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        loaded.partial_fit(X, y)
        est.partial_fit(X, y)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


@needs_estimators
def test_estimators_loaded_after_a_solver_change_start_a_fresh_optimizer(tmp_path):
    est, X, y = _real_fitted("RNNRegressor", "elman", "last")
    est.set_params(solver="sgd")             # the saved Adam state no longer fits
    loaded = cbptt.load(est.save(tmp_path / "m.npz"))
    assert loaded._optimizer is None
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.partial_fit(X, y)
        est.partial_fit(X, y)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


@needs_estimators
@pytest.mark.parametrize("cls_name", ["RNNRegressor", "RNNClassifier"])
def test_estimators_refuse_to_save_unfitted(tmp_path, cls_name):
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(cbptt, cls_name)().save(tmp_path / "m.npz")
    assert not os.listdir(tmp_path)


@needs_estimators
@pytest.mark.parametrize("change,words", [
    (lambda m: m["fitted"]["_arch"]["__dict__"].update(
        hidden_layer_sizes={"__tuple__": [5, 3]}), ("inconsistent", "shape")),
    (lambda m: m["fitted"].update(n_outputs_=2), ("inconsistent", "shape")),
    (lambda m: m["fitted"].pop("_n_step_features"), ("inconsistent",
                                                     "_n_step_features")),
    (lambda m: m["fitted"].update(_output="all"), ("inconsistent", "_output")),
    (lambda m: m["fitted"]["_arch"]["__dict__"].update(cell="nope"),
     ("inconsistent", "nope")),
    # a known cell whose parameters are not those saved
    (lambda m: m["fitted"]["_arch"]["__dict__"].update(cell="gru"),
     ("inconsistent", "bias_hh")),
    (lambda m: m["fitted"]["_optimizer_state"]["__dict__"].update(t=-1),
     ("inconsistent", "optimizer")),
])
def test_estimators_inconsistent_files_are_refused(tmp_path, change, words):
    est, _, _ = _real_fitted("RNNRegressor", "lstm", "last")
    _refused(_edit_metadata(est.save(tmp_path / "m.npz"), change), *words)


@needs_estimators
def test_file_from_before_later_parameters_loads_with_their_old_behaviour(tmp_path):
    """A file written before record_error_flow and on_nonfinite existed
    (no such keys in its params) loads with the values that keep the old
    behaviour and predicts the same; any other missing parameter is still
    refused (see the alpha case above)."""
    import warnings
    rng = np.random.default_rng(3)
    X = rng.standard_normal((16, 4, 2))
    est = cbptt.RNNRegressor(hidden_layer_sizes=(3,), max_iter=2,
                             random_state=0, on_nonfinite="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, X.sum(axis=(1, 2)))
    path = _edit_metadata(est.save(tmp_path / "old.npz"),
                          lambda m: [m["params"].pop(k) for k in
                                     ("record_error_flow", "on_nonfinite")])
    loaded = cbptt.load(path)
    assert loaded.get_params()["record_error_flow"] is None
    assert loaded.get_params()["on_nonfinite"] == "warn"
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
