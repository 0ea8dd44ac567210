"""Input validation shared by cbptt's public functions and estimators.

Contract: every check raises ``ValueError`` (bad value or shape) or
``TypeError`` (bad type) with a message that names the argument, what was
seen and what was expected. Nothing here computes; it only checks, converts
and copies at the boundary so that the compiled kernels can trust shapes,
dtypes and contiguity.
"""
import numbers

import numpy as np

from cbptt import _scan

_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


def check_dtype_kind(name, a):
    """Refuse arrays whose dtype is not real numeric (bool/complex/object/str)."""
    kind = a.dtype.kind
    if kind == "b":
        raise TypeError(f"{name} has dtype bool; expected a real floating-point "
                        "(or integer) array")
    if kind not in "fiu":
        raise TypeError(f"{name} has dtype {a.dtype}; expected a real "
                        "floating-point array (float32 or float64)")


def as_array(name, a, ndim):
    """``a`` as an ndarray of the given ndim with a real numeric dtype."""
    if a is None:
        raise TypeError(f"{name} is None; expected an array with {ndim} "
                        "dimension(s)")
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise ValueError(f"{name} could not be converted to an array ({exc}); "
                         "expected a regular array of numbers") from None
    check_dtype_kind(name, arr)
    if arr.ndim != ndim:
        raise ValueError(f"{name} has {arr.ndim} dimension(s) with shape "
                         f"{arr.shape}; expected {ndim}")
    return arr


def working_dtype(*arrays):
    """float32 if every given array is float32, else float64 (native order).

    The byte order does not count, as for NumPy (``np.result_type('>f4',
    '<f4')`` is float32): a big-endian float32 array is float32, and
    :func:`to_kernel` and :func:`time_major` convert it to the native
    order in the copy they make anyway.
    """
    for a in arrays:
        if a is not None and a.dtype.type is not np.float32:
            return _FLOAT64
    return _FLOAT32


def check_shape(name, arr, expected):
    """``arr.shape`` must equal ``expected`` (a tuple; None matches anything)."""
    if arr.shape == expected:
        return
    ok = len(arr.shape) == len(expected) and all(
        e is None or s == e for s, e in zip(arr.shape, expected))
    if not ok:
        shown = tuple("?" if e is None else e for e in expected)
        raise ValueError(f"{name} has shape {arr.shape}; expected {shown}")


def check_nonempty(name, arr, labels):
    """Every axis of ``arr`` has at least one element."""
    for size, label in zip(arr.shape, labels):
        if size < 1:
            raise ValueError(f"{name} has shape {arr.shape}: {label} is 0; "
                             "expected at least 1")


def _scannable(arr):
    """True when the compiled one-pass scans of ``_scan`` can read ``arr``."""
    return (arr.dtype.type in (np.float32, np.float64) and arr.size > 0
            and arr.flags.c_contiguous and arr.dtype.isnative)


def check_finite(name, arr):
    """No NaN or infinity in ``arr``."""
    if arr.dtype.kind in "iu" or (_scannable(arr)
                                  and _scan.all_finite(arr.reshape(-1))):
        return
    if not np.isfinite(arr).all():
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s); "
                         "expected finite values")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:   # long double
        big = float(np.finfo(np.float64).max)
        if arr.size and np.abs(arr).max() > big:
            raise ValueError(f"{name} has values beyond the float64 range "
                             f"(largest |value| {np.abs(arr).max():.3g}); "
                             f"expected values within +-{big:.3g}")


def to_kernel(arr, dtype):
    """C-contiguous, writable-or-not copy in ``dtype`` only when needed."""
    return np.ascontiguousarray(arr, dtype=dtype)


def time_major(arr, dtype):
    """A (B, T, F) array as a fresh C-contiguous (T, B, F) array in ``dtype``
    (always a copy, never a view of ``arr``)."""
    return _time_major(arr, dtype, False)[0]


def time_major_colmax(arr, dtype):
    """``(time_major(arr, dtype), colmax_abs of it)``, in one pass when the
    compiled scan can read ``arr`` (float32/float64 of the working dtype)."""
    return _time_major(arr, dtype, True)


def _time_major(arr, dtype, colmax):
    B, T, F = arr.shape
    if arr.dtype == dtype and arr.dtype.type in (np.float32, np.float64) \
            and arr.size > 0:
        out = np.empty((T, B, F), dtype)
        return out, _scan.time_major(arr, out, colmax)
    out = np.array(np.swapaxes(arr, 0, 1), dtype=dtype, order="C", copy=True)
    return out, colmax_abs(out) if colmax else None


def check_activation(activation):
    """The activation's code for the kernels; scikit-learn's names."""
    # imported here: _activations reads its table from the compiled _elman,
    # which imports this module for check_kernel_sizes
    from cbptt._activations import get_activation
    return get_activation(activation).code


def check_truncate(truncate):
    """``truncate`` as an int >= 0 for the kernels (0 means full BPTT)."""
    if truncate is None:
        return 0
    if isinstance(truncate, (bool, np.bool_)) or not isinstance(
            truncate, numbers.Integral):
        raise TypeError(f"truncate={truncate!r} has type "
                        f"{type(truncate).__name__}; expected None or a "
                        "positive int")
    if truncate < 1:
        raise ValueError(f"truncate={truncate}; expected None or a positive int")
    return int(min(truncate, 2**31 - 1))


# -- Hardening: kernel index limits, owned caches, floating-point range -------

#: BLAS integers are 32-bit here: every matrix dimension a kernel hands to BLAS
#: (rows T*batch, columns H or I) must fit in one.
INDEX_MAX = 2**31 - 1


def check_index_limit(name, value, what):
    """A size the kernels pass to BLAS as a 32-bit int must fit in one."""
    if value > INDEX_MAX:
        raise ValueError(f"{name}: {what} is {value}; expected at most "
                         f"{INDEX_MAX} (the kernels' 32-bit BLAS index "
                         "limit); split the batch or the sequence")


def check_kernel_sizes(where, T, B, I, GH, H):
    """Every integer the kernels form in 32 bits must fit in one.

    The kernels compute every offset into an array in 64 bits
    (``Py_ssize_t``/``long``); what stays a C ``int`` is a size handed to a
    product or a loop: ``T*B`` (the rows of the input projection), ``G*H``,
    ``I``, ``H``, and the elements of a weight matrix, ``G*H*I`` and
    ``G*H*H`` (a packed or transposed matrix's extent, from which ``H +
    I + 1`` rows of ``G*H`` and ``H * itemsize`` also follow). Called by the
    compiled wrappers before any size is narrowed, so sizes beyond the
    limit raise ``ValueError`` instead of wrapping around.
    """
    for value, what in ((T * B, "batch * T"), (I, "the number of features I"),
                        (GH, "G*H (the gate rows)"),
                        (GH * I, "G*H*I (the elements of weight_ih)"),
                        (GH * H, "G*H*H (the elements of weight_hh)")):
        check_index_limit(where, value, what)


def owned(arr, dtype):
    """A fresh read-only C-contiguous copy of ``arr`` in ``dtype``, so that a
    cache kept for the backward pass shares no memory with the caller's
    arrays and cannot be changed behind its back (in-place weight updates,
    writes into a returned view)."""
    out = np.array(arr, dtype=dtype, order="C", copy=True)
    out.setflags(write=False)
    return out


#: Bytes per memory page: the unit in which two cores' writes interfere.
PAGE_BYTES = 4096

#: ``aligned_empty(shape, dtype)``: an uninitialised C-contiguous array whose
#: data start on a page (on a 64-byte line when smaller than a page), for
#: the kernels' per-step outputs. NumPy's own allocations start 16 bytes past
#: a page, so each thread's rows of a step would straddle a page of the
#: other's, and two threads writing one page slow each other down.
aligned_empty = _scan.aligned_empty


def frozen_zeros(shape, dtype):
    """A read-only array of zeros (the default initial state)."""
    out = np.zeros(shape, dtype)
    out.setflags(write=False)
    return out


def colmax_abs(arr):
    """max |arr| over every axis but the last, in float64 (NaN propagates)."""
    n_cols = arr.shape[-1]
    if _scannable(arr):
        return _scan.colmax_abs(arr.reshape(-1, n_cols))
    flat = arr.reshape(-1, n_cols)
    # NumPy reduces a few wide rows much faster than many narrow ones: fold
    # k consecutive rows into one row of ~1024 elements, reduce, then fold
    # back. max/min are exact, so the result is identical.
    k = max(1, 1024 // max(n_cols, 1))
    m = (flat.shape[0] // k) * k
    his, los = [], []
    if m:
        block = flat[:m].reshape(m // k, k * n_cols)
        his.append(block.max(axis=0).reshape(k, n_cols).max(axis=0))
        los.append(block.min(axis=0).reshape(k, n_cols).min(axis=0))
    if m < flat.shape[0]:
        his.append(flat[m:].max(axis=0))
        los.append(flat[m:].min(axis=0))
    hi = np.max(his, axis=0) if len(his) > 1 else his[0]
    lo = np.min(los, axis=0) if len(los) > 1 else los[0]
    return np.maximum(hi, -lo).astype(np.float64)


_QUARTER_MAX = {t: float(np.finfo(t).max) / 4 for t in (np.float32, np.float64)}


def check_preactivation_range(func, dtype, bias, *terms):
    """Refuse a forward pass whose pre-activations may have left ``dtype``'s range.

    The pre-activation of unit j is ``sum_k W[j, k] v[k] + b[j]`` over the
    ``(W, colmax |v|)`` pairs in ``terms``; its partial sums, in any order,
    are bounded by ``sum_k |W[j, k]| max|v[k]| + |b[j]|``. When that bound
    stays below a quarter of the largest finite value, no product or sum
    overflowed, so a saturating activation (tanh(inf) = 1, relu(NaN) = 0)
    cannot have hidden an overflow. NaN or inf in a ``v`` fails the check too.
    """
    worst = _scan.preact_bound_or_none(bias, *terms[0], *terms[1]) \
        if len(terms) == 2 else None
    if worst is None:
        with np.errstate(over="ignore", invalid="ignore"):
            bound = np.abs(bias).astype(np.float64)
            for w, vmax in terms:
                bound = bound + np.abs(w.astype(np.float64)) @ vmax
            worst = float(bound.max())
    limit = _QUARTER_MAX[np.dtype(dtype).type]
    if not worst <= limit:
        seen = f"{worst:.3g}" if np.isfinite(worst) else "a non-finite value"
        advice = "" if np.dtype(dtype) == np.float64 else ", or pass float64 arrays"
        raise ValueError(
            f"{func}: the inputs and weights are too large for {np.dtype(dtype)}: "
            f"a bound on the pre-activations |W x + W h + b| reaches {seen}, "
            f"expected at most {limit:.3g}. Scale x or the weights down{advice}")


def check_outputs_finite(func, dtype, advice, **arrays):
    """Finite inputs must give finite outputs; a non-finite one means an overflow."""
    arrays = {name: a for name, a in arrays.items() if a is not None}
    if _scan.all_finite_arrays(arrays.values()):
        return
    if np.dtype(dtype) != np.float64:
        advice += " Or pass float64 arrays."
    with np.errstate(invalid="ignore"):
        for name, a in arrays.items():
            if a.size and not (np.isfinite(a.max()) and np.isfinite(a.min())):
                raise ValueError(
                    f"{func}: {name} overflowed the {np.dtype(dtype)} range "
                    "(non-finite values from finite inputs); expected finite "
                    f"results. {advice}")
