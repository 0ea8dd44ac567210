"""The thread policy made visible and overridable (issue 21): show_config,
the topology reader, set_num_threads / CBPTT_NUM_THREADS, and the policy's
counts against the counts the kernels really use."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import cbptt
from cbptt import _layer, _threads

threadpoolctl = pytest.importorskip("threadpoolctl",
                                    reason="threadpoolctl not installed")


@pytest.fixture
def no_cap():
    old = cbptt.set_num_threads(None)
    yield
    cbptt.set_num_threads(old)


def test_show_config_prints_every_section():
    out = io.StringIO()
    assert cbptt.show_config(file=out) is None
    text = out.getvalue()
    for part in ("cbptt " + cbptt.__version__, "Dependencies:", "numpy",
                 "scipy", "BLAS and OpenMP libraries", "Instruction set:",
                 cbptt.get_isa(), "CPU:", "topology", "Threads:",
                 "OpenMP limit", "forked child", "Layers (B = 32, T = 100"):
        assert part in text, part
    for cell in ("elman", "lstm", "gru"):
        assert f"  {cell:<6}{256:>4}  float64" in text


def test_show_config_dicts_and_bad_mode():
    c = cbptt.show_config(mode="dicts")
    assert c["cbptt"]["version"] == cbptt.__version__
    assert c["isa"]["level"] == cbptt.get_isa()
    assert c["threads"]["openmp_limit"] == _layer.openmp_limit()
    assert c["threads"]["forked_child"] is False
    assert len(c["layers"]) == 3 * 3 * 2
    with pytest.raises(ValueError, match="mode='text'"):
        cbptt.show_config(mode="text")


@pytest.mark.parametrize("limit", [1, 2])
@pytest.mark.parametrize("real_cores", [False, True])
def test_table_counts_are_what_the_kernels_use(no_cap, limit, real_cores):
    """Each row's count equals the count a real forward and backward of that
    layer ran on (recorded by the driver), and its reason names it."""
    rng = np.random.default_rng(0)
    B, T, I = 32, 100, 3
    old = _layer._set_real_cores(real_cores)
    try:
        with threadpoolctl.threadpool_limits(limits=limit):
            rows = cbptt.show_config(mode="dicts")["layers"]
            for r in rows:
                H, G = r["H"], {"elman": 1, "lstm": 4, "gru": 3}[r["cell"]]
                if H > 64:
                    continue            # the same rule; keep the test short
                dt = np.dtype(r["dtype"])
                x = rng.standard_normal((B, T, I)).astype(dt)
                w = [(rng.standard_normal(s) * 0.1).astype(dt)
                     for s in ((G * H, I), (G * H, H), (G * H,))]
                if r["cell"] == "elman":
                    res = cbptt.rnn_forward(x, *w)
                    assert _layer._last_threads() == r["threads"], r
                    cbptt.rnn_backward(res, np.ones_like(res.h))
                elif r["cell"] == "lstm":
                    res = cbptt.lstm_forward(x, *w)
                    assert _layer._last_threads() == r["threads"], r
                    cbptt.lstm_backward(res, np.ones_like(res.h))
                else:
                    res = cbptt.gru_forward(x, *w, w[2])
                    assert _layer._last_threads() == r["threads"], r
                    cbptt.gru_backward(res, np.ones_like(res.h))
                assert _layer._last_threads() == r["threads"], r
                assert r["threads"] <= limit
                word = "one thread" if r["threads"] == 1 else \
                    f"{r['threads']} threads"
                assert r["reason"].endswith(word), r
    finally:
        _layer._set_real_cores(old)


def test_cec_stays_on_one_thread():
    with threadpoolctl.threadpool_limits(limits=2):
        info = _threads.explain("cec", 100, 512, 256)
    assert info["threads"] == 1
    assert info["reason"] in ("no recurrent product: one thread",
                              "the thread limit is 1: one thread")


def test_reasons_in_words(no_cap):
    old = _layer._set_real_cores(False)
    try:
        with threadpoolctl.threadpool_limits(limits=2):
            if _layer.openmp_limit() < 2:
                pytest.skip("one CPU or no OpenMP")
            assert _threads.explain("elman", 100, 32, 16)["reason"] == (
                "per-step work B*H*H = 8192 < 32768 (SMT or unknown cores): "
                "one thread")
            assert _threads.explain("lstm", 100, 32, 16)["reason"] == (
                "per-call work T*B*G*H*H = 3276800 >= 2000000 (SMT or "
                "unknown cores): 2 threads")
            assert _threads.explain("elman", 100, 8, 256)["reason"] == (
                "B = 8 < 2 row chunks of 8: one thread")
        with threadpoolctl.threadpool_limits(limits=4):
            if _layer.openmp_limit() == 4:
                assert _threads.explain("elman", 1, 24, 256)["reason"].endswith(
                    "one thread per 8 sequences: 3 threads")
        with threadpoolctl.threadpool_limits(limits=1):
            assert _threads.explain("elman", 100, 32, 256)["reason"] == (
                "the thread limit is 1: one thread")
    finally:
        _layer._set_real_cores(old)


def test_set_num_threads_caps_and_is_validated(no_cap):
    with threadpoolctl.threadpool_limits(limits=2):
        limit = _layer.openmp_limit()
        assert cbptt.get_num_threads() == limit
        assert cbptt.set_num_threads(1) is None
        assert cbptt.get_num_threads() == 1
        assert _layer.threads_used("elman", 10, 64, 256) == 1
        assert cbptt.show_config(mode="dicts")["threads"][
            "set_num_threads"] == 1
        assert cbptt.set_num_threads(1000) == 1      # capped by OpenMP
        assert cbptt.get_num_threads() == limit
        assert _layer.threads_used("elman", 10, 64, 256) == min(limit, 8)
        # the policy still applies below the cap
        assert _layer.threads_used("elman", 10, 32, 8) == 1
        assert cbptt.set_num_threads(None) == 1000
    for bad, err in ((0, ValueError), (-2, ValueError), (1.5, TypeError),
                     ("2", TypeError), (True, TypeError)):
        with pytest.raises(err, match="set_num_threads"):
            cbptt.set_num_threads(bad)
    assert cbptt.set_num_threads(None) is None       # unchanged by the errors


def test_results_bitwise_same_under_any_cap(no_cap):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 12, 3))
    w = [rng.standard_normal(s) * 0.3 for s in ((64, 3), (64, 64), (64,))]
    runs = []
    for n in (1, 2, None):
        cbptt.set_num_threads(n)
        res = cbptt.rnn_forward(x, *w)
        g = cbptt.rnn_backward(res, np.ones_like(res.h))
        runs.append((np.array(res.h), np.array(g.weight_hh)))
    for a, b in runs[1:]:
        np.testing.assert_array_equal(runs[0][0], a)
        np.testing.assert_array_equal(runs[0][1], b)


@pytest.mark.parametrize("value,cap,warns", [("1", 1, False),
                                             ("zero", None, True),
                                             ("-3", None, True)])
def test_environment_variable(value, cap, warns):
    code = ("import warnings, cbptt\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import importlib\n"
            "print(cbptt.show_config(mode='dicts')['threads']"
            "['set_num_threads'])\n")
    done = subprocess.run([sys.executable, "-W", "always", "-c", code],
                          env=dict(os.environ, CBPTT_NUM_THREADS=value),
                          capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.abspath(__file__)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(cap)
    assert ("CBPTT_NUM_THREADS" in done.stderr) == warns, done.stderr


def _fake_sys(root, layout):
    """A /sys/devices/system/cpu tree: layout {cpu: (package, core,
    siblings)}."""
    for cpu, (package, core, siblings) in layout.items():
        top = root / f"cpu{cpu}" / "topology"
        top.mkdir(parents=True)
        (top / "core_id").write_text(f"{core}\n")
        (top / "physical_package_id").write_text(f"{package}\n")
        (top / "thread_siblings_list").write_text(f"{siblings}\n")
    (root / "cpufreq").mkdir()          # not a CPU
    return str(root)


def test_topology_with_smt(tmp_path):
    # 2 packages x 2 cores x 2 hyperthreads, siblings n and n+4
    layout = {c: (c // 2 % 2, c % 2, f"{c % 4},{c % 4 + 4}")
              for c in range(8)}
    top = _threads.topology(_fake_sys(tmp_path, layout))
    assert (top["logical_cpus"], top["cores"], top["packages"],
            top["threads_per_core"], top["smt"]) == (8, 4, 2, 2, True)
    text = _threads.describe_topology(top)
    assert "8 logical CPUs on 4 cores in 2 packages" in text
    assert "SMT: 2 threads per core" in text


def test_topology_without_smt(tmp_path):
    layout = {0: (0, 0, "0"), 1: (0, 1, "1"), 2: (0, 2, "2-2")}
    top = _threads.topology(_fake_sys(tmp_path, layout))
    assert (top["logical_cpus"], top["cores"], top["threads_per_core"],
            top["smt"]) == (3, 3, 1, False)
    assert "no SMT" in _threads.describe_topology(top)


def test_topology_missing_or_broken(tmp_path):
    top = _threads.topology(str(tmp_path / "absent"))
    assert top["cores"] is None and top["smt"] is None
    assert top["logical_cpus"] == os.cpu_count()
    assert "unknown" in _threads.describe_topology(top)
    assert not _threads.on_real_cores(top)
    # a CPU whose files cannot be parsed is left out, not a crash
    root = _fake_sys(tmp_path / "sys", {0: (0, 0, "0"), 1: (0, 1, "x")})
    assert _threads.topology(root)["logical_cpus"] == 1


def test_real_cores_follow_smt_and_affinity():
    base = {"cores": 2, "smt": True, "affinity": [0, 1],
            "affinity_cores": 1}
    assert not _threads.on_real_cores(base)          # two siblings
    assert _threads.on_real_cores(dict(base, affinity=[0, 2],
                                       affinity_cores=2))
    assert _threads.on_real_cores(dict(base, smt=False, affinity_cores=2))
    assert not _threads.on_real_cores(dict(base, affinity=None))


def test_parse_cpu_list():
    assert _threads.parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert _threads.parse_cpu_list("") == set()


def test_policy_inputs_are_checked():
    with pytest.raises(ValueError, match="unknown cell 'rnn'"):
        _layer.threads_used("rnn", 10, 32, 16)
    with pytest.raises(ValueError, match="itemsize"):
        _layer.threads_used("elman", 10, 32, 16, 2)
    with pytest.raises(ValueError, match="expected all >= 1"):
        _layer.threads_used("lstm", 0, 32, 16)
    with pytest.raises(ValueError, match="CEC"):
        _layer._set_parallel_min_work("cec", 0, 0)
