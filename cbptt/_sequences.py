"""Sequence input for the estimators: validation, padding and time-major packing.

Contract
--------
Accepted ``X``:

* a 3-D array ``(n_samples, n_timesteps, n_features)``;
* a 2-D array ``(n_samples, n_timesteps)``: ``n_samples`` univariate series
  (the convention of tslearn and aeon). As for every scikit-learn estimator
  on 2-D data, ``n_features_in_`` is then ``X.shape[1]`` and later calls
  with 2-D data must have as many columns;
* a list of ``(T_i, n_features)`` (or ``(T_i,)``) arrays of different lengths.

Variable lengths may also be given as trailing-NaN padding: the steps after
a sequence's last step are NaN in every feature. NaN anywhere else, and
infinity anywhere, is a ``ValueError``. float32 input stays float32; any
other real input becomes float64.

Output: :class:`Sequences`, the data batch-first ``(N, T, F)`` C-contiguous
in the compute dtype (the caller's own array when it already is one: never
written to), its time-major ``(T, N, F)`` copy with zeros at padded steps on
demand (``x``), plus ``lengths (N,)`` (None when no sequence is padded) and
the layout it came in (``"2d"``, ``"3d"``, ``"list"``), which shapes the
predictions of ``output="sequence"``.
"""
import numbers

import numpy as np
from scipy import sparse
from sklearn import get_config
from sklearn.utils.validation import check_array, validate_data

from cbptt import _scan
from cbptt._validation import time_major

FLOATS = (np.float64, np.float32)


class Sequences:
    """Validated sequences: the batch-first data, and time-major on demand.

    ``data (N, T, F)`` is C-contiguous in the compute dtype and may be the
    caller's own array (never written to): it holds each sequence's NaN
    padding beyond ``lengths``. :attr:`x` is the time-major ``(T, N, F)``
    copy with zeros there, made on first use; training gathers its
    mini-batches straight from ``data``
    (:func:`cbptt._train.gather_batch_first`), so a fit pays no time-major
    copy of the whole data set.
    """

    __slots__ = ("data", "lengths", "layout", "_x")

    def __init__(self, data, lengths, layout):
        self.data = data              # (N, T, F) C-contiguous, NaN pads
        self.lengths = lengths        # (N,) intp, None when all have T steps
        self.layout = layout          # "2d", "3d" or "list"
        self._x = None

    @property
    def x(self):
        """(T, N, F) C-contiguous, zero beyond ``lengths`` (a fresh copy,
        made once)."""
        if self._x is None:
            x = time_major(self.data, self.data.dtype)
            if self.lengths is not None:
                np.nan_to_num(x, copy=False, nan=0.0)
            self._x = x
        return self._x

    @property
    def n_samples(self):
        return self.data.shape[0]

    @property
    def n_steps(self):
        return self.data.shape[1]

    @property
    def n_features(self):
        return self.data.shape[2]

    @property
    def dtype(self):
        return self.data.dtype

    def valid_mask(self):
        """(T, N) bool: True at the steps that belong to a sequence."""
        T, N = self.n_steps, self.n_samples
        if self.lengths is None:
            return np.ones((T, N), bool)
        return np.arange(T)[:, None] < self.lengths[None, :]

    def take(self, idx):
        """The sequences ``idx`` (a new :class:`Sequences`, trimmed to their
        longest)."""
        data = self.data[idx]
        lengths = None if self.lengths is None else self.lengths[idx]
        if lengths is not None and lengths.size and \
                lengths.max() < data.shape[1]:
            data = np.ascontiguousarray(data[:, :lengths.max()])
        return Sequences(data, lengths, self.layout)


_NOT_REAL = {"U": "strings", "S": "bytes", "M": "datetimes",
             "m": "timedeltas", "V": "raw or structured records"}
_EXPECTED = ("expected real floating-point or integer numbers (e.g. float64, "
             "float32, int64)")


def _refuse_object_element(a, name):
    """The first element of object array ``a`` that is not a real number, refused."""
    for idx, v in np.ndenumerate(a):
        if isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)):
            continue
        where = f"{name}[{', '.join(map(str, idx))}]"
        if isinstance(v, (str, bytes, np.str_, np.bytes_)):
            raise TypeError(f"{name} has dtype object and {where} is the "
                            f"string {v!r}; {_EXPECTED}, not strings (convert "
                            "numeric strings yourself, e.g. with "
                            "np.asarray(X, dtype=float))")
        if isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name} has dtype object and {where} is the bool "
                            f"{v!r}; {_EXPECTED}, not bools")
        if isinstance(v, (complex, np.complexfloating)):
            raise ValueError(f"{name} has dtype object and {where} is the "
                             f"complex number {v!r}: Complex data not "
                             f"supported; {_EXPECTED}")
        try:
            float(v)                 # a real number of another type (Decimal)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} has dtype object and {where} is a "
                            f"{type(v).__name__} that is not a real number "
                            f"({exc}); {_EXPECTED}") from None


def check_real_numbers(X, name="X"):
    """Refuse input whose values are not real numbers.

    bool, string, bytes, datetime and structured dtypes, and object arrays
    holding anything but real numbers (numeric strings included), raise
    ``TypeError`` naming ``name``, the dtype (or element) seen and what is
    expected; complex numbers raise ``ValueError`` ("Complex data not
    supported", scikit-learn's wording) (a DataFrame is seen as ``np.asarray`` makes it; the sequences
    of a ragged list are checked one by one, as ``name[i]``). Object arrays
    of real numbers pass (scikit-learn's ``check_dtype_object`` requires it);
    None and sparse matrices are left to the caller's later checks.
    """
    if X is None or sparse.issparse(X):
        return
    try:
        a = np.asarray(X)
    except (ValueError, TypeError):          # ragged: check each sequence
        if isinstance(X, (list, tuple)):
            for i, e in enumerate(X):
                check_real_numbers(e, f"{name}[{i}]")
        return
    kind = a.dtype.kind
    if kind in "fiu":
        return
    if kind == "c":                 # ValueError, as scikit-learn's checks want
        raise ValueError(f"{name} has dtype {a.dtype}: Complex data not "
                         f"supported; {_EXPECTED}")
    if kind != "O":
        what = f" ({_NOT_REAL[kind]})" if kind in "USMmV" else ""
        raise TypeError(f"{name} has dtype {a.dtype}{what}; {_EXPECTED}")
    types = set(map(type, a.flat))
    if not all(issubclass(t, numbers.Real) and not issubclass(t, (bool, np.bool_))
               for t in types):
        _refuse_object_element(a, name)


def _is_ragged(X):
    """A list/tuple of sequences whose shapes differ."""
    if not isinstance(X, (list, tuple)) or len(X) == 0:
        return False
    shapes = set()
    for e in X:
        if not hasattr(e, "__len__") or isinstance(e, (str, bytes)):
            return False
        shapes.add(np.shape(e))
        if len(shapes) > 1:
            return True
    return False


def _ndim(X):
    ndim = getattr(X, "ndim", None)
    if isinstance(ndim, int):
        return ndim
    return np.asarray(X).ndim


def _list_to_padded(X, dtype):
    """A list of (T_i, F) / (T_i,) arrays as a NaN-padded (N, T_max, F) array,
    and the lengths (None when every sequence is finite and has T_max steps;
    a sequence that is not all finite leaves them to
    :func:`_lengths_from_nan`, which raises or reads its own trailing NaN)."""
    arrays = []
    for i, e in enumerate(X):
        a = check_array(e, ensure_2d=False, allow_nd=True,
                        dtype=FLOATS if dtype is None else dtype,
                        ensure_all_finite=False, input_name=f"X[{i}]")
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"X[{i}] has {a.ndim} dimensions with shape "
                             f"{a.shape}; expected (n_timesteps, n_features) "
                             "or (n_timesteps,)")
        if a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"X[{i}] has shape {a.shape}; expected at least "
                             "1 time step and 1 feature")
        arrays.append(a)
    n_feat = {a.shape[1] for a in arrays}
    if len(n_feat) > 1:
        raise ValueError("the sequences of X have different numbers of "
                         f"features {sorted(n_feat)}; expected one number")
    if dtype is None:
        dtype = (np.float32 if all(a.dtype == np.float32 for a in arrays)
                 else np.float64)
    T = max(a.shape[0] for a in arrays)
    out = np.full((len(arrays), T, n_feat.pop()), np.nan, dtype)
    finite = True
    for i, a in enumerate(arrays):
        out[i, :a.shape[0]] = a
        finite = finite and _scan.all_finite(out[i, :a.shape[0]].reshape(-1))
    if not finite:
        return out, _lengths_from_nan(out)
    lengths = np.array([a.shape[0] for a in arrays], np.intp)
    return out, (None if (lengths == T).all() else lengths)


#: Values per chunk of the padding scan's element-wise masks.
_SCAN_CHUNK = 1 << 20


def _lengths_from_nan(X):
    """Lengths of trailing-NaN-padded sequences ``X (N, T, F)``; None if unpadded.

    Raises ValueError on infinity, and on NaN that is not a trailing pad.
    """
    if (X.dtype.type in (np.float32, np.float64) and X.flags.c_contiguous
            and X.size and _scan.all_finite(X.reshape(-1))):
        return None                     # one compiled pass: no NaN, no inf
    # Element-wise masks are made a chunk of sequences at a time (at most
    # _SCAN_CHUNK values), so the scan never holds a mask the size of X.
    N, T, F = X.shape
    step = max(1, _SCAN_CHUNK // max(1, T * F))
    chunks = [slice(s, s + step) for s in range(0, N, step)]
    for c in chunks:
        inf = np.isinf(X[c])
        if inf.any():
            n, t, _ = np.argwhere(inf)[0]
            raise ValueError(f"X contains infinity (inf), e.g. at sample "
                             f"{n + c.start}, step {t}; expected finite "
                             "values (NaN only as trailing padding)")
    pad = np.empty((N, T), bool)                    # (N, T) whole-step NaN
    partial = np.empty((N, T), bool)
    for c in chunks:
        nan = np.isnan(X[c])
        np.all(nan, axis=2, out=pad[c])
        np.any(nan, axis=2, out=partial[c])
    if not partial.any():
        return None
    partial &= ~pad
    if partial.any():
        n, t = np.argwhere(partial)[0]
        raise ValueError(f"X contains NaN in some but not all features of "
                         f"sample {n}, step {t}; NaN is only allowed as "
                         "trailing padding (every feature of every step after "
                         "a sequence's last step)")
    real = ~pad
    has_real = real.any(axis=1)
    if not has_real.all():
        n = int(np.flatnonzero(~has_real)[0])
        raise ValueError(f"sample {n} of X is NaN at every step; expected at "
                         "least one step that is not NaN padding")
    lengths = T - np.argmax(real[:, ::-1], axis=1)
    inner = pad & (np.arange(T)[None, :] < lengths[:, None])
    if inner.any():
        n, t = np.argwhere(inner)[0]
        raise ValueError(f"X contains NaN at sample {n}, step {t}, before "
                         f"that sequence's last step {lengths[n] - 1}; NaN is "
                         "only allowed as trailing padding")
    return lengths.astype(np.intp)


def _unchanged_by_check_array(a, dtypes, ndims, finite):
    """Whether scikit-learn's ``check_array(a, dtype=dtypes, ...)`` would
    return ``a`` itself: a plain C-contiguous ndarray already of one of
    ``dtypes`` (float32/float64), with ``ndim`` in ``ndims``, no empty axis
    and, when ``finite``, only finite values (one compiled pass). Every
    other input (and every input with array-API dispatch on) goes through
    ``check_array``, which raises its own errors."""
    return (type(a) is np.ndarray and a.dtype in dtypes
            and a.dtype.type in FLOATS and a.ndim in ndims and a.size > 0
            and a.flags.c_contiguous
            and not get_config()["array_api_dispatch"]
            and (not finite or _scan.all_finite(a.reshape(-1))))


def checked_array(a, dtype, *, ndims, finite, **kwargs):
    """``check_array(a, dtype=dtype, **kwargs)`` without its cost when it
    would return ``a`` unchanged (see :func:`_unchanged_by_check_array`;
    ``finite`` must match ``kwargs``' ``ensure_all_finite``, default True).
    """
    dtypes = dtype if isinstance(dtype, tuple) else (np.dtype(dtype),)
    if _unchanged_by_check_array(a, dtypes, ndims, finite):
        return a
    return check_array(a, dtype=dtype, **kwargs)


def _check_3d(X, dtype):
    X = checked_array(X, FLOATS if dtype is None else dtype, ndims=(3,),
                      finite=False, allow_nd=True, ensure_all_finite=False,
                      input_name="X")
    if X.shape[1] < 1 or X.shape[2] < 1:
        raise ValueError(f"X has shape {X.shape}; expected (n_samples, "
                         "n_timesteps, n_features) with at least 1 time step "
                         "and 1 feature")
    return X


def validate_sequences(estimator, X, *, reset, dtype=None):
    """Check ``X`` and pack it time-major (see the module docstring).

    Parameters
    ----------
    estimator : the estimator (``n_features_in_`` and, for 2-D input,
        ``feature_names_in_`` are set on it when ``reset``, else checked).
    X : array-like or list of array-like
    reset : bool
        True in a fit that starts from scratch.
    dtype : numpy dtype or None
        Compute dtype (the fitted model's); None keeps float32/float64.

    Returns
    -------
    Sequences
    """
    name = type(estimator).__name__
    check_real_numbers(X)
    lengths = False                     # not known yet
    if _is_ragged(X):
        layout = "list"
        X, lengths = _list_to_padded(X, dtype)
    elif _ndim(X) == 3:
        layout = "3d"
        X = _check_3d(X, dtype)
    else:
        layout = "2d"
        fitted_2d = getattr(estimator, "_input_layout", "2d") == "2d"
        kwargs = dict(dtype=FLOATS if dtype is None else dtype,
                      ensure_all_finite=False)
        if reset or fitted_2d:
            X = validate_data(estimator, X, reset=reset, **kwargs)
        else:
            X = check_array(X, input_name="X", **kwargs)
        X = X[:, :, None]
    n_features = X.shape[2]
    if reset:
        if layout != "2d":
            estimator.n_features_in_ = n_features
            if hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
        estimator._input_layout = layout
        estimator._n_step_features = n_features
    elif n_features != estimator._n_step_features:
        if layout == "2d":
            raise ValueError(
                f"X is 2-D (univariate series) but {name} was fitted on "
                f"sequences of {estimator._n_step_features} features per "
                "time step; pass X of shape (n_samples, n_timesteps, "
                f"{estimator._n_step_features})")
        raise ValueError(
            f"X has {n_features} features per time step, but {name} is "
            f"expecting {estimator._n_step_features} features as input")
    X = np.ascontiguousarray(X)         # a copy only when X is strided
    if lengths is False:
        lengths = _lengths_from_nan(X)
    return Sequences(X, lengths, layout)


def sequence_targets(y, seqs, name="y"):
    """``y`` of ``output="sequence"`` as a list-free array ``(N, T, ...)``.

    ``y`` is an array whose first two axes are ``(n_samples, n_timesteps)``
    of ``X`` (values at padded steps are ignored), or, for list ``X``, a list
    of ``(T_i, ...)`` arrays. Returns an object-free ndarray of shape
    ``(N, T) + trailing`` (trailing axes as given) with arbitrary values at
    padded steps.
    """
    T, N = seqs.n_steps, seqs.n_samples
    lengths = seqs.lengths
    if _is_ragged(y) or (seqs.layout == "list" and isinstance(y, (list, tuple))
                         and len(y) == N and _ndim(y[0]) >= 1):
        if len(y) != N:
            raise ValueError(f"{name} has {len(y)} sequences but X has {N}; "
                             "expected one target sequence per sample")
        parts = [np.asarray(e) for e in y]
        trailing = {p.shape[1:] for p in parts}
        if len(trailing) > 1:
            raise ValueError(f"the sequences of {name} have different "
                             f"shapes beyond the time axis: {sorted(trailing)}")
        for i, p in enumerate(parts):
            want = T if lengths is None else lengths[i]
            if p.ndim < 1 or p.shape[0] != want:
                raise ValueError(f"{name}[{i}] has shape {p.shape}; expected "
                                 f"{want} time steps like X[{i}]")
        dt = np.result_type(*[p.dtype for p in parts])
        out = np.zeros((N, T) + trailing.pop(), dt)
        for i, p in enumerate(parts):
            out[i, :p.shape[0]] = p
        return out
    arr = np.asarray(y)
    if arr.ndim < 2 or arr.shape[0] != N or arr.shape[1] != T:
        raise ValueError(
            f"{name} has shape {arr.shape}; with output='sequence' expected "
            f"(n_samples, n_timesteps) = ({N}, {T}) or ({N}, {T}, n_outputs), "
            "one target per time step of X")
    return arr
