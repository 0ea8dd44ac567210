"""Shared fixtures and helpers for cbptt's tests."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def rel_err(a, b):
    """Max relative error, guarded for tiny values."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-12)
    return np.abs(a - b).max(initial=0.0) / scale


def central_diff(loss, params, name, eps=1e-6):
    """Central finite-difference gradient of loss() with respect to params[name]."""
    p = params[name]
    grad = np.zeros_like(p)
    it = np.nditer(p, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = p[i]
        p[i] = old + eps
        up = loss()
        p[i] = old - eps
        down = loss()
        p[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad
