"""Does a second thread pay below the thread policy's thresholds?

The layer driver (``cbptt/_layer.pyx``) gives a layer one thread unless its
work is large enough (the Elman cell: per-step work ``B*H*H``; the gated
cells: per-call work ``T*B*G*H*H``; see ``cbptt.show_config()``). The
thresholds were measured on a 2-vCPU machine whose two vCPUs were one
core's SMT siblings, where a second thread competes for the same FP units.
This script measures, on the machine it runs on, one training step
(forward and backward, ``input_grad=False``, time-major arrays, B = 32,
T = 100, I = 8) through the functional API with the kernels forced onto one
thread and onto two (the benchmark twin ``_set_parallel_min_work``), for
layer sizes around the thresholds.

Method: in every round both arms run, in alternating order (A B, then B A);
each sample is the mean of back-to-back steps over at least 0.2 s after
0.15 s of idle (an OpenMP worker that has just finished spins before it
sleeps). A round's **speed-up** is its one-thread ms over its two-thread
ms, taken seconds apart, so the drift of a shared machine cancels; the
figures are the median and the spread (min, quartiles, max) of those
ratios. The verdict: **pays** when the lower quartile is above 1.05 (a gain
of more than 5% in at least three rounds of four), **loses** when the upper
quartile is below 1.0, else **unclear**.

Run from anywhere with cbptt installed::

    python benchmarks/thread_policy.py            # writes this CPU's section of BENCHMARKS.md
    python benchmarks/thread_policy.py --print    # prints the table only
    python benchmarks/thread_policy.py --cells elman,lstm --rounds 15

No test asserts a time; this script only measures and reports.
"""
import argparse
import datetime
import gc
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import cpu_report  # noqa: E402

TITLE = "Thread policy (benchmarks/thread_policy.py)"
SETTLE_S = 0.15
MIN_SAMPLE_S = 0.2
B, T, I = 32, 100, 8
# (cell, H, T) around the thresholds: the Elman per-step rule gives threads
# from B*H*H = 32768 (H = 32 at B = 32); the gated cells' per-call rule
# from T*B*G*H*H = 2e6 (the LSTM at H = 16, T = 100; H = 8 is below).
CONFIGS = {
    "elman": [(16, T), (24, T), (32, T), (64, T)],
    "lstm": [(8, T), (16, 25), (16, T)],
    "gru": [(8, T), (16, 25), (16, T)],
}
PAYS, LOSES = 1.05, 1.0


def make_step(cell, H, T_, dtype, seed=0):
    """A closure running one training step (forward and backward)."""
    import cbptt
    rng = np.random.default_rng(seed)
    G = {"elman": 1, "lstm": 4, "gru": 3}[cell]
    s = 1 / np.sqrt(H)
    x = rng.standard_normal((T_, B, I)).astype(dtype)
    w_ih = (rng.uniform(-s, s, (G * H, I))).astype(dtype)
    w_hh = (rng.uniform(-s, s, (G * H, H))).astype(dtype)
    b = (rng.uniform(-s, s, G * H)).astype(dtype)
    g = (rng.standard_normal((T_, B, H)) * 0.01).astype(dtype)
    if cell == "elman":
        def step():
            res = cbptt.rnn_forward(x, w_ih, w_hh, b, batch_first=False)
            return cbptt.rnn_backward(res, g, input_grad=False)
    elif cell == "lstm":
        def step():
            res = cbptt.lstm_forward(x, w_ih, w_hh, b, batch_first=False)
            return cbptt.lstm_backward(res, g, input_grad=False)
    else:
        b_hh = b.copy()

        def step():
            res = cbptt.gru_forward(x, w_ih, w_hh, b, b_hh, batch_first=False)
            return cbptt.gru_backward(res, g, input_grad=False)
    return step


def force_threads(cell, threads):
    """Make the policy give every layer of ``cell`` one thread (``threads``
    1) or the OpenMP limit (2); returns a callable that restores it."""
    from cbptt import _layer
    work = 0 if threads > 1 else 1 << 62
    old = _layer._set_parallel_min_work(cell, work, work)
    return lambda: _layer._set_parallel_min_work(cell, *old)


def timed(fn):
    """ms per call: the mean of back-to-back calls over MIN_SAMPLE_S, after
    SETTLE_S of idle."""
    time.sleep(SETTLE_S)
    gc.collect()
    gc.disable()
    try:
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= MIN_SAMPLE_S:
                return elapsed / calls * 1e3
    finally:
        gc.enable()


def measure(cell, H, T_, dtype, rounds, threads, log):
    """Per round: (ms on one thread, ms on ``threads``)."""
    step = make_step(cell, H, T_, dtype)
    out = []
    for r in range(rounds):
        order = (1, threads) if r % 2 == 0 else (threads, 1)
        ms = {}
        for n in order:
            restore = force_threads(cell, n)
            try:
                step()                       # the pool and the buffers warm
                ms[n] = timed(step)
            finally:
                restore()
        out.append((ms[1], ms[threads]))
    ratios = [a / b for a, b in out]
    log(f"{cell} H={H} T={T_} {np.dtype(dtype).name}: speed-ups "
        + " ".join(f"{q:.2f}" for q in ratios))
    return out


def summary(pairs):
    """Median ms of each arm, and the speed-up's median, spread and verdict."""
    ratios = sorted(a / b for a, b in pairs)
    q1, med, q3 = (statistics.quantiles(ratios, n=4, method="inclusive")
                   if len(ratios) > 1 else ratios * 3)
    verdict = ("pays" if q1 > PAYS else "loses" if q3 < LOSES else "unclear")
    return {"one": statistics.median(a for a, _ in pairs),
            "two": statistics.median(b for _, b in pairs),
            "median": med, "min": ratios[0], "q1": q1, "q3": q3,
            "max": ratios[-1], "verdict": verdict}


def policy_row(cell, H, T_, itemsize):
    """Threads and the reason the policy gives (cbptt.show_config's rule)."""
    from cbptt import _threads
    d = _threads.explain(cell, T_, B, H, itemsize)
    return d["threads"], d["reason"]


def machine_info(threads):
    import cbptt
    from cbptt import _threads
    top = _threads.topology()
    key, heading = cpu_report.cpu_class()
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    return {"date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            "cpu": heading,
            "topology": _threads.describe_topology(top),
            "threads compared": f"1 and {threads} (the OpenMP limit)",
            "cbptt": f"{cbptt.__version__}, git {rev or '?'}, ISA {cbptt.get_isa()}",
            "load average (1, 5, 15 min) at the start": " ".join(
                f"{v:.1f}" for v in os.getloadavg())}


def render(rows, info, rounds):
    L = [f"Written by `python benchmarks/thread_policy.py` ({rounds} rounds); "
         f"{info['date']}.", "",
         f"One training step (forward and backward, `input_grad=False`, "
         f"time-major, B = {B}, I = {I}) through the functional API, the "
         "kernels forced onto one thread and onto the OpenMP limit; the arms "
         "alternate within each round, each sample the mean of back-to-back "
         f"steps over {MIN_SAMPLE_S} s after {SETTLE_S} s of idle. "
         "**speed-up** = one-thread ms / threaded ms, paired per round: "
         "median (min, quartiles, max). **verdict**: pays when the lower "
         f"quartile is above {PAYS}, loses when the upper quartile is below "
         f"{LOSES}, else unclear. **policy** = what the kernels use by "
         "default (`cbptt.show_config()`).", ""]
    L += [f"- {k}: {v}" for k, v in info.items() if k != "date"]
    L += ["", "| cell | H | T | dtype | 1 thread ms | threads ms | speed-up "
          "median | min | q1-q3 | max | verdict | policy |",
          "|---|---:|---:|---|---:|---:|---:|---:|---|---:|---|---|"]
    for (cell, H, T_, dtype), s, (n, reason) in rows:
        L.append(f"| {cell} | {H} | {T_} | {dtype} | {s['one']:.2f} | "
                 f"{s['two']:.2f} | {s['median']:.3f} | {s['min']:.3f} | "
                 f"{s['q1']:.3f}-{s['q3']:.3f} | {s['max']:.3f} | "
                 f"{s['verdict']} | {n}: {reason} |")
    L += ["", "Rerun: `python benchmarks/thread_policy.py` (`--print` to "
          "print only; `--help` for the options)."]
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--cells", default="elman",
                    help="comma-separated: elman, lstm, gru (default elman)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--print", action="store_true",
                    help="print the table instead of writing BENCHMARKS.md")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = ap.parse_args(argv)
    from cbptt import _layer

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    threads = _layer.openmp_limit()
    if threads < 2:
        log("the OpenMP limit is 1 thread (OMP_NUM_THREADS, one CPU or no "
            "OpenMP): nothing to compare")
        return 1
    info = machine_info(threads)
    rows = []
    for cell in args.cells.split(","):
        for H, T_ in CONFIGS[cell]:
            for dtype in args.dtypes.split(","):
                pairs = measure(cell, H, T_, np.dtype(dtype), args.rounds,
                                threads, log)
                rows.append(((cell, H, T_, dtype), summary(pairs),
                             policy_row(cell, H, T_,
                                        np.dtype(dtype).itemsize)))
    info["load average (1, 5, 15 min) at the end"] = " ".join(
        f"{v:.1f}" for v in os.getloadavg())
    text = render(rows, info, args.rounds)
    if args.print:
        print(text)
    else:
        heading = cpu_report.write_section(args.out, TITLE, text)
        log(f"wrote {args.out}, section {heading!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
