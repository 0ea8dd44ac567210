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


def simd_level_fixture(module):
    """A fixture that runs a test once per SIMD level the CPU offers (0
    baseline, 1 AVX2+FMA, 2 AVX-512), through ``module._limit_simd_level``;
    the best level is restored afterwards."""
    @pytest.fixture(params=[0, 1, 2], ids=["baseline", "avx2", "avx512"])
    def simd_level(request):
        used = module._limit_simd_level(request.param)
        if used != request.param:
            module._limit_simd_level(99)
            pytest.skip(f"this CPU does not run SIMD level {request.param}")
        yield used
        module._limit_simd_level(99)
    return simd_level
