"""The functional API's cost per call at small sizes, for one or two builds.

At small batches and short sequences a forward and backward pass take tens
of microseconds, and the Python around the kernels (checks, copies,
allocations) is a large share of that. This script times one forward plus
one backward pass (``rnn_*``, ``cec_*``, ``lstm_*``, ``gru_*``) per
configuration: batch B, steps T, units H (= input features I), float32 or
float64, with or without the initial states (``h0``, and ``c0`` for the
LSTM). Each sample is
the median over 5 batches of back-to-back calls (each batch at least 20 ms)
in microseconds per forward+backward pair.

With two builds (folders of ``pip install --target``) each runs in its own
worker process; per round and configuration both are sampled, the order
alternating between rounds, and the round's ratio is old us / new us. The
table gives each build's median and the median of the per-round ratios with
their range (> 1: the new build is faster); the machine's drift, which
moves both samples of a round alike, cancels in the ratio.

Run from the repository root::

    python benchmarks/call_overhead.py                     # the installed build
    (cd /tmp/old && pip install --no-build-isolation --no-deps --target /tmp/ab/old .)
    pip install --no-build-isolation --no-deps --target /tmp/ab/new .
    python benchmarks/call_overhead.py /tmp/ab/old /tmp/ab/new --rounds 7
    python benchmarks/call_overhead.py --cells cec --sizes 1,1,4 8,10,16

No test asserts a time; this script only measures and reports.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SIZES = ((4, 10, 8), (32, 100, 16))
CELLS = ("elman", "cec", "lstm", "gru")


def make_call(cell, dtype, B, T, H, states):
    """A function running one forward and one backward pass."""
    import numpy as np
    import cbptt
    rng = np.random.default_rng(0)
    G = {"elman": 1, "cec": 1, "lstm": 4, "gru": 3}[cell]
    k = 1 / np.sqrt(H)
    x = rng.standard_normal((B, T, H)).astype(dtype)
    w_ih = rng.uniform(-k, k, (G * H, H)).astype(dtype)
    w_hh = rng.uniform(-k, k, (G * H, H)).astype(dtype)
    b = rng.uniform(-k, k, G * H).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype) if states else None
    g = rng.standard_normal((B, T, H)).astype(dtype)
    if cell == "elman":
        def call():
            cbptt.rnn_backward(cbptt.rnn_forward(x, w_ih, w_hh, b, h0), g)
    elif cell == "cec":
        def call():
            cbptt.cec_backward(cbptt.cec_forward(x, w_ih, b, h0), g)
    elif cell == "lstm":
        c0 = rng.standard_normal((B, H)).astype(dtype) if states else None

        def call():
            cbptt.lstm_backward(cbptt.lstm_forward(x, w_ih, w_hh, b, h0, c0),
                                g)
    else:
        b_hh = rng.uniform(-k, k, G * H).astype(dtype)

        def call():
            cbptt.gru_backward(cbptt.gru_forward(x, w_ih, w_hh, b, b_hh, h0),
                               g)
    return call


def timed(call):
    """Median over 5 batches of the microseconds per call."""
    call()
    n, start = 1, time.perf_counter()
    while time.perf_counter() - start < 0.02:
        call()
        n += 1
    per = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        per.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(per)


def configs(cells, sizes):
    for cell in cells:
        for B, T, H in sizes:
            for dtype in ("float32", "float64"):
                for states in (False, True):
                    yield [cell, dtype, B, T, H, states]


def worker():
    """Read configurations (one JSON list a line), answer us per pair."""
    for line in sys.stdin:
        cell, dtype, B, T, H, states = json.loads(line)
        print(json.dumps(timed(make_call(cell, dtype, B, T, H, states))),
              flush=True)


def start(path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if path:
        env["PYTHONPATH"] = path
    return subprocess.Popen([sys.executable, os.path.abspath(__file__),
                             "--worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env,
                            cwd="/")


def sample(proc, config):
    proc.stdin.write(json.dumps(config) + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("builds", nargs="*", help="zero, one or two build folders")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--cells", nargs="+", default=list(CELLS), choices=CELLS)
    p.add_argument("--sizes", nargs="+", metavar="B,T,H",
                   type=lambda v: tuple(int(n) for n in v.split(",")),
                   default=list(SIZES), help="the sizes to time")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker()
        return
    builds = args.builds or [None]
    procs = [start(b) for b in builds]
    cfgs = list(configs(args.cells, args.sizes))
    times = {i: [[] for _ in builds] for i in range(len(cfgs))}
    for r in range(args.rounds):
        for i, cfg in enumerate(cfgs):
            order = range(len(builds)) if r % 2 == 0 else \
                reversed(range(len(builds)))
            for j in order:
                times[i][j].append(sample(procs[j], cfg))
    for proc in procs:
        proc.stdin.close()
        proc.wait()
    head = "| cell | dtype | B, T, H | states | " + " | ".join(
        f"us {'old' if j == 0 and len(builds) == 2 else 'new'}"
        for j in range(len(builds)))
    head += " | old/new median (range) |" if len(builds) == 2 else " |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for i, (cell, dtype, B, T, H, states) in enumerate(cfgs):
        row = (f"| {cell} | {dtype} | {B}, {T}, {H} | "
               f"{'h0' if states else '-'} | " + " | ".join(
                   f"{statistics.median(t):.1f}" for t in times[i]))
        if len(builds) == 2:
            ratios = [o / n for o, n in zip(*times[i])]
            row += (f" | {statistics.median(ratios):.3f} "
                    f"({min(ratios):.2f}-{max(ratios):.2f}) |")
        else:
            row += " |"
        print(row)


if __name__ == "__main__":
    main()
