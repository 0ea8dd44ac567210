"""Initialisations shared by the cells: Glorot-uniform input weights and
orthogonal recurrent blocks, drawn from a ``numpy.random.RandomState``."""
import numpy as np


def glorot_uniform(rng, fan_out, fan_in):
    """A (fan_out, fan_in) matrix, U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, (fan_out, fan_in))


def orthogonal(rng, n):
    """An (n, n) orthogonal matrix, uniform (Haar) over O(n): QR of a Gaussian."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def stacked_blocks(make, n_blocks):
    """``n_blocks`` matrices from ``make()`` stacked by rows (gate blocks)."""
    return np.concatenate([make() for _ in range(n_blocks)], axis=0)
