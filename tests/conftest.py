"""Shared fixtures and helpers for cbptt's tests."""
import signal

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


ISA_LEVELS = ("baseline", "avx2", "avx512")


@pytest.fixture(params=ISA_LEVELS)
def isa_level(request):
    """Runs a test once per instruction set the CPU offers, every compiled
    module switched through the public ``cbptt.set_isa``; the level in use
    before is restored afterwards. The value is the level's name."""
    import cbptt
    from cbptt import _isa
    if ISA_LEVELS.index(request.param) > _isa._cpu_level():
        pytest.skip(f"this CPU does not run {request.param}")
    before = cbptt.get_isa()
    try:
        yield cbptt.set_isa(request.param)
    finally:
        cbptt.set_isa(before)


def simd_level_fixture(module=None):
    """The kernel tests' fixture: ``isa_level`` as a number (0 baseline, 1
    AVX2+FMA, 2 AVX-512), under the name ``simd_level``. ``module`` is
    unused: ``cbptt.set_isa`` switches every compiled module."""
    @pytest.fixture
    def simd_level(isa_level):
        return ISA_LEVELS.index(isa_level)
    return simd_level


def interrupting_batches(monkeypatch, at, how):
    """Make the training's per-mini-batch call interrupt on its ``at``-th call.

    ``how``: "signal" sends one real SIGINT (as Ctrl-C does) at the start of
    that mini-batch; "signal2" sends two (Ctrl-C pressed twice); "raise"
    raises KeyboardInterrupt instead of running it; ``at`` None: never.
    Returns the list of the weights after every finished mini-batch.
    """
    from cbptt._network import Trainer
    original = Trainer.batch
    after = []

    def batch(self, x, lengths, target):
        if len(after) + 1 == at:
            if how == "raise":
                raise KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)
            if how == "signal2":
                signal.raise_signal(signal.SIGINT)
        out = original(self, x, lengths, target)
        after.append(self.params.copy())
        return out

    monkeypatch.setattr(Trainer, "batch", batch)
    return after
