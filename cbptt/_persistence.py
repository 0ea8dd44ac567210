"""Safe persistence of fitted estimators: ``est.save(path)`` and ``cbptt.load(path)``.

Contract
--------
* The file is a ZIP archive (NumPy's ``.npz`` container) holding
  ``metadata.json`` and one ``arrays/<key>.npy`` per array. Nothing in it is
  ever unpickled: arrays are read with ``allow_pickle=False`` and the class to
  build comes from an allow-list in the code, never from the file.
* ``metadata.json`` (format version 1) is a JSON object::

      {"format": "cbptt-estimator", "format_version": 1,
       "cbptt_version": "0.1.0", "class": "RNNClassifier",
       "params": {...},     # get_params(deep=False), encoded
       "fitted": {...},     # every public fitted attribute (name ends in "_")
       "arrays": {"a0": {"dtype": "<f8", "shape": [16, 3]}, ...}}

  Values are JSON with a few tagged objects: ``{"__array__": "a0"}`` (an
  array stored as ``arrays/a0.npy``; ``"object": true`` when it was an
  object array of strings), ``{"__tuple__": [...]}``, ``{"__dict__": {...}}``,
  ``{"__float__": "inf" | "-inf" | "nan"}`` and ``{"__scalar__": "<i8",
  "value": ...}`` for NumPy scalars. Lists of floats (``loss_curve_``), label
  arrays of strings, ints or floats (``classes_``) and lists of dicts of
  arrays (``coefs_``) all fit this.
* Loading refuses, with a ``ValueError`` saying what is wrong, anything that
  is not exactly such a file: not a ZIP, truncated or failing its CRC, a
  missing or unexpected member, invalid JSON, another format or a newer
  format version, a class not on the allow-list, parameters the class does
  not have or rejects (or lacks one, but for a parameter added after the
  file's cbptt: it takes the value that keeps that cbptt's behaviour, see
  ``_ADDED_LATER``), an array whose header disagrees with the metadata
  (shape, dtype, size), object or structured dtypes (pickle), non-finite
  weights. Headers are checked before any array data is read.
* Bounded work: ``load`` opens the path without blocking and refuses
  anything but a regular file (a FIFO, a device such as ``/dev/zero``, a
  directory) before reading a byte; every member must be stored
  uncompressed within the file's actual size, every array's bytes must be
  present in its member, and the sizes of the network must be those of the
  arrays present, so nothing is allocated that the file's own size does not
  justify. Every failure, whatever its cause, is a ``ValueError`` starting
  with ``cannot load <path>:`` (a missing file is ``FileNotFoundError``).
* An estimator joins by calling :func:`allow` on its class and defining
  ``def save(self, path): return _persistence.save(self, path)``. Private
  attributes of plain data it needs besides the fitted ones it names in a
  class attribute ``_persistent_attributes`` (a tuple of names); private
  state that is not plain data (a compiled network, an optimizer) is
  rebuilt after loading by its ``_rebuild_from_fitted()`` method, when it
  has one. A loaded estimator predicts like the saved one. Public fitted
  attributes that are diagnostics rather than plain data it names in
  ``_transient_attributes``: they are not written, and a loaded estimator
  lacks them.
* ``save`` writes to a temporary file in the same directory and renames it,
  so a failing save never leaves a partial file behind. The file gets the
  mode a plain ``open(path, "w")`` would give it: that of the file it
  replaces, else ``0o666`` less the process's umask. A ``path`` that is a
  directory, or whose directory is missing or not writable, raises the
  ``OSError`` subclass that says so (``IsADirectoryError``,
  ``FileNotFoundError``, ``PermissionError``) naming ``path``.
"""
import errno
import io
import json
import math
import numbers
import os
import stat
import tempfile
import threading
import zipfile

import numpy as np

FORMAT = "cbptt-estimator"
FORMAT_VERSION = 1
METADATA = "metadata.json"
MAX_METADATA_BYTES = 16 << 20
MAX_ARRAYS = 100_000
# NumPy's own limit is 64 dimensions; cbptt saves at most 3.
MAX_NDIM = 32

#: class name -> class; the only classes load() will build.
_ALLOWED = {}
# Parameters added after format version 1, with the value that reproduces
# what an estimator did before it had them. A file written before one of
# them existed lacks it and loads with that value; a file lacking any other
# parameter is refused (it is not what save() writes).
_ADDED_LATER = {"record_error_flow": None, "on_nonfinite": "warn"}


def allow(cls):
    """Put ``cls`` on the allow-list of :func:`load` (usable as a decorator)."""
    _ALLOWED[cls.__name__] = cls
    return cls


def _allowed_classes():
    import cbptt                      # the estimators register on import
    for name in ("RNNRegressor", "RNNClassifier"):
        cls = getattr(cbptt, name, None)
        if cls is not None:
            _ALLOWED.setdefault(name, cls)
    return _ALLOWED


# -- encoding ----------------------------------------------------------------

class _Encoder:
    """Python values -> JSON-able values plus a dict of arrays."""

    def __init__(self):
        self.arrays = {}

    def array(self, a, where):
        a = np.asarray(a)
        extra = {}
        if a.dtype.kind == "O":
            if not all(isinstance(v, str) for v in a.flat):
                raise TypeError(f"{where} is an object array of non-strings; "
                                "expected numbers or strings (nothing that "
                                "needs pickle)")
            a, extra = a.astype(str), {"object": True}
        if a.dtype.kind not in "biufU" or a.dtype.fields is not None:
            raise TypeError(f"{where} has dtype {a.dtype}; expected a bool, "
                            "integer, float or string array")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = np.ascontiguousarray(a)
        return {"__array__": key, **extra}

    def value(self, v, where):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, np.ndarray):
            return self.array(v, where)
        if isinstance(v, np.generic):
            if v.dtype.kind not in "biuf":
                raise TypeError(f"{where} is a {type(v).__name__}; expected a "
                                "real number")
            return {"__scalar__": v.dtype.str,
                    "value": self.value(v.item(), where)}
        if isinstance(v, numbers.Integral):
            return int(v)
        if isinstance(v, float):
            return v if math.isfinite(v) else {"__float__": repr(v)}
        if isinstance(v, tuple):
            return {"__tuple__": [self.value(x, f"{where}[{i}]")
                                  for i, x in enumerate(v)]}
        if isinstance(v, list):
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError(f"{where} has non-string keys; expected a "
                                "dict with string keys")
            return {"__dict__": {k: self.value(x, f"{where}[{k!r}]")
                                 for k, x in v.items()}}
        raise TypeError(f"{where} has type {type(v).__name__}, which cbptt "
                        "cannot save without pickle; expected numbers, "
                        "strings, None, arrays, or lists/tuples/dicts of them")


def _persisted_names(cls):
    """Private attributes a class asks to persist besides its fitted ones."""
    return set(getattr(cls, "_persistent_attributes", ()))


def _fitted_attributes(est):
    """Public fitted attributes (names ending in "_", scikit-learn's rule)
    plus the private ones the class lists in ``_persistent_attributes``."""
    extra = _persisted_names(type(est))
    transient = set(getattr(type(est), "_transient_attributes", ()))
    return {k: v for k, v in vars(est).items()
            if ((k.endswith("_") and not k.startswith("_")) or k in extra)
            and k not in transient}


def save(est, path):
    """Write ``est`` to ``path`` in cbptt's safe format (see the module doc).

    Parameters
    ----------
    est : estimator
        An instance of a class on the allow-list (fitted or not).
    path : str or os.PathLike
        Where to write; conventionally ending in ``.npz``.

    Returns
    -------
    path : str
        The path written.

    Raises
    ------
    TypeError
        If the class is not on the allow-list, or a parameter or fitted
        attribute holds something that cannot be saved without pickle.
    IsADirectoryError, FileNotFoundError, PermissionError, OSError
        If ``path`` is a directory, its directory does not exist or cannot
        be written; the message names ``path``, not the temporary file.
    """
    from cbptt import __version__
    cls = type(est)
    if _allowed_classes().get(cls.__name__) is not cls:
        raise TypeError(f"cannot save a {cls.__name__}: expected an instance "
                        f"of one of {sorted(_ALLOWED)}")
    enc = _Encoder()
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "cbptt_version": __version__, "class": cls.__name__,
        "params": {k: enc.value(v, f"parameter {k}")
                   for k, v in est.get_params(deep=False).items()},
        "fitted": {k: enc.value(v, f"attribute {k}")
                   for k, v in _fitted_attributes(est).items()},
    }
    meta["arrays"] = {k: {"dtype": a.dtype.str, "shape": list(a.shape)}
                      for k, a in enc.arrays.items()}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):             # refused before anything is written
        raise IsADirectoryError(
            errno.EISDIR, f"cannot save to {path!r}: it is a directory; "
            "expected the path of a file, e.g. "
            f"{os.path.join(path, 'model.npz')!r}")
    mode = _mode_for(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".cbptt-save-")
    except OSError as exc:
        raise _save_error(exc, path, folder) from None
    try:
        os.fchmod(fd, mode)             # mkstemp's 0o600 is not the user's
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w") as z:
            z.writestr(METADATA, json.dumps(meta, allow_nan=False, indent=1))
            for key, a in enc.arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, a, allow_pickle=False)
                z.writestr(f"arrays/{key}.npy", buf.getvalue())
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise _save_error(exc, path, folder) from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _save_error(exc, path, folder):
    """The OSError ``exc`` of making or renaming the temporary file, as the
    same type of error about the caller's ``path`` (the temporary's name
    means nothing to the caller)."""
    if isinstance(exc, FileNotFoundError):
        why = (f"its directory {folder!r} does not exist; create it first "
               "(os.makedirs)")
    elif isinstance(exc, IsADirectoryError):
        why = "it is a directory; expected the path of a file"
    else:
        why = exc.strerror or str(exc)
    msg = f"cannot save to {path!r}: {why}"
    return type(exc)(msg) if exc.errno is None else type(exc)(exc.errno, msg)


_UMASK_LOCK = threading.Lock()


def _umask():
    """The process's umask, read without changing it where Linux says it
    (``/proc/self/status``), else by setting and restoring it under a lock."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _mode_for(path):
    """The permission bits ``open(path, "w")`` would leave: an existing
    regular file's own, else ``0o666`` less the umask."""
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except OSError:
        pass
    return 0o666 & ~_umask()


# -- decoding ----------------------------------------------------------------

class _Refused(ValueError):
    pass


def _fail(msg):
    raise _Refused(msg)


def _check_entry(key, spec):
    if (not isinstance(spec, dict) or set(spec) != {"dtype", "shape"}
            or not isinstance(spec["dtype"], str)
            or not isinstance(spec["shape"], list)
            or not all(type(n) is int and n >= 0 for n in spec["shape"])):
        _fail(f"metadata entry arrays[{key!r}] is malformed; expected "
              '{"dtype": str, "shape": [int, ...]}')
    try:
        dtype = np.dtype(spec["dtype"])
    except (TypeError, ValueError, OverflowError):
        _fail(f"arrays[{key!r}] declares dtype {spec['dtype']!r}; expected a "
              "NumPy dtype string")
    if dtype.kind not in "biufU" or dtype.fields is not None or dtype.hasobject:
        _fail(f"arrays[{key!r}] declares dtype {dtype}; expected a bool, "
              "integer, float or string dtype (object arrays need pickle and "
              "are refused)")
    if dtype.itemsize == 0:
        _fail(f"arrays[{key!r}] declares dtype {dtype} of 0 bytes per item; "
              "expected a dtype with a size")
    shape = spec["shape"]
    if len(shape) > MAX_NDIM or any(n > 2**62 for n in shape):
        _fail(f"arrays[{key!r}] declares shape of {len(shape)} dimensions up "
              f"to {max(shape, default=0)}; expected at most {MAX_NDIM} "
              "dimensions of at most 2**62")
    return dtype, tuple(shape)


def _read_array(z, key, dtype, shape):
    """One array, its header checked against the metadata before its data."""
    name = f"arrays/{key}.npy"
    info = z.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        _fail(f"{name} is compressed; expected it stored as save() writes it "
              "(compressed members could expand without bound)")
    with z.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                h_shape, fortran, h_dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                h_shape, fortran, h_dtype = np.lib.format.read_array_header_2_0(f)
            else:
                _fail(f"{name} has .npy version {version}; expected 1.0 or 2.0")
        except ValueError as exc:
            if isinstance(exc, _Refused):
                raise
            _fail(f"{name} is not a valid .npy array ({exc})")
        if h_dtype != dtype or tuple(h_shape) != shape:
            _fail(f"{name} holds dtype {h_dtype} and shape {tuple(h_shape)}; "
                  f"the metadata says dtype {dtype} and shape {shape}")
        n = math.prod(shape) * dtype.itemsize     # exact: Python ints
        if info.file_size != f.tell() + n:
            _fail(f"{name} has {info.file_size} bytes; a {dtype} array of "
                  f"shape {shape} needs {f.tell() + n}")
        data = f.read(n)
        if len(data) != n or f.read(1):     # the read to the end checks the CRC
            _fail(f"{name} is truncated or has trailing bytes")
    a = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    a = np.ascontiguousarray(a).copy()
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        _fail(f"{name} holds NaN or infinite values; expected finite numbers")
    return a


_MARKERS = {"__array__", "__tuple__", "__dict__", "__float__", "__scalar__"}


def _decode(v, arrays, where):
    if v is None or isinstance(v, (bool, str, int)):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, list):
        return [_decode(x, arrays, f"{where}[{i}]") for i, x in enumerate(v)]
    if not isinstance(v, dict) or len(set(v) & _MARKERS) != 1:
        _fail(f"{where} is malformed in the metadata")
    if "__array__" in v:
        key = v["__array__"]
        if set(v) - {"__array__", "object"} or key not in arrays:
            _fail(f"{where} refers to an unknown array {key!r}")
        a = arrays[key]
        if v.get("object") is True:
            a = a.astype(object)
        elif "object" in v:
            _fail(f"{where} is malformed in the metadata")
        return a
    if "__tuple__" in v and set(v) == {"__tuple__"} and isinstance(v["__tuple__"], list):
        return tuple(_decode(x, arrays, f"{where}[{i}]")
                     for i, x in enumerate(v["__tuple__"]))
    if "__dict__" in v and set(v) == {"__dict__"} and isinstance(v["__dict__"], dict):
        return {k: _decode(x, arrays, f"{where}[{k!r}]")
                for k, x in v["__dict__"].items()}
    if "__float__" in v and set(v) == {"__float__"} and v["__float__"] in ("inf", "-inf", "nan"):
        return float(v["__float__"])
    if "__scalar__" in v and set(v) == {"__scalar__", "value"}:
        try:
            dtype = np.dtype(v["__scalar__"])
        except (TypeError, ValueError, OverflowError):
            dtype = None
        if dtype is None or dtype.kind not in "biuf":
            _fail(f"{where} declares scalar type {v['__scalar__']!r}; expected "
                  "a bool, integer or float dtype")
        val = _decode(v["value"], arrays, where)
        if not isinstance(val, (bool, int, float)):
            _fail(f"{where} holds a non-number scalar")
        return _scalar(dtype, val, where)
    _fail(f"{where} is malformed in the metadata")


def _scalar(dtype, val, where):
    """``dtype.type(val)`` when it represents ``val`` (a bool as a bool, an
    int within the integer type's range, a number as a float), else refused."""
    kind = dtype.kind
    ok = (isinstance(val, bool) if kind == "b" else
          (type(val) is int and np.iinfo(dtype).min <= val <= np.iinfo(dtype).max)
          if kind in "iu" else not isinstance(val, bool))
    if ok and kind == "f":
        try:
            out = dtype.type(val)
        except OverflowError:
            ok = False
        else:
            ok = bool(np.isfinite(out)) or not math.isfinite(float(val))
    if not ok:
        _fail(f"{where} holds {val!r}, which a {dtype} scalar cannot hold")
    return dtype.type(val)


def _read_metadata(z):
    names = z.namelist()
    if METADATA not in names:
        _fail(f"it has no {METADATA}; expected a file written by est.save()")
    info = z.getinfo(METADATA)
    if info.file_size > MAX_METADATA_BYTES:
        _fail(f"{METADATA} is {info.file_size} bytes; expected at most "
              f"{MAX_METADATA_BYTES}")
    def refuse_constant(name):
        _fail(f"{METADATA} holds {name}, which is not JSON")

    try:
        meta = json.loads(z.read(METADATA).decode("utf-8"),
                          parse_constant=refuse_constant)
    except _Refused:
        raise
    except (ValueError, RecursionError) as exc:   # JSON, UTF-8, huge ints
        _fail(f"{METADATA} is not valid JSON ({type(exc).__name__}: {exc})")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        _fail(f"{METADATA} does not describe a {FORMAT!r} file")
    version = meta.get("format_version")
    if type(version) is not int:
        _fail(f"format_version is {version!r}; expected an int")
    if version > FORMAT_VERSION:
        _fail(f"format_version is {version}, newer than this cbptt reads "
              f"({FORMAT_VERSION}); upgrade cbptt to load it")
    if version < 1:
        _fail(f"format_version is {version}; expected 1 to {FORMAT_VERSION}")
    expected = {"format", "format_version", "cbptt_version", "class", "params",
                "fitted", "arrays"}
    if set(meta) != expected:
        _fail(f"{METADATA} has keys {sorted(meta)}; expected {sorted(expected)}")
    for key in ("params", "fitted", "arrays"):
        if not isinstance(meta[key], dict):
            _fail(f"{METADATA}[{key!r}] is not an object")
    if len(meta["arrays"]) > MAX_ARRAYS:
        _fail(f"it declares {len(meta['arrays'])} arrays; expected at most "
              f"{MAX_ARRAYS}")
    wanted = {METADATA} | {f"arrays/{k}.npy" for k in meta["arrays"]}
    if len(names) != len(set(names)) or set(names) != wanted:
        extra = sorted(set(names) - wanted)
        missing = sorted(wanted - set(names))
        _fail(f"its members do not match the metadata (unexpected: {extra}, "
              f"missing: {missing}, duplicated: {len(names) != len(set(names))})")
    return meta


def load(path):
    """Load an estimator written by ``est.save(path)``.

    Nothing is unpickled and no code named by the file runs: the class comes
    from cbptt's allow-list, arrays are read with ``allow_pickle=False`` and
    each array's header is checked against the metadata before its data.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by the ``save`` method of a cbptt estimator.

    Returns
    -------
    estimator : RNNRegressor or RNNClassifier
        The estimator as it was saved (cbptt's estimators save their
        optimizer state too: a further ``partial_fit`` continues exactly as
        on the saved estimator). A file from an earlier cbptt, written
        before a parameter existed, loads with that parameter at the value
        that keeps the earlier behaviour.

    Raises
    ------
    ValueError
        If the file is not exactly a cbptt model file: not a ZIP archive,
        truncated or corrupted (CRC), a missing or unexpected member, invalid
        metadata, another format or a newer format version, a class not on
        the allow-list, parameters the class rejects, an array whose shape,
        dtype or size disagrees with the metadata, an object array (pickle),
        or non-finite weights. The message says which.
    FileNotFoundError
        If ``path`` does not exist.

    Examples
    --------
    >>> import cbptt                                        # doctest: +SKIP
    >>> est.save("model.npz")                               # doctest: +SKIP
    >>> same = cbptt.load("model.npz")                      # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.exists(path) and not os.path.islink(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    try:
        return _load(path)
    except _Refused as exc:
        raise ValueError(f"cannot load {path!r}: {exc}") from None
    except RecursionError:
        raise ValueError(f"cannot load {path!r}: its metadata is nested too "
                         "deeply; expected a file written by est.save()") from None
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError,
            NotImplementedError, RuntimeError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: a zip
        # version or compression method zipfile does not read.
        raise ValueError(f"cannot load {path!r}: the archive is truncated, "
                         f"corrupt or not as save() writes it ({exc}); "
                         "expected a file written by est.save()") from None
    except Exception as exc:
        # Anything else a hostile file could provoke (the checks above are
        # meant to catch it first): still the one documented exception.
        raise ValueError(f"cannot load {path!r}: its content is malformed "
                         f"({type(exc).__name__}: {exc}); expected a file "
                         "written by est.save()") from None


def _open_regular(path):
    """``path`` opened for reading, without blocking (a FIFO), and its size;
    anything but a regular file is refused before a byte is read."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            _fail("it is not a regular file (a directory, FIFO, socket or "
                  "device); expected a file written by est.save()")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f, st.st_size


def _check_members(z, size):
    """Every member stored (uncompressed, unencrypted) within the file's
    ``size`` bytes, so that reading one never asks for more than is there."""
    for info in z.infolist():
        if info.compress_type != zipfile.ZIP_STORED:
            _fail(f"{info.filename} is compressed; expected it stored as "
                  "save() writes it (compressed members could expand "
                  "without bound)")
        if info.flag_bits & 0x1:
            _fail(f"{info.filename} is encrypted; expected a file written "
                  "by est.save()")
        end = (info.header_offset + 30 + len(info.filename.encode("utf-8"))
               + info.compress_size)
        if info.compress_size != info.file_size or end > size:
            _fail(f"{info.filename} declares {info.file_size} bytes beyond "
                  f"what the file's {size} bytes can hold; the archive is "
                  "truncated or corrupt")


def _load(path):
    f, size = _open_regular(path)
    with f:
        return _load_from(f, size)


def _load_from(f, size):
    if not zipfile.is_zipfile(f):
        _fail("it is not a ZIP/.npz archive, or it is truncated; expected a "
              "file written by est.save() (pickles and other formats are "
              "never read)")
    f.seek(0)
    with zipfile.ZipFile(f) as z:
        _check_members(z, size)
        meta = _read_metadata(z)
        name = meta["class"]
        allowed = _allowed_classes()
        if not isinstance(name, str) or name not in allowed:
            _fail(f"class {name!r} is not one cbptt loads; expected one of "
                  f"{sorted(allowed)}")
        cls = allowed[name]
        arrays = {}
        for key, spec in meta["arrays"].items():
            dtype, shape = _check_entry(key, spec)
            arrays[key] = _read_array(z, key, dtype, shape)
    params = {k: _decode(v, arrays, f"parameter {k}")
              for k, v in meta["params"].items()}
    fitted = {k: _decode(v, arrays, f"attribute {k}")
              for k, v in meta["fitted"].items()}
    known = set(cls().get_params(deep=False))
    for k in (known - set(params)) & set(_ADDED_LATER):
        params[k] = _ADDED_LATER[k]      # saved before the parameter existed
    if set(params) != known:
        _fail(f"the parameters {sorted(set(params) ^ known)} do not match "
              f"{name}'s; expected exactly {sorted(known)}")
    extra = _persisted_names(cls)
    bad = [k for k in fitted
           if not (k.endswith("_") and not k.startswith("_")) and k not in extra]
    if bad:
        _fail(f"attributes {bad} are not fitted attributes (names ending in "
              f"'_') nor listed by {name}; refusing to set them")
    est = cls(**params)
    if hasattr(est, "_validate_params"):
        try:
            est._validate_params()
        except (ValueError, TypeError) as exc:
            _fail(f"its parameters are invalid for a {name}: {exc}")
    try:
        for k, v in fitted.items():
            setattr(est, k, v)
        rebuild = getattr(est, "_rebuild_from_fitted", None)
        if fitted and rebuild is not None:
            rebuild()
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        _fail(f"its content is inconsistent for a {name} ({type(exc).__name__}: "
              f"{exc})")
    return est
