"""The per-step products against one core's FP peak, per instruction set.

For every instruction-set level this CPU runs (baseline, AVX2+FMA,
AVX-512; see ``cbptt.set_isa``), the C harness ``benchmarks/c/isa_peak.c``
measures one core's floating-point peak (a tight loop of the kernels'
multiply-add on that level's vectors: FMA with AVX2/AVX-512, a multiply and
an add at the x86-64 baseline) and the rate of the Elman forward's per-step
product (``net(t) += h(t-1) W_hh^T``, 32 rows, T = 100 chained steps,
H = 16, 64, 256) through the dispatched kernel, in float32 and float64. The
share of the peak is the issue-21 target: >= 50% at H >= 64 on every level.

Method: the harness is built with CMakeLists.txt's flags and run ``rounds``
times; each figure is the best of ``reps`` timings per run (each at least
5 ms of the thread's CPU time, so time the thread spent descheduled on a
shared machine does not count), then the best over the runs: both the peak
and the products are "what the core does when it runs", compared like for
like.

Run from the repository root::

    python benchmarks/isa_peak.py            # writes this CPU's section of BENCHMARKS.md
    python benchmarks/isa_peak.py --print    # prints the table only

No test asserts a rate; this script only measures and reports.
"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import cpu_report  # noqa: E402

TITLE = "Per-step products against one core's FP peak, per ISA level (benchmarks/isa_peak.py)"
LEVELS = ("baseline", "avx2", "avx512")
LEVEL_NAMES = {"baseline": "baseline", "avx2": "AVX2+FMA", "avx512": "AVX-512"}
HS = (16, 64, 256)
DTYPES = {"float": "float32", "double": "float64"}
TARGET_SHARE = 50.0            # % of the peak at H >= 64 (issue 21)
# CMakeLists.txt's flags for the kernels (Release), warnings on.
FLAGS = ["-O3", "-DNDEBUG", "-fno-math-errno", "-fno-trapping-math", "-Wall",
         "-Wextra"]


def build(cc="gcc", out_dir=None):
    """Compile the harness; returns the binary's path."""
    out_dir = out_dir or tempfile.mkdtemp(prefix="isa_peak")
    exe = os.path.join(out_dir, "isa_peak")
    subprocess.run([cc, *FLAGS, "-I", os.path.join(ROOT, "src"), "-o", exe,
                    os.path.join(HERE, "c", "isa_peak.c")], check=True)
    return exe


def parse(text):
    """The harness's lines as {("peak", level, dtype): GFLOP/s,
    ("mm", level, dtype, H): GFLOP/s}."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if f[:1] == ["peak"] and len(f) == 4:
            out[("peak", f[1], f[2])] = float(f[3])
        elif f[:1] == ["mm"] and len(f) == 6:
            out[("mm", f[1], f[2], int(f[3]))] = float(f[5])
    return out


def best_of(runs):
    """The best (largest) GFLOP/s of each figure over several parsed runs."""
    best = {}
    for run in runs:
        for k, v in run.items():
            best[k] = max(best.get(k, 0.0), v)
    return best


def measure(exe, rounds, reps, log=print):
    runs = []
    for r in range(rounds):
        p = subprocess.run([exe, str(reps)], capture_output=True, text=True,
                           check=True)
        runs.append(parse(p.stdout))
        log(f"round {r + 1}/{rounds}: " + ", ".join(
            f"{k[1]} {k[2]} peak {v:.1f}" for k, v in runs[-1].items()
            if k[0] == "peak"))
    return best_of(runs)


def shares(best):
    """{(level, dtype): {"peak": GFLOP/s, H: (GFLOP/s, % of the peak)}} for
    the levels measured."""
    table = {}
    for level in LEVELS:
        for dtype in ("float", "double"):
            peak = best.get(("peak", level, dtype))
            if not peak:
                continue
            row = {"peak": peak}
            for H in HS:
                g = best.get(("mm", level, dtype, H))
                row[H] = (g, 100.0 * g / peak) if g else (None, None)
            table[(level, dtype)] = row
    return table


def implausible(table, slack=1.1):
    """The rows of ``table`` whose products ran faster than the peak (by more
    than ``slack``, timing noise): no kernel beats the FP units' throughput,
    so there the peak loop measured something else (a loop whose chains
    spilled to memory measured 60% of the AVX-512 peak on a Zen 4)."""
    return [f"{LEVEL_NAMES[level]} {DTYPES[dtype]}: products at "
            f"{max(s for g, s in (row[H] for H in HS) if s is not None):.0f}% "
            "of the peak"
            for (level, dtype), row in table.items()
            if any(s is not None and s > 100.0 * slack
                   for g, s in (row[H] for H in HS))]


def render(table, info, rounds, reps):
    L = [f"Written by `python benchmarks/isa_peak.py` ({rounds} runs of the "
         f"harness, best of {reps} timings each, then the best over the runs); "
         f"{info['date']}.", "",
         "One core (one thread). **peak**: the kernels' multiply-add "
         "(`acc += a * w`) in independent chains on the level's vectors: FMA "
         "with AVX2+FMA and AVX-512, a multiply and an add at the x86-64 "
         "baseline (SSE2 has no FMA). **products**: the Elman forward's "
         "per-step product through the dispatched kernel "
         "(`net(t) += h(t-1) W_hh^T`, (32 x H) = (32 x H)(H x H), packed "
         "W_hh, T = 100 chained steps), the level forced as `cbptt.set_isa` "
         "does. Times are the thread's CPU time, so the other work on a "
         "shared machine does not count as ours. Target (issue 21): the "
         f"per-step products at >= {TARGET_SHARE:g}% of the peak at H >= 64 "
         "on every level.", ""]
    L += [f"- {k}: {v}" for k, v in info.items() if k != "date"]
    L += ["", "| ISA level | dtype | peak GFLOP/s | H=16 GFLOP/s | % peak "
          "| H=64 GFLOP/s | % peak | H=256 GFLOP/s | % peak | >= 50% at H >= 64 |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for (level, dtype), row in table.items():
        cells = []
        for H in HS:
            g, s = row[H]
            cells += ["-" if g is None else f"{g:.1f}",
                      "-" if s is None else f"{s:.0f}"]
        met = all(row[H][1] is not None and row[H][1] >= TARGET_SHARE
                  for H in HS if H >= 64)
        L.append(f"| {LEVEL_NAMES[level]} | {DTYPES[dtype]} | {row['peak']:.1f} | "
                 + " | ".join(cells) + f" | {'yes' if met else '**no**'} |")
    L += ["", "Rerun: `python benchmarks/isa_peak.py` (`--print` to print "
          "only; `--help` for the options)."]
    return "\n".join(L) + "\n"


def machine_info(cc):
    version = subprocess.run([cc, "--version"], capture_output=True,
                             text=True).stdout.splitlines()
    key, heading = cpu_report.cpu_class()
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    return {"date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            "cpu": heading,
            "compiler": version[0] if version else cc,
            "cbptt": f"git {rev or '?'}",
            "load average (1, 5, 15 min) at the start": " ".join(
                f"{v:.1f}" for v in os.getloadavg())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5,
                    help="runs of the harness (default 5)")
    ap.add_argument("--reps", type=int, default=20,
                    help="timings per figure in each run (default 20)")
    ap.add_argument("--cc", default=os.environ.get("CC", "gcc"))
    ap.add_argument("--print", action="store_true",
                    help="print the table instead of writing BENCHMARKS.md")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    info = machine_info(args.cc)
    exe = build(args.cc)
    best = measure(exe, args.rounds, args.reps, log)
    info["load average (1, 5, 15 min) at the end"] = " ".join(
        f"{v:.1f}" for v in os.getloadavg())
    table = shares(best)
    bad = implausible(table)
    if bad:
        log("not written: the per-step products beat the measured peak, so the "
            "peak loop (benchmarks/c/isa_peak.c) is not the peak: "
            + "; ".join(bad))
        return 1
    text = render(table, info, args.rounds, args.reps)
    if args.print:
        print(text)
    else:
        heading = cpu_report.write_section(args.out, TITLE, text)
        log(f"wrote {args.out}, section {heading!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
