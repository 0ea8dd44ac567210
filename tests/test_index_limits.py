"""Index arithmetic in 64 bits (issue 19): the kernels compute every offset
in Py_ssize_t/long, and the sizes they keep in 32-bit ints (T*B, I, G*H and
the elements of each weight matrix, G*H*I and G*H*H) are checked up front.
``d_w_ih[j * I + i]`` was computed in int: with H*I > 2**31 - 1 it read and
wrote out of bounds, while the limits checked H, I and B*T separately.

Arrays that large cannot be made in a test; zero-stride (broadcast) views
have the shapes without the memory, and the checks run before anything is
copied or scanned.
"""
import numpy as np
import pytest

from cbptt import cec_forward, lstm_forward, rnn_forward
from cbptt._validation import INDEX_MAX, check_kernel_sizes


def _big(shape, dtype=np.float32):
    return np.broadcast_to(np.ones((), dtype), shape)


@pytest.mark.parametrize("sizes,what", [
    ((2**16, 2**15, 1, 1, 1), "batch \\* T"),
    ((1, 1, 2**31, 1, 1), "the number of features"),
    ((1, 1, 1, 2**31, 2**29), "G\\*H "),
    ((1, 1, 2**16, 2**15, 2**15), "G\\*H\\*I"),        # H*I = 2**31
    ((1, 1, 1, 4 * 2**14, 2**14), "G\\*H\\*H"),        # LSTM: 4*H*H = 2**30
    ((1, 1, 2**15, 4 * 2**14, 2**14), "G\\*H\\*I"),    # 4*H*I = 2**31
])
def test_limit_check_covers_every_product(sizes, what):
    T, B, I, GH, H = sizes
    if GH * H <= INDEX_MAX and GH * I <= INDEX_MAX and T * B <= INDEX_MAX \
            and I <= INDEX_MAX and GH <= INDEX_MAX:
        check_kernel_sizes("k", T, B, I, GH, H)         # at the limit: passes
        return
    with pytest.raises(ValueError, match=f"k: {what}.*32-bit"):
        check_kernel_sizes("k", T, B, I, GH, H)


def test_limit_check_passes_at_the_limit():
    check_kernel_sizes("k", 2**16, 2**15 - 1, 1, 1, 1)
    check_kernel_sizes("k", 1, 1, 2**15 - 1, 2**16, 2**15 - 1)
    check_kernel_sizes("k", 1, 1, 1, 4 * 23170, 23170)


def test_functional_api_refuses_weights_past_the_limit_before_copying():
    x = np.ones((1, 2, 2**15 + 1), np.float32)
    H = 2**16                                  # H * I = 2**31 + 2**16
    with pytest.raises(ValueError, match="G\\*H\\*I.*32-bit"):
        rnn_forward(x, _big((H, 2**15 + 1)), _big((H, H)), _big((H,)))
    with pytest.raises(ValueError, match="G\\*H\\*I.*32-bit"):
        cec_forward(x, _big((H, 2**15 + 1)), _big((H,)))
    x = np.ones((1, 2, 3), np.float32)
    H = 2**15                                  # 4 * H * H = 2**32
    with pytest.raises(ValueError, match="G\\*H\\*H.*32-bit"):
        lstm_forward(x, _big((4 * H, 3)), _big((4 * H, H)), _big((4 * H,)))


def test_kernel_wrappers_check_before_narrowing(monkeypatch):
    """The compiled wrappers (which the estimators' layers call) check the
    sizes they are about to narrow to ints, with the layer's G*H and H."""
    from cbptt import _elman, _lstm
    seen = []

    def record(where, T, B, I, GH, H):
        seen.append((where, T, B, I, GH, H))
        check_kernel_sizes(where, T, B, I, GH, H)
    monkeypatch.setattr(_elman, "check_kernel_sizes", record)
    monkeypatch.setattr(_lstm, "check_kernel_sizes", record)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 2))          # time-major (T, B, I)
    h0 = np.zeros((5, 4))
    h = np.empty((3, 5, 4))
    _elman.elman_forward(x, rng.standard_normal((4, 2)), np.eye(4) * .5,
                         np.zeros(4), h0, 0, h)
    _lstm.lstm_forward(x, rng.standard_normal((12, 2)), np.zeros((12, 4)),
                       np.zeros(12), h0, h0, False, np.empty((3, 5, 12)),
                       np.empty((3, 5, 4)), h)
    _lstm.cec_forward(x, rng.standard_normal((4, 2)), np.zeros(4), h0, h)
    assert seen == [("elman_forward", 3, 5, 2, 4, 4),
                    ("lstm_forward", 3, 5, 2, 12, 4),
                    ("cec_forward", 3, 5, 2, 4, 4)]
