"""Per-epoch cost of the estimators against the bare kernels they call.

For each cell and size: the "bare" epoch calls only the compiled layer
kernels (forward + BPTT of each mini-batch on preallocated time-major
arrays, no loss, no update); the "estimator" epoch is the difference between
a ``fit`` of ``1 + epochs`` epochs and a ``fit`` of one epoch, divided by
``epochs`` (so the one-off validation, packing and allocation of a fit are
not counted). The ratio is the per-epoch overhead (batch gathering, the
compiled output layer and loss, the fused optimizer update, Python once per
mini-batch). The "warm" epoch is one ``fit`` with ``max_iter=1,
warm_start=True`` on a fitted estimator (issue 7's estimator epoch): it also
pays every per-fit cost (parameter and input validation, the optimizer and
work memory, the rollback snapshot). Every figure is the minimum over
``repeat`` interleaved runs.

Run: ``python benchmarks/bench_estimators.py`` (from outside the repo root,
or with cbptt installed).
"""
import argparse
import time

import numpy as np

from cbptt import RNNRegressor, _elman, _lstm


def bare_epoch(cell, X_tm, H, B):
    """One epoch of kernel calls only (forward + backward per mini-batch)."""
    T, N, I = X_tm.shape
    rng = np.random.default_rng(0)
    G = {"elman": 1, "lstm": 4, "lstm1997": 3, "cec": 1}[cell]
    dt = X_tm.dtype
    w_ih = (rng.standard_normal((G * H, I)) * 0.3).astype(dt)
    w_hh = (rng.standard_normal((G * H, H)) * 0.1).astype(dt)
    b = np.zeros(G * H, dt)
    z = np.zeros((B, H), dt)
    h, c = np.empty((T, B, H), dt), np.empty((T, B, H), dt)
    gates, delta = np.empty((T, B, G * H), dt), np.empty((T, B, G * H), dt)
    dc = np.empty((T, B, H), dt)
    g = np.zeros((T, B, H), dt)
    g[-1] = 1.0
    dw_ih, dw_hh, db = np.empty_like(w_ih), np.empty_like(w_hh), np.empty_like(b)
    dh0, dc0 = np.empty((B, H), dt), np.empty((B, H), dt)
    dx = np.empty((T, B, I), dt)
    xb = np.empty((T, B, I), dt)
    tic = time.perf_counter()
    for s in range(0, N - B + 1, B):
        np.copyto(xb, X_tm[:, s:s + B])
        if cell == "elman":
            _elman.elman_forward(xb, w_ih, w_hh, b, z, 2, h)
            _elman.elman_backward(xb, w_ih, w_hh, z, h, g, 2, 0, delta, dw_ih,
                                  dw_hh, db, dh0, dx)
        elif cell == "cec":
            _lstm.cec_forward(xb, w_ih, b, z, h)
            _lstm.cec_backward(xb, w_ih, g, 0, delta, dw_ih, db, dh0, None)
        else:
            fg = cell == "lstm"
            _lstm.lstm_forward(xb, w_ih, w_hh, b, z, z, fg, gates, c, h)
            _lstm.lstm_backward(xb, w_ih, w_hh, z, z, gates, c, h, g, None, fg,
                                0, delta, dc, dw_ih, dw_hh, db, dh0, dc0, None)
    return time.perf_counter() - tic


def estimator_fit(cell, X, y, H, B, epochs):
    """Seconds of a fit of exactly ``epochs`` epochs."""
    est = RNNRegressor(cell=cell, hidden_layer_sizes=(H,), batch_size=B,
                       max_iter=epochs, n_iter_no_change=np.inf, shuffle=True,
                       random_state=0)
    tic = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - tic


def warm_fit(est, X, y):
    """Seconds of one warm ``fit`` (one epoch) of a fitted ``est``."""
    tic = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - tic


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cells", default="elman,lstm,lstm1997,cec")
    ap.add_argument("--small", action="store_true", help="first size only")
    args = ap.parse_args()
    import warnings
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    print(f"{'cell':9} {'N':>5} {'T':>4} {'I':>3} {'H':>4} {'B':>4} "
          f"{'bare ms':>9} {'estim ms':>9} {'ratio':>6} {'warm ms':>9} "
          f"{'ratio':>6}")
    sizes = [(1024, 50, 4, 32, 32), (1024, 100, 8, 64, 64),
             (512, 200, 16, 128, 32)]
    for cell in args.cells.split(","):
        for N, T, I, H, B in sizes[:1] if args.small else sizes:
            X = rng.standard_normal((N, T, I))
            y = X[:, -5:, 0].sum(axis=1)
            X_tm = np.ascontiguousarray(X.transpose(1, 0, 2))
            warm_est = RNNRegressor(cell=cell, hidden_layer_sizes=(H,),
                                    batch_size=B, max_iter=1, shuffle=True,
                                    warm_start=True, random_state=0)
            warm_est.fit(X, y)
            bare = one = many = warm = np.inf   # interleaved: the load drifts
            for _ in range(args.repeat):
                bare = min(bare, bare_epoch(cell, X_tm, H, B))
                one = min(one, estimator_fit(cell, X, y, H, B, 1))
                many = min(many, estimator_fit(cell, X, y, H, B,
                                               1 + args.epochs))
                warm = min(warm, warm_fit(warm_est, X, y))
            est = (many - one) / args.epochs
            print(f"{cell:9} {N:5} {T:4} {I:3} {H:4} {B:4} {bare * 1e3:9.2f} "
                  f"{est * 1e3:9.2f} {est / bare:6.2f} {warm * 1e3:9.2f} "
                  f"{warm / bare:6.2f}", flush=True)


if __name__ == "__main__":
    main()
