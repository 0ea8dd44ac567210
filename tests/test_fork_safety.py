"""Fork safety (issue 19): GNU OpenMP is not fork-safe. A child forked after
the parent ran a kernel on two threads used to block forever in
GOMP_parallel; it must compute the same results (on one thread).

Each case runs in a fresh interpreter with OMP_NUM_THREADS=2 (so the parent
really starts the OpenMP pool, even on a one-core runner), under a timeout:
a regression fails instead of hanging CI.
"""
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import multiprocessing as mp, sys, warnings
    import numpy as np
    from cbptt import RNNRegressor, lstm_forward, rnn_backward, rnn_forward
    from cbptt import _layer

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 20, 3))
    w_ih, w_hh = rng.standard_normal((32, 3)) * .3, np.eye(32) * .5
    y = x.sum(axis=(1, 2))

    def functional(args):
        fwd = rnn_forward(x, w_ih, w_hh, np.zeros(32))
        grads = rnn_backward(fwd, np.ones_like(fwd.h))
        lstm = lstm_forward(x, np.full((128, 3), .1), np.full((128, 32), .01),
                            np.zeros(128))
        return fwd.h, grads.weight_hh, lstm.h

    def estimator(args):
        cell, parent_est = args
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = RNNRegressor(cell=cell, hidden_layer_sizes=(32,),
                               batch_size=64, max_iter=2, shuffle=False,
                               random_state=0).fit(x, y)
        return est.predict(x), parent_est.predict(x)

    if __name__ == "__main__":
        method, what, cell = sys.argv[1], sys.argv[2], sys.argv[3]
        assert _layer.threads_used("elman", 20, 64, 32, 8) == 2, "the parent must use 2 threads"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parent_est = RNNRegressor(cell=cell, hidden_layer_sizes=(32,),
                                      batch_size=64, max_iter=2, shuffle=False,
                                      random_state=0).fit(x, y)
        f = functional if what == "functional" else estimator
        args = (cell, parent_est)
        here = f(args)                    # a threaded kernel in the parent
        ctx = mp.get_context(method)
        with ctx.Pool(1) as pool:
            there = pool.map_async(f, [args]).get(timeout=60)[0]
        for a, b in zip(here, there):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        # the parent still runs its threads afterwards
        again = f(args)
        for a, b in zip(here, again):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        print("OK")
""")


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method: Linux")
@pytest.mark.parametrize("method", ["fork", "forkserver"])
@pytest.mark.parametrize("what,cell", [("functional", "elman"),
                                       ("estimator", "elman"),
                                       ("estimator", "lstm")])
def test_forked_child_computes_after_threaded_kernel(tmp_path, method, what,
                                                     cell):
    script = tmp_path / "fork_case.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    try:
        done = subprocess.run([sys.executable, str(script), method, what, cell],
                              env=env, capture_output=True, text=True,
                              timeout=240, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a {method} child hung after a threaded kernel")
    assert done.returncode == 0 and "OK" in done.stdout, (done.stdout,
                                                          done.stderr[-3000:])
