"""Two builds of cbptt, paired: the training epoch of bench_epoch.py, alternating.

A refactor of the kernels must not cost speed. This script times the same
job (``bench_epoch.py``'s epoch: 20 mini-batches of 32 sequences, one layer,
full BPTT and SGD) with two builds installed side by side, in one run: per
round and configuration, each build's epoch is sampled once (``_timed``:
back-to-back epochs for at least 0.2 s after an idle pause), the order
alternating between rounds, and the round's ratio is old ms / new ms. The
median of the per-round ratios is reported (> 1: the new build is faster),
so the machine's drift, which moves both samples of a round alike, cancels.

Each build runs in its own worker process (``PYTHONPATH`` = its folder),
started once; the parent sends configurations and reads times.

Install the builds, then run from the repository root::

    git worktree add /tmp/old <old-commit>
    (cd /tmp/old && pip install --no-build-isolation --no-deps --target /tmp/ab/old .)
    pip install --no-build-isolation --no-deps --target /tmp/ab/new .
    python benchmarks/ab_builds.py /tmp/ab/old /tmp/ab/new --rounds 9

No test asserts a time; this script only measures and reports.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(threads):
    """Read ``[cell, dtype, H, T]`` lines, answer ms per epoch (one line each)."""
    sys.path.insert(0, HERE)
    import bench_epoch
    impl = bench_epoch.CbpttImpl(threads)
    prepared = None
    for line in sys.stdin:
        cell, dtype, H, T = json.loads(line)
        if prepared != (cell, dtype, H, T):
            batches, params = bench_epoch.make_job(cell, dtype, H, T)
            impl.prepare(cell, batches, params)
            impl.epoch()                    # warm-up: pools, pages, caches
            prepared = (cell, dtype, H, T)
        print(json.dumps(bench_epoch._timed(impl, impl.epoch)), flush=True)


def start(path, threads):
    """A worker process importing the build in ``path``."""
    return subprocess.Popen([sys.executable, __file__, "--worker",
                             str(threads or 0)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=path),
                            cwd="/")


def sample(proc, config):
    """One sample (ms per epoch) of ``config`` from a worker."""
    proc.stdin.write(json.dumps(config) + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def where(path):
    """The cbptt a worker with ``path`` first imports (guards against the
    source tree or another install being picked up)."""
    out = subprocess.run([sys.executable, "-c",
                          "import cbptt, os; print(os.path.dirname(cbptt.__file__))"],
                         env=dict(os.environ, PYTHONPATH=path), cwd="/",
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="folder holding the old build (pip --target)")
    parser.add_argument("new", help="folder holding the new build")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None,
                        help="limit cbptt to this many threads (default: "
                             "as bench_epoch, every CPU)")
    parser.add_argument("--quick", action="store_true",
                        help="two configurations, 3 rounds")
    parser.add_argument("--cells", nargs="+", default=["elman", "lstm"],
                        help="cells to compare (both builds must have them; "
                             "default: elman lstm)")
    parser.add_argument("--configs", nargs="+", default=None, metavar="HxT",
                        help="(H, T) configurations, e.g. 64x100 (default: "
                             "bench_epoch's)")
    args = parser.parse_args(argv)
    sys.path.insert(0, HERE)
    import bench_epoch
    for path in (args.old, args.new):
        found = where(path)
        if not found.startswith(os.path.abspath(path)):
            raise SystemExit(f"{path}: the worker imports cbptt from {found}")
    shapes = (bench_epoch.QUICK_CONFIGS if args.quick else
              [tuple(int(v) for v in c.split("x")) for c in args.configs]
              if args.configs else bench_epoch.CONFIGS)
    configs = [(cell, dtype, H, T) for cell in args.cells
               for dtype in bench_epoch.DTYPES for H, T in shapes]
    rounds = 3 if args.quick else args.rounds
    procs = {name: start(path, args.threads) for name, path in
             (("old", args.old), ("new", args.new))}
    print(f"# A/B: {args.old} (old) against {args.new} (new), {rounds} rounds; "
          f"{platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, threads {args.threads or 'all'}, "
          f"load {os.getloadavg()[0]:.1f}")
    print("| cell | dtype | H | T | old ms | new ms | old/new (median of "
          "paired rounds) | min | max |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = None
    try:
        for config in configs:
            times = {"old": [], "new": []}
            ratios = []
            for r in range(rounds):
                order = ("old", "new") if r % 2 == 0 else ("new", "old")
                for name in order:
                    times[name].append(sample(procs[name], list(config)))
                ratios.append(times["old"][-1] / times["new"][-1])
            med = statistics.median(ratios)
            worst = med if worst is None else min(worst, med)
            cell, dtype, H, T = config
            print(f"| {cell} | {dtype} | {H} | {T} | "
                  f"{statistics.median(times['old']):.2f} | "
                  f"{statistics.median(times['new']):.2f} | {med:.3f} | "
                  f"{min(ratios):.3f} | {max(ratios):.3f} |", flush=True)
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait()
    print(f"\nworst configuration: {worst:.3f}x of the old speed")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(int(sys.argv[2]) or None)
    else:
        raise SystemExit(main())
