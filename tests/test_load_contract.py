"""The load contract (issue 19): a model that saves must load, and every
malformed or hostile file gets one exception type, ``ValueError("cannot
load ...")``, after bounded work: no allocation the file's own size does not
justify, no hang on a FIFO, nothing read from a file that is not a regular
file, no fitted attribute of the wrong type.

The helpers that craft bad files come from ``model_files``.
"""
import io
import json
import os
import stat
import struct
import threading
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import cbptt
from cbptt import RNNClassifier, RNNRegressor
from model_files import _edit_metadata, _members, _refused, _write


def _est(cls=RNNRegressor, cell="lstm", dtype=np.float64, output="last",
         H=(3,)):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((12, 4, 2)).astype(dtype)
    y = X.sum(axis=(1, 2)) if output == "last" else X.sum(axis=2)
    if cls is RNNClassifier:
        y = y > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(cell=cell, hidden_layer_sizes=H, output=output,
                   max_iter=2, random_state=0).fit(X, y), X


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    est, _ = _est()
    return est.save(tmp_path_factory.mktemp("m") / "m.npz")


@pytest.fixture
def saved(model_file, tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(open(model_file, "rb").read())
    return str(path)


# -- 4. every import path refuses what is not finite after conversion --------

def test_from_torch_refuses_a_bias_sum_that_overflows():
    est, X = _est(cell="elman")
    before = est.predict(X)
    sd = est.to_torch_state_dict()
    sd["bias_ih_l0"][:] = 1e308
    sd["bias_hh_l0"][:] = 1e308          # each finite, the sum is inf
    with pytest.raises(ValueError, match="bias_ih_l0.*not finite|finite.*bias"):
        est.from_torch_state_dict(sd)
    np.testing.assert_array_equal(est.predict(X), before)


def test_from_torch_refuses_what_overflows_float32():
    est, X = _est(dtype=np.float32)
    sd = est.to_torch_state_dict()
    sd["weight_hh_l0"] = sd["weight_hh_l0"].astype(np.float64)
    sd["weight_hh_l0"][0, 0] = 1e300    # finite float64, inf as float32
    with pytest.raises(ValueError, match="weight_hh_l0.*float32"):
        est.from_torch_state_dict(sd)


_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(kind=st.sampled_from(["reg-lstm", "reg-elman", "clf-cec",
                             "reg-lstm1997-32", "clf-elman-32"]),
       bias_ih=_finite, bias_hh=_finite, weight=_finite, out=_finite)
@example(kind="reg-elman", bias_ih=1e308, bias_hh=1e308, weight=0.5, out=1.0)
@example(kind="reg-lstm", bias_ih=-1.7e308, bias_hh=-1.7e308, weight=5e-324,
         out=-0.0)
def test_whatever_save_writes_load_reads_back_bitwise(tmp_path_factory, kind,
                                                      bias_ih, bias_hh,
                                                      weight, out):
    cls = RNNClassifier if kind.startswith("clf") else RNNRegressor
    dtype = np.float32 if kind.endswith("-32") else np.float64
    est, _ = _est(cls, kind.split("-")[1], dtype)
    sd = est.to_torch_state_dict()
    sd["bias_ih_l0"] = sd["bias_ih_l0"].astype(np.float64)
    sd["bias_hh_l0"] = sd["bias_hh_l0"].astype(np.float64)
    sd["weight_ih_l0"] = sd["weight_ih_l0"].astype(np.float64)
    sd["out.weight"] = sd["out.weight"].astype(np.float64)
    sd["bias_ih_l0"][0] = bias_ih
    sd["bias_hh_l0"][0] = bias_hh
    sd["weight_ih_l0"][-1, 0] = weight
    sd["out.weight"][0, -1] = out
    try:
        est.from_torch_state_dict(sd)
    except ValueError:
        return                      # refused up front: nothing to save
    path = est.save(tmp_path_factory.mktemp("p") / "m.npz")
    loaded = cbptt.load(path)       # never refused
    assert loaded._params.dtype == est._params.dtype
    assert loaded._params.tobytes() == est._params.tobytes()
    for a, b in zip(est.coefs_, loaded.coefs_):
        for k in a:
            assert a[k].tobytes() == b[k].tobytes()


# -- 5. one exception type and bounded work ----------------------------------

def _central_entry(data, name):
    """Offset of ``name``'s central-directory record in ``data``."""
    pos = 0
    while True:
        pos = data.index(b"PK\x01\x02", pos)
        n = struct.unpack("<H", data[pos + 28:pos + 30])[0]
        if data[pos + 46:pos + 46 + n] == name.encode():
            return pos
        pos += 4


@pytest.mark.parametrize("member", ["metadata.json", "arrays/a0.npy"])
@pytest.mark.parametrize("field,value", [(6, 99), (10, 99)],
                         ids=["version-needed", "compression"])
def test_flipped_zip_version_or_compression_byte(saved, member, field, value):
    data = bytearray(open(saved, "rb").read())
    pos = _central_entry(bytes(data), member)
    data[pos + field:pos + field + 2] = struct.pack("<H", value)
    open(saved, "wb").write(bytes(data))
    _refused(saved)


@pytest.mark.parametrize("change", [
    lambda m: m["fitted"].update(n_iter_={"__scalar__": "<i8",
                                          "value": 10**30}),
    lambda m: m["fitted"].update(n_iter_={"__scalar__": "<f4",
                                          "value": 10**30}),
    lambda m: m["arrays"]["a0"].update(shape=[10**30]),
    lambda m: m["arrays"]["a0"].update(shape=[0, 10**30]),
    lambda m: m["arrays"]["a0"].update(shape=[1] * 70),
    lambda m: m["fitted"].update(_n_step_features=10**12),
    lambda m: m["fitted"].update(_n_step_features=10**30),
    lambda m: m["fitted"].update(n_outputs_=10**12),
    lambda m: m["fitted"]["_arch"]["__dict__"].update(
        hidden_layer_sizes={"__tuple__": [10**6]}),
    lambda m: m["fitted"]["_arch"]["__dict__"].update(
        hidden_layer_sizes={"__tuple__": [10**30]}),
    lambda m: m["fitted"].update(best_loss_="x"),
    lambda m: m["fitted"].update(n_iter_="abc"),
    lambda m: m["fitted"].update(n_iter_=-3),
    lambda m: m["fitted"].update(n_iter_=True),
    lambda m: m["fitted"].update(loss_curve_={"__dict__": {"a": 1.0}}),
    lambda m: m["fitted"].update(loss_curve_=["x"]),
    lambda m: m["fitted"].update(loss_=[1.0]),
    lambda m: m["fitted"].update(validation_scores_="x"),
    lambda m: m["fitted"].update(best_validation_score_={"__tuple__": []}),
    lambda m: m["fitted"].update(n_features_in_=1.5),
    lambda m: m["fitted"].update(_no_improvement_count="x"),
    lambda m: m["fitted"]["_optimizer_state"]["__dict__"].update(t=10**30),
    lambda m: m["fitted"]["_optimizer_state"]["__dict__"].update(t=1.5),
    lambda m: m["fitted"]["_optimizer_state"]["__dict__"].update(solver=7),
], ids=["scalar-int-1e30", "scalar-float-1e30", "shape-1e30", "shape-0x1e30",
        "ndim-70", "features-1e12", "features-1e30", "outputs-1e12",
        "hidden-1e6", "hidden-1e30", "best_loss-str",
        "n_iter-str", "n_iter-negative", "n_iter-bool", "loss_curve-dict",
        "loss_curve-str", "loss-list", "validation_scores-str",
        "best_validation-tuple", "n_features_in-float",
        "no_improvement-str", "t-1e30", "t-float", "solver-int"])
def test_malformed_values_are_refused_as_value_errors(saved, change):
    _refused(_edit_metadata(saved, change))


def _npy_header(descr, shape):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


@pytest.mark.parametrize("descr,shape", [
    ("<f8", [2**62, 4]),                 # wraps int64 to 0 bytes
    ("<f8", [2**32, 2**32]),
    ("<U0", [3]),                        # zero itemsize
    ("<U0", [2**62]),
])
def test_header_shapes_that_wrap_and_zero_itemsize(saved, descr, shape):
    m = _members(saved)
    meta = json.loads(m["metadata.json"])
    meta["arrays"]["a0"] = {"dtype": descr, "shape": shape}
    m["metadata.json"] = json.dumps(meta)
    m["arrays/a0.npy"] = _npy_header(descr, shape)
    _refused(_write(saved, m))


def test_member_sizes_beyond_the_file_are_refused_before_reading(saved):
    data = bytearray(open(saved, "rb").read())
    pos = _central_entry(bytes(data), "arrays/a0.npy")
    data[pos + 20:pos + 28] = struct.pack("<II", 2**31, 2**31)
    open(saved, "wb").write(bytes(data))
    _refused(saved)


def test_non_regular_files_are_refused_without_reading(tmp_path):
    _refused(str(tmp_path), "regular file")
    if os.path.exists("/dev/zero"):
        _refused("/dev/zero", "regular file")
    if not hasattr(os, "mkfifo"):
        return
    fifo = str(tmp_path / "fifo.npz")
    os.mkfifo(fifo)
    outcome = []

    def run():
        try:
            cbptt.load(fifo)
            outcome.append(None)
        except Exception as exc:        # noqa: BLE001 (the outcome is checked)
            outcome.append(exc)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():                    # release the blocked open, then fail
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(20)
        pytest.fail("cbptt.load blocked on a FIFO")
    assert isinstance(outcome[0], ValueError), outcome
    assert str(outcome[0]).startswith("cannot load")
    assert "regular file" in str(outcome[0])


def test_a_symlink_to_a_model_still_loads(saved, tmp_path):
    link = tmp_path / "link.npz"
    os.symlink(saved, link)
    assert isinstance(cbptt.load(link), RNNRegressor)


# -- smaller: save keeps the umask's mode and an overwritten file's mode -----

@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_save_keeps_the_umask_and_an_overwritten_files_mode(tmp_path):
    est, _ = _est()
    old = os.umask(0o022)
    try:
        path = est.save(tmp_path / "a.npz")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        os.umask(0o077)
        path = est.save(tmp_path / "b.npz")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        os.umask(0o022)
        target = tmp_path / "c.npz"
        target.write_bytes(b"old")
        os.chmod(target, 0o640)
        est.save(target)
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
        assert isinstance(cbptt.load(target), RNNRegressor)
    finally:
        os.umask(old)
