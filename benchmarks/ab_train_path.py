"""A/B of two builds of cbptt on the unweighted training path.

Each measurement runs in a fresh process per build (two builds cannot share
one interpreter), the builds alternating round by round so that the
machine's slow phases land on both; the figure is the median over rounds of
the per-round ratio ``time(A) / time(B)`` (above 1: B is faster).

Times are the process's CPU time (one thread: ``OMP_NUM_THREADS=1``), which
other programs on a shared machine disturb far less than wall time; each
measurement is the minimum of ``reps`` calls inside its process:

* ``head``: one compiled output layer + loss + gradients call
  (``_train.dense_head``) without weights, on ``n`` rows (a mini-batch's
  steps with ``output="sequence"``);
* ``epoch``: one warm epoch of ``fit`` (``warm_start=True, max_iter=1``)
  without ``sample_weight``, for an LSTM regressor (``output="last"`` and
  ``"sequence"``) and an Elman classifier.

Run: ``python benchmarks/ab_train_path.py --a /path/to/site-packages-of-A``
(B defaults to the cbptt importable here; give ``--b`` for another tree).
Run it from outside the repository root.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from cbptt import RNNClassifier, RNNRegressor, _train
reps = int(sys.argv[1])

def best(f):
    f()
    t = []
    for _ in range(reps):
        tic = time.process_time(); f(); t.append(time.process_time() - tic)
    return min(t)

out = {}
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    for n, H, k, classify in ((32, 64, 1, False), (32 * 50, 64, 1, False),
                              (32 * 50, 64, 10, True)):
        h = rng.standard_normal((n, H)).astype(dtype)
        w = rng.standard_normal((k, H)).astype(dtype)
        b = np.zeros(k, dtype)
        y = None if classify else rng.standard_normal((n, k)).astype(dtype)
        codes = rng.integers(0, k, n).astype(np.int32) if classify else None
        z, dw = np.empty((n, k), dtype), np.empty((k, H), dtype)
        db, dh = np.empty(k, dtype), np.empty((n, H), dtype)
        code = _train.SOFTMAX_CROSS_ENTROPY if classify else _train.SQUARED_ERROR
        f = lambda: [_train.dense_head(h, w, b, y, codes, None, code, z, dw, db, dh)
                     for _ in range(100)]
        out[f"head {np.dtype(dtype).name} n={n} k={k}"] = best(f) / 100
X = rng.standard_normal((256, 50, 4))
cases = {
    "epoch lstm last": (RNNRegressor(hidden_layer_sizes=(32,)), X, X[:, -1, 0]),
    "epoch lstm sequence": (RNNRegressor(hidden_layer_sizes=(32,), output="sequence"),
                            X, X[..., 0]),
    "epoch elman clf f32": (RNNClassifier(cell="elman", hidden_layer_sizes=(64,)),
                            X.astype(np.float32), X[:, -1, 0] > 0),
}
for name, (est, Xc, yc) in cases.items():
    est.set_params(max_iter=1, random_state=0, shuffle=False).fit(Xc, yc)
    est.set_params(warm_start=True)
    out[name] = best(lambda: est.fit(Xc, yc))
print(json.dumps(out))
"""


def run(tree, reps):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    if tree:
        env["PYTHONPATH"] = tree
    res = subprocess.run([sys.executable, "-c", WORKER, str(reps)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="site-packages holding build A")
    ap.add_argument("--b", default="", help="site-packages holding build B "
                    "(default: the cbptt importable here)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    ratios = {}
    for r in range(args.rounds):
        pair = [("a", args.a), ("b", args.b)]
        if r % 2:
            pair.reverse()
        got = dict((name, run(tree, args.reps)) for name, tree in pair)
        for key in got["a"]:
            ratios.setdefault(key, []).append(got["a"][key] / got["b"][key])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'measurement':34s} {'A/B median':>10s} {'min':>6s} {'max':>6s}")
    for key, rs in ratios.items():
        print(f"{key:34s} {statistics.median(rs):10.3f} {min(rs):6.3f} "
              f"{max(rs):6.3f}")


if __name__ == "__main__":
    main()
