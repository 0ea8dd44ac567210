"""``python -m cbptt``: the demo (the README's first command).

For now the demo trains a tiny tanh Elman network by plain gradient descent
through the functional API (``rnn_forward`` / ``rnn_backward``) to predict
the next value of noisy sine waves, and prints its loss falling.
"""
import argparse
import time

import numpy as np

from cbptt import rnn_backward, rnn_forward


def train_sine(epochs=60, hidden=16, T=40, batch=64, lr=0.1, seed=0, out=print):
    """Train an Elman layer + linear readout on next-step sine prediction.

    Parameters
    ----------
    epochs : int
        Full-batch gradient steps.
    hidden : int
        Hidden units H.
    T : int
        Sequence length.
    batch : int
        Number of sequences.
    lr : float
        Learning rate of plain gradient descent.
    seed : int
        Seed of the data and the initial weights.
    out : callable
        Where progress lines go.

    Returns
    -------
    losses : list of float
        Mean squared error before each step.
    """
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, (batch, 1))
    freq = rng.uniform(0.1, 0.3, (batch, 1))
    s = np.sin(freq * np.arange(T + 1) + phase)
    x, y = s[:, :-1, None], s[:, 1:]
    w_ih = rng.standard_normal((hidden, 1)) * 0.5
    w_hh = np.linalg.qr(rng.standard_normal((hidden, hidden)))[0] * 0.9
    b = np.zeros(hidden)
    w_out = rng.standard_normal(hidden) / np.sqrt(hidden)
    b_out = 0.0
    losses = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        res = rnn_forward(x, w_ih, w_hh, b, activation="tanh")
        pred = res.h @ w_out + b_out
        err = pred - y
        loss = float(np.mean(err ** 2))
        losses.append(loss)
        d_pred = 2 * err / err.size
        grads = rnn_backward(res, d_pred[..., None] * w_out)
        w_out -= lr * np.einsum("btj,bt->j", res.h, d_pred)
        b_out -= lr * d_pred.sum()
        w_ih -= lr * grads.weight_ih
        w_hh -= lr * grads.weight_hh
        b -= lr * grads.bias
        out(f"epoch {epoch + 1:3d}  mse {loss:.5f}  "
            f"({(time.perf_counter() - t0) * 1e3:.1f} ms)")
    return losses


def main(argv=None):
    """Run the demo from the command line."""
    parser = argparse.ArgumentParser(prog="cbptt", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run")
    args = parser.parse_args(argv)
    losses = train_sine(epochs=20 if args.quick else 60)
    print(f"mse fell from {losses[0]:.4f} to {losses[-1]:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
