"""What a float64 training epoch costs over a float32 one, in cbptt and in
PyTorch, and what share of cbptt's forward pass the activation takes.

Issue 7 sets the same speed targets for both dtypes. This script measures why
they are not alike: per configuration it times bench_epoch.py's job (one
epoch of 20 mini-batches of 32 sequences) in both dtypes, cbptt at its
default threads and PyTorch at its better of 1 and 2 threads, alternating
within each round, and reports per round (then the median over rounds):

- **cbptt f64/f32** and **torch f64/f32**: each one's float64 epoch over its
  float32 epoch, taken seconds apart;
- **ratio f32**, **ratio f64**: PyTorch ms / cbptt ms, as in BENCHMARKS.md;
- **f64/f32 allowed**: the largest cbptt f64/f32 with which the float64
  ratio would reach its target, given that round's float32 ratio and
  PyTorch's own f64/f32 (ratio f64 = ratio f32 x torch f64/f32 / cbptt
  f64/f32);
- **act share** (Elman only): the share of cbptt's forward kernel, run over
  the same mini-batches, that the tanh takes: 1 - t(identity) / t(tanh),
  paired per round (the same kernel on the same arrays, the activation the
  only difference).

Run from the repository root after ``pip install .``::

    python benchmarks/dtype_cost.py                      # Elman, H = 16, 64, 256
    python benchmarks/dtype_cost.py --cells elman lstm --hs 16 64 --rounds 5

It prints a Markdown table; no test asserts a time.
"""
import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_epoch as be  # noqa: E402

DTYPES = ("float32", "float64")


def _forward_kernel(impl, activation):
    """cbptt's Elman forward kernel over the job's mini-batches (time-major,
    validated arrays, outputs allocated once): the activation is the only
    difference between two such runs."""
    import numpy as np
    from cbptt import _elman
    from cbptt._scan import aligned_empty
    from cbptt._validation import check_activation
    p, act = impl.p, check_activation(activation)
    T, B, _ = impl.batches[0][0].shape
    H = p["bias"].shape[0]
    h0 = np.zeros((B, H), p["bias"].dtype)
    h = aligned_empty((T, B, H), p["bias"].dtype)

    def run():
        for x, _ in impl.batches:
            _elman.elman_forward(x, p["weight_ih"], p["weight_hh"], p["bias"],
                                 h0, act, h)
    return run


def measure(cell, H, T, rounds):
    """One configuration: a dict of per-round lists (ms and ratios)."""
    ours, torch = {}, {}
    for dtype in DTYPES:
        batches, params = be.make_job(cell, dtype, H, T)
        ours[dtype] = be.CbpttImpl()
        ours[dtype].prepare(cell, batches, params)
        if be.TorchImpl(1).available(cell) is None:
            torch[dtype] = [be.TorchImpl(n) for n in (1, 2)]
            for impl in torch[dtype]:
                impl.prepare(cell, batches, params)
    rows = {k: [] for k in ("cbptt f32", "cbptt f64", "torch f32", "torch f64",
                            "act f32", "act f64")}
    for _ in range(rounds):
        for dtype in DTYPES:
            tag = "f32" if dtype == "float32" else "f64"
            impl = ours[dtype]
            rows["cbptt " + tag].append(be._timed(impl, impl.epoch))
            if torch:
                rows["torch " + tag].append(
                    min(be._timed(t, t.epoch) for t in torch[dtype]))
            if cell == "elman":
                with_tanh = be._timed(impl, _forward_kernel(impl, "tanh"))
                without = be._timed(impl, _forward_kernel(impl, "identity"))
                rows["act " + tag].append(1.0 - without / with_tanh)
    return rows


def summarise(cell, H, rows, target):
    """The table's row: medians of the per-round figures (None: unmeasured)."""
    def med(values):
        return statistics.median(values) if values else None

    c32, c64 = rows["cbptt f32"], rows["cbptt f64"]
    t32, t64 = rows["torch f32"], rows["torch f64"]
    out = {"cell": cell, "H": H, "cbptt f32": med(c32), "cbptt f64": med(c64),
           "cbptt f64/f32": med([b / a for a, b in zip(c32, c64)]),
           "torch f32": med(t32), "torch f64": med(t64),
           "torch f64/f32": None, "ratio f32": None, "ratio f64": None,
           "target f64": target, "f64/f32 allowed": None,
           "act f32": med(rows["act f32"]), "act f64": med(rows["act f64"])}
    if t32:
        out["torch f64/f32"] = med([b / a for a, b in zip(t32, t64)])
        out["ratio f32"] = med([t / c for t, c in zip(t32, c32)])
        out["ratio f64"] = med([t / c for t, c in zip(t64, c64)])
        if target:
            out["f64/f32 allowed"] = med(
                [(ta / ca) * (tb / ta) / target
                 for ta, ca, tb in zip(t32, c32, t64)])
    return out


COLUMNS = [("cell", "{}"), ("H", "{}"), ("cbptt f32", "{:.2f}"),
           ("cbptt f64", "{:.2f}"), ("cbptt f64/f32", "{:.2f}"),
           ("torch f32", "{:.1f}"), ("torch f64", "{:.1f}"),
           ("torch f64/f32", "{:.2f}"), ("ratio f32", "{:.1f}"),
           ("ratio f64", "{:.1f}"), ("target f64", "{:g}"),
           ("f64/f32 allowed", "{:.2f}"), ("act f32", "{:.0%}"),
           ("act f64", "{:.0%}")]


def render(table, T, rounds):
    """The Markdown table (ms are medians per epoch)."""
    lines = [f"T = {T}, {rounds} rounds; ms per epoch (medians); ratios and "
             "shares paired per round, then the median",
             "", "| " + " | ".join(name for name, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in table:
        cells = [("-" if row[name] is None else spec.format(row[name]))
                 for name, spec in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", nargs="+", default=["elman"],
                    choices=be.CELLS)
    ap.add_argument("--hs", nargs="+", type=int, default=[16, 64, 256])
    ap.add_argument("-T", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args(argv)
    table = []
    for cell in args.cells:
        for H in args.hs:
            rows = measure(cell, H, args.T, args.rounds)
            target = be.TARGETS[(cell, "float64")].get(H)
            table.append(summarise(cell, H, rows, target))
            print(f"{cell} H={H} done", file=sys.stderr, flush=True)
    text = render(table, args.T, args.rounds)
    print(text)
    return text


if __name__ == "__main__":
    main()
