"""Sequence input for the estimators: validation, padding and time-major packing.

Contract
--------
Accepted ``X``:

* a 3-D array ``(n_samples, n_timesteps, n_features)``;
* a 2-D array ``(n_samples, n_timesteps)``: ``n_samples`` univariate series.
  As for every scikit-learn estimator on 2-D data, ``n_features_in_`` is
  then ``X.shape[1]`` and later calls with 2-D data must have as many
  columns;
* a list of ``(T_i, n_features)`` (or ``(T_i,)``) arrays of different lengths.

The layout is channels-last, time before features, as in tslearn and Keras;
aeon and sktime hold series channels-first, ``(n_cases, n_channels,
n_timepoints)`` (``X.transpose(0, 2, 1)`` converts; a list of
``(n_channels, n_timepoints_i)`` arrays: ``[x.T for x in X]``). Errors about
a number of dimensions, features or steps name ``X``, say how its axes were
read and which shapes are accepted, and point at the conversion when the
data looks channels-first.

Variable lengths may also be given as trailing-NaN padding: the steps after
a sequence's last step are NaN in every feature. NaN anywhere else, and
infinity anywhere, is a ``ValueError``. float32 input stays float32 (in
either byte order: a non-native array is copied to the native order, the
copy a conversion makes anyway); any other real input becomes float64.

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
                if e is None:
                    raise TypeError(f"{name}[{i}] is None; {name} is a list "
                                    "of sequences, each an array of real "
                                    "numbers") from None
                check_real_numbers(e, f"{name}[{i}]")
        return
    kind = a.dtype.kind
    if kind in "fiu":
        if isinstance(X, (list, tuple)):
            # np.asarray([float_seq, bool_seq]) is float: each sequence of a
            # list is held to the rule of an array, as in a ragged list.
            for i, e in enumerate(X):
                if not _is_scalar(e):
                    check_real_numbers(e, f"{name}[{i}]")
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
    if any(issubclass(t, numbers.Integral) for t in types):
        _refuse_huge_integer(a, name)


def _refuse_huge_integer(a, name):
    """An integer of object array ``a`` beyond the float64 range, refused
    (``float(10**400)`` is an OverflowError that would not name ``name``)."""
    for idx, v in np.ndenumerate(a):
        if isinstance(v, numbers.Integral):
            try:
                float(v)
            except OverflowError:
                where = f"{name}[{', '.join(map(str, idx))}]"
                raise ValueError(
                    f"{name} has dtype object and {where} is an integer of "
                    f"{len(str(abs(int(v))))} digits, beyond the float64 "
                    f"range (about 1.8e308); {_EXPECTED}") from None


def _is_scalar(e):
    """Whether ``e`` is one number (a Python or NumPy scalar, or a 0-d
    array) rather than a sequence."""
    return (isinstance(e, (numbers.Number, np.generic))
            or (isinstance(e, np.ndarray) and e.ndim == 0))


def _refuse_scalar_items(X):
    """A list X mixing sequences and scalars, refused naming the first
    scalar (NumPy's own message, "inhomogeneous shape", names neither X nor
    the item). A list of scalars only is a 1-D X, refused by its rank."""
    if not isinstance(X, (list, tuple)) or len(X) < 2:
        return
    scalar = [_is_scalar(e) for e in X]
    if any(scalar) and not all(scalar):
        i = scalar.index(True)
        raise ValueError(f"X[{i}] is a scalar ({X[i]!r}); expected each "
                         "sequence as an array of shape (n_timesteps, "
                         "n_features) or (n_timesteps,): X is a list of "
                         "sequences")


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


def _swapped(a):
    """Whether ``a`` is a float32 or float64 ndarray in the non-native byte
    order (``'>f4'`` on a little-endian machine)."""
    return (isinstance(a, np.ndarray) and a.dtype.type in FLOATS
            and not a.dtype.isnative)


def _float32_arrays(X):
    """Whether ``X`` is a non-empty list or tuple of float32 ndarrays."""
    return (isinstance(X, (list, tuple)) and len(X) > 0
            and all(isinstance(e, np.ndarray) and e.dtype == np.float32
                    for e in X))


def _native(X):
    """``X`` with its non-native float32/float64 arrays (``X`` itself, or the
    sequences of a list or tuple ``X``) copied to the native byte order;
    anything else as it is. NumPy counts ``'>f4'`` as float32, but
    scikit-learn's ``check_array(dtype=(float64, float32))`` does not find
    it in the list and converts it to float64 (with one ``dtype`` it
    converts any byte order itself: no call needed)."""
    if isinstance(X, (list, tuple)):
        return [_native(e) for e in X] if any(map(_swapped, X)) else X
    return X.astype(X.dtype.newbyteorder("=")) if _swapped(X) else X


def _list_to_padded(X, dtype):
    """A list of (T_i, F) / (T_i,) arrays as a NaN-padded (N, T_max, F) array,
    and the lengths (None when every sequence is finite and has T_max steps;
    a sequence that is not all finite leaves them to
    :func:`_lengths_from_nan`, which raises or reads its own trailing NaN)."""
    arrays = []
    for i, e in enumerate(X):
        # Empty sequences pass check_array (whose "Found array with 0
        # sample(s)" would not name X[i]) to be refused below.
        a = check_array(e, ensure_2d=False, allow_nd=True,
                        dtype=FLOATS if dtype is None else dtype,
                        ensure_all_finite=False, ensure_min_samples=0,
                        ensure_min_features=0, input_name=f"X[{i}]")
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"X[{i}] has {a.ndim} dimensions with shape "
                             f"{a.shape}; expected (n_timesteps, n_features) "
                             "or (n_timesteps,)")
        if a.shape[0] < 1:
            raise ValueError(f"X[{i}] has 0 time steps (shape {a.shape}); "
                             "expected at least 1 time step in every "
                             "sequence")
        if a.shape[1] < 1:
            raise ValueError(f"X[{i}] has shape {a.shape}; expected at least "
                             "1 time step and 1 feature")
        arrays.append(a)
    n_feat = {a.shape[1] for a in arrays}
    if len(n_feat) > 1:
        shown = sorted(n_feat)
        shown = (str(shown) if len(shown) <= 6 else
                 "[" + ", ".join(map(str, shown[:5])) + ", ...]")
        msg = ("the sequences of X have different numbers of features "
               f"{shown}; expected one number: a list X holds "
               "(n_timesteps_i, n_features) arrays, time steps in rows "
               "(channels-last)")
        rows = {a.shape[0] for a in arrays}
        if len(rows) == 1:
            msg += (f". Every array has {rows.pop()} rows and the columns "
                    "differ: this looks like channels-first series "
                    "(n_channels, n_timepoints_i), as aeon and sktime hold "
                    "unequal-length data; pass [x.T for x in X]")
        raise ValueError(msg)
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
    Without ``finite``, a cast beyond the dtype's range gives infinity
    without NumPy's overflow warning: the caller refuses it by name (a cast
    that overflowed float32 says so).
    """
    dtypes = dtype if isinstance(dtype, tuple) else (np.dtype(dtype),)
    if _unchanged_by_check_array(a, dtypes, ndims, finite):
        return a
    if finite:
        return check_array(a, dtype=dtype, **kwargs)
    with np.errstate(over="ignore"):
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


X_SHAPES = ("a 3-D array (n_samples, n_timesteps, n_features), a 2-D array "
            "(n_samples, n_timesteps) of univariate series, or a list of "
            "(n_timesteps_i, n_features) or (n_timesteps_i,) arrays")


def _refuse_ndim(X, ndim):
    """X of a rank the estimators do not take: a ValueError naming it, the
    shapes accepted and the likely reshape."""
    if X is None:
        raise ValueError(f"X is None; expected {X_SHAPES}")
    msg = (f"X has {ndim} dimension{'s' if ndim != 1 else ''} with shape "
           f"{np.asarray(X).shape}; expected {X_SHAPES}")
    if ndim == 1:
        msg += (". Reshape your data: X.reshape(1, -1) if it is one "
                "univariate series, X.reshape(1, -1, 1) likewise as 3-D")
    elif ndim > 3:
        msg += (". Reshape your data to (n_samples, n_timesteps, n_features),"
                " e.g. drop an axis of length 1 with np.squeeze")
    raise ValueError(msg)


def _features_hint(X, layout, expected, fitted_layout):
    """Why a feature count may not match: how ``X`` was read, and the
    conversion when it looks channels-first."""
    if layout == "3d":
        hint = (f" A 3-D X is read channels-last, (n_samples, n_timesteps, "
                f"n_features) = {X.shape}")
        if X.shape[1] == expected:
            hint += (f"; its axis 1 has the {expected} expected features: "
                     "this looks like channels-first data (n_samples, "
                     "n_channels, n_timepoints), as aeon and sktime hold "
                     "series; pass X.transpose(0, 2, 1)")
        else:
            hint += ("; aeon's and sktime's channels-first (n_cases, "
                     "n_channels, n_timepoints) converts with "
                     "X.transpose(0, 2, 1)")
    else:
        hint = (" A list X holds (n_timesteps_i, n_features) arrays, time "
                "steps in rows (channels-last); channels-first "
                "(n_channels, n_timepoints_i) arrays convert with "
                "[x.T for x in X]")
    if fitted_layout == "2d":
        hint += (". It was fitted on 2-D X, which is (n_samples, "
                 "n_timesteps) univariate series: one feature per step")
    return hint + "."


def _two_d_columns_hint(estimator, name):
    """Appended to scikit-learn's "X has n features, but ... is expecting m
    features" for 2-D X: its columns are time steps."""
    m = estimator.n_features_in_
    return (f" A 2-D X is read as (n_samples, n_timesteps) univariate "
            f"series: {name} was fitted on 2-D X of {m} time steps, and 2-D "
            "X must keep that number of columns (n_features_in_, as for "
            "every scikit-learn estimator). Series of another length go in "
            "as X[:, :, None], shape (n_samples, n_timesteps, 1), or as a "
            "list of 1-D arrays.")


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
    original = X
    check_real_numbers(X)
    _refuse_scalar_items(X)
    ndim = None
    lengths = False                     # not known yet
    if not _is_ragged(X):
        ndim = _ndim(X)
        if ndim not in (2, 3):
            _refuse_ndim(X, ndim)
    if dtype is None:                   # a given dtype converts any order
        X = _native(X)
        if ndim is not None and _float32_arrays(X):
            # equal-length float32 sequences stay float32, as ragged ones do
            # (check_array would read a list as float64)
            X = np.stack(X)
    if ndim is None:
        layout = "list"
        X, lengths = _list_to_padded(X, dtype)
    elif ndim == 3:
        layout = "3d"
        X = _check_3d(X, dtype)
    else:
        layout = "2d"
        fitted_2d = getattr(estimator, "_input_layout", "2d") == "2d"
        kwargs = dict(dtype=FLOATS if dtype is None else dtype,
                      ensure_all_finite=False)
        if reset or fitted_2d:
            try:
                X = validate_data(estimator, X, reset=reset, **kwargs)
            except ValueError as exc:
                if reset or "is expecting" not in str(exc):
                    raise
                raise ValueError(str(exc) + _two_d_columns_hint(
                    estimator, name)) from None
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
            f"expecting {estimator._n_step_features} features as input."
            + _features_hint(X, layout, estimator._n_step_features,
                             getattr(estimator, "_input_layout", None)))
    X = np.ascontiguousarray(X)         # a copy only when X is strided
    if lengths is False:
        try:
            lengths = _lengths_from_nan(X)
        except ValueError:
            if X.dtype == np.float32:
                _refuse_cast_overflow(original, X, layout)
            raise
    return Sequences(X, lengths, layout)


def _refuse_cast_overflow(original, X, layout):
    """Say so when the infinity found in the float32 ``X`` came from a finite
    value of the caller's ``original`` X that the cast overflowed."""
    inf = np.argwhere(np.isinf(X))
    if inf.size == 0:
        return
    n, t, j = (int(i) for i in inf[0])
    try:
        if layout == "list":
            v = np.asarray(original[n], dtype=np.float64)[t]
        else:
            v = np.asarray(original, dtype=np.float64)[n, t]
        v = float(np.ravel(v)[j])
    except (ValueError, TypeError, IndexError, OverflowError):
        return
    if np.isfinite(v):
        raise ValueError(
            f"X holds {v:.6g} at sample {n}, step {t}, feature {j}: finite, "
            "but the cast overflowed to infinity in the model's float32 "
            f"(largest {float(np.finfo(np.float32).max):.3g}). Scale X down, "
            "or fit the model on float64 data")


def check_target_shape(y, ndims, accepted, name="y"):
    """Refuse targets whose number of dimensions is not in ``ndims`` (before
    scikit-learn's checks, whose messages would name other shapes): a
    ValueError naming ``name``, its shape and ``accepted``."""
    try:
        shape = np.asarray(y).shape      # np.shape: not for array-likes
    except ValueError:                   # a ragged nested list
        raise ValueError(f"{name} is a nested sequence of unequal lengths; "
                         f"expected {accepted}") from None
    if len(shape) not in ndims:
        raise ValueError(f"{name} has {len(shape)} dimension"
                         f"{'s' if len(shape) != 1 else ''} with shape "
                         f"{shape}; expected {accepted}")
    return shape


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


class NonFiniteTargets(ValueError):
    """NaN or infinity in targets: a ValueError naming the data, the value,
    the sample and where in it (``parts``, so that a caller that handed over
    one block of the data can restate the sample's place in the whole, as
    :mod:`cbptt.dask` does)."""

    def __init__(self, name, what, n, where, expected):
        self.parts = dict(name=name, what=what, n=n, where=where,
                          expected=expected)
        super().__init__(f"{name} contains {what} at sample {n}{where}; "
                         f"expected {expected}")

    def restated(self, **changes):
        """This error with some of its ``parts`` changed."""
        return NonFiniteTargets(**{**self.parts, **changes})


def _nonfinite_name(v, dtype):
    what = "NaN" if np.isnan(v) else "infinity (inf)"
    if dtype == np.float32:
        what += " (or a value beyond the float32 range)"
    return what


STEP_TARGETS = ("finite targets at every step of every sequence (values at "
                "padded steps are ignored)")
ROW_TARGET = "a finite target for every sequence"


def refuse_nonfinite_targets(y, seqs, name="y", expected=STEP_TARGETS):
    """Refuse NaN or infinity in targets ``y (N, T, K)`` of
    ``output="sequence"`` whose padded steps are already zeroed: a
    :class:`NonFiniteTargets` naming ``name``, the first sample and step (a
    valid one, then) and that sequence's length, as X's errors do, and
    saying what was ``expected``."""
    bad = ~np.isfinite(y).reshape(y.shape[0], y.shape[1], -1).all(axis=2)
    if not bad.any():
        return
    n, t = (int(i) for i in np.argwhere(bad)[0])
    v = np.ravel(y[n, t])
    v = v[~np.isfinite(v)][0]
    length = seqs.n_steps if seqs.lengths is None else int(seqs.lengths[n])
    raise NonFiniteTargets(name, _nonfinite_name(v, y.dtype), n,
                           f", step {t} (of that sequence's {length} steps)",
                           expected)


def refuse_nonfinite_rows(y, name="y", expected=ROW_TARGET):
    """Refuse NaN or infinity in targets ``y`` of ``output="last"``, one row
    per sequence (``(N,)`` or ``(N, K)``): a :class:`NonFiniteTargets`
    naming ``name``, the first sample and, for several outputs, the output.
    Targets that are all finite, or not real numbers, pass unchanged."""
    arr = np.asarray(y)
    if arr.dtype.kind not in "fc" or arr.ndim == 0 or not arr.size:
        return
    rows = arr.reshape(arr.shape[0], -1)
    bad = ~np.isfinite(rows)
    if not bad.any():
        return
    n, k = (int(i) for i in np.argwhere(bad)[0])
    raise NonFiniteTargets(name, _nonfinite_name(rows[n, k], arr.dtype), n,
                           f", output {k}" if arr.ndim > 1 else "",
                           expected)


class SampleWeights:
    """Validated sample weights of a fit (see :func:`sample_weights`).

    ``rows``: the weights the loss reads, in the compute dtype: ``(N,)``, one
    per sequence, with ``output="last"``; ``(N, T, 1)`` C-contiguous, one per
    step (0 at padded steps), with ``output="sequence"``. ``per_sequence``
    ``(N,)`` float64: each sequence's weight in the L2 coefficient
    ``alpha / sum_b w_b`` of a mini-batch (the mean weight of its steps for
    per-step weights).
    """

    __slots__ = ("rows", "per_sequence")

    def __init__(self, rows, per_sequence):
        self.rows = rows
        self.per_sequence = per_sequence


_WEIGHT_SHAPES = {
    "last": "a scalar or an array of shape (n_samples,) = ({N},)",
    "sequence": ("a scalar, an array of shape (n_samples,) = ({N},) (one "
                 "weight per sequence) or (n_samples, n_timesteps) = ({N}, "
                 "{T}) (one per step), or for list X a list of "
                 "(n_timesteps_i,) arrays"),
}


def _check_weight_values(seen):
    """The weights that count (float64): finite, non-negative, with a
    positive sum."""
    if not np.isfinite(seen).all():
        raise ValueError("sample_weight contains NaN or infinity; expected "
                         "finite, non-negative weights")
    if (seen < 0).any():
        raise ValueError(f"sample_weight has negative values (the smallest is "
                         f"{seen.min():g}); expected finite, non-negative "
                         "weights")
    if not seen.max(initial=0.0) > 0:     # non-negative: a positive sum
        raise ValueError("sample_weight is zero everywhere (the weights of "
                         "the valid steps sum to zero); expected at least one "
                         "positive weight")


def score_weights(sample_weight, n_samples):
    """Check ``sample_weight`` of a score over ``n_samples`` sequences as
    :func:`sample_weights` checks a fit's (a scalar or one weight per
    sequence; finite, non-negative, a positive sum). Returns float64
    ``(n_samples,)`` weights, or None."""
    if sample_weight is None:
        return None
    check_real_numbers(sample_weight, "sample_weight")
    if isinstance(sample_weight, numbers.Real):
        sw = np.full(n_samples, float(sample_weight))
    else:
        sw = np.asarray(sample_weight)
        if sw.ndim != 1 or sw.shape[0] != n_samples:
            raise ValueError(f"sample_weight has shape {sw.shape} for X of "
                             f"{n_samples} samples; expected a scalar or an "
                             f"array of shape ({n_samples},)")
        sw = sw.astype(np.float64)
    _check_weight_values(sw)
    return sw


def sample_weights(sample_weight, seqs, output):
    """Check ``sample_weight`` of a fit on ``seqs``; a :class:`SampleWeights`.

    Accepted: None (returns None), a scalar, ``(n_samples,)`` (each
    sequence's loss, or every step of it, weighted), and with
    ``output="sequence"`` also one weight per step: ``(n_samples,
    n_timesteps)`` or, for list ``X``, a list of ``(n_timesteps_i,)``
    arrays. Weights must be finite and non-negative with a positive sum
    (padded steps do not count). Errors name ``sample_weight``, what was
    seen and the shapes accepted.
    """
    if sample_weight is None:
        return None
    N, T = seqs.n_samples, seqs.n_steps
    accepted = _WEIGHT_SHAPES[output].format(N=N, T=T)
    check_real_numbers(sample_weight, "sample_weight")
    if isinstance(sample_weight, numbers.Real):
        sw = np.full(N, float(sample_weight))
    elif output == "sequence" and (_is_ragged(sample_weight) or (
            _ndim(sample_weight) == 2 and len(sample_weight) == N)
            or (seqs.layout == "list" and isinstance(sample_weight, (list, tuple))
                and len(sample_weight) == N and _ndim(sample_weight[0]) == 1)):
        try:
            sw = sequence_targets(sample_weight, seqs, name="sample_weight")
        except ValueError as exc:
            raise ValueError(f"{exc}; sample_weight must be {accepted}") from None
        if sw.ndim != 2:
            raise ValueError(f"sample_weight has shape {sw.shape}; expected "
                             f"{accepted}")
        sw = np.asarray(sw, dtype=np.float64)
    else:
        sw = np.asarray(sample_weight)
        if sw.ndim != 1 or sw.shape[0] != N:
            raise ValueError(f"sample_weight has shape {sw.shape} for X of "
                             f"{N} samples; expected {accepted}")
        sw = sw.astype(np.float64)
    valid = seqs.valid_mask().T if sw.ndim == 2 else np.ones(N, bool)
    _check_weight_values(sw[valid])
    dtype = seqs.dtype
    # A weight (or a sequence's sum of them) beyond the compute dtype's
    # range becomes infinity, which the fit refuses by name
    # (_check_loss_range).
    with np.errstate(over="ignore"):
        if output == "last":
            return SampleWeights(np.ascontiguousarray(sw, dtype), sw)
        steps = seqs.valid_mask().T
        if sw.ndim == 1:
            per_sequence = sw
            sw = np.where(steps, sw[:, None], 0.0)
        else:
            sw = np.where(steps, sw, 0.0)
            per_sequence = sw.sum(axis=1) / steps.sum(axis=1)
        return SampleWeights(np.ascontiguousarray(sw[:, :, None], dtype),
                             per_sequence)
