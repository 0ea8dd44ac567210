"""The instruction set the compiled kernels run: query it, force it.

Contract: the kernels of ``src/cbptt_simd.h``, ``cbptt_lstm.h`` and
``cbptt_scan.h`` are compiled for three levels on x86-64 (``"baseline"``,
``"avx2"`` = AVX2 + FMA, ``"avx512"`` = AVX-512 F/DQ/BW/VL) and dispatched at
run time (``src/cbptt_isa.h``); elsewhere only ``"baseline"`` exists (NEON on
aarch64). Each compiled module holds its own copy of the level, so
:func:`set_isa` sets every one of them (``_DISPATCHED``) and checks that they
all took it; :func:`get_isa` reports the level they share. The environment
variable ``CBPTT_ISA`` (a level's name, or 0/1/2) lowers the starting level;
:func:`check_environment` warns at import about a value that does nothing.
"""
import importlib
import os
import warnings

LEVELS = ("baseline", "avx2", "avx512")
# The compiled modules whose kernels are dispatched by instruction set.
_DISPATCHED = ("_elman", "_lstm", "_scan")
_SPELLINGS = {name: k for k, name in enumerate(LEVELS)}
_SPELLINGS.update({str(k): k for k in range(len(LEVELS))})
_NEEDS = {"avx2": "AVX2 and FMA", "avx512": "AVX-512 (F, DQ, BW and VL)"}


def _modules():
    return [importlib.import_module(f"cbptt.{name}") for name in _DISPATCHED]


def _cpu_level():
    """The best level this CPU runs (0, 1, 2), whatever CBPTT_ISA says."""
    return importlib.import_module("cbptt._scan").cpu_simd_level()


def _module_levels():
    """``{module name: level name}`` for every dispatched module."""
    return {name: LEVELS[mod.simd_level()]
            for name, mod in zip(_DISPATCHED, _modules())}


def get_isa():
    """The instruction set the compiled kernels use.

    Returns
    -------
    level : str
        ``"avx512"`` (AVX-512 F/DQ/BW/VL), ``"avx2"`` (AVX2 + FMA) or
        ``"baseline"`` (the compiler's default target: SSE2 on x86-64, NEON
        on aarch64). At import it is the best level the CPU runs, lowered by
        the environment variable ``CBPTT_ISA``; :func:`set_isa` changes it.

    See Also
    --------
    set_isa : Force a level, e.g. to test or time another code path.

    Examples
    --------
    >>> import cbptt
    >>> cbptt.get_isa() in ("avx512", "avx2", "baseline")
    True
    """
    levels = set(_module_levels().values())
    if len(levels) != 1:
        raise RuntimeError(
            "get_isa: the compiled modules run different instruction sets "
            f"({_module_levels()}); call cbptt.set_isa(level) to set them "
            "all to one")
    return levels.pop()


def set_isa(level):
    """Run the compiled kernels at the instruction set ``level``.

    Every kernel of every compiled module switches together: the Elman and
    LSTM layer kernels, their per-step products and activations, and the
    input scans. A developer on an AVX-512 machine can so test and time the
    AVX2 and baseline paths; results differ between levels only by
    rounding (the baseline has no fused multiply-add on x86-64), never
    between runs at one level.

    Parameters
    ----------
    level : {"avx512", "avx2", "baseline"} or None
        The level to use (case-insensitive); None = the best level this CPU
        runs (the environment variable ``CBPTT_ISA``, which sets the level
        at import, is then overridden).

    Returns
    -------
    used : str
        The level in use from now on (``level`` itself, or the CPU's best
        for None).

    Raises
    ------
    TypeError
        If ``level`` is neither a string nor None.
    ValueError
        If ``level`` names no level, or this CPU cannot run it (e.g.
        ``"avx512"`` on a CPU without AVX-512, or ``"avx2"`` off x86-64);
        the level in use is then unchanged.

    Notes
    -----
    Call it between computations, not while another thread runs a kernel:
    the kernels pack weights in a layout that depends on the level. The
    estimators and the functional API pack per call, so a model fitted at
    one level predicts at another.

    See Also
    --------
    get_isa : The level in use.

    Examples
    --------
    >>> import numpy as np
    >>> import cbptt
    >>> before = cbptt.get_isa()
    >>> cbptt.set_isa("baseline")
    'baseline'
    >>> x = np.ones((2, 3, 1), np.float32)
    >>> w_ih, w_hh = np.full((4, 1), 0.5, np.float32), np.eye(4, dtype=np.float32)
    >>> cbptt.rnn_forward(x, w_ih, w_hh, np.zeros(4, np.float32)).h.shape
    (2, 3, 4)
    >>> cbptt.set_isa(None) in ("avx512", "avx2", "baseline")  # the CPU's best
    True
    >>> cbptt.set_isa(before) == before
    True
    """
    best = _cpu_level()
    if level is None:
        wanted = best
    elif not isinstance(level, str):
        raise TypeError("set_isa: level must be a string ('avx512', 'avx2' "
                        f"or 'baseline') or None, got {type(level).__name__}")
    else:
        wanted = _SPELLINGS.get(level.lower())
        if wanted is None or level.isdigit():
            raise ValueError(f"set_isa: unknown level {level!r}; use one of "
                             "'avx512', 'avx2', 'baseline', or None for the "
                             "best this CPU runs")
        if wanted > best:
            runs = ", ".join(repr(n) for n in LEVELS[:best + 1])
            raise ValueError(f"set_isa: this CPU cannot run {level!r} (it "
                             f"needs {_NEEDS[LEVELS[wanted]]}); it runs {runs}")
    for name, mod in zip(_DISPATCHED, _modules()):
        used = mod._limit_simd_level(wanted)
        if used != wanted:   # cannot happen: every module sees the same CPU
            raise RuntimeError(f"set_isa: cbptt.{name} took level {used} "
                               f"for {wanted}")
    return LEVELS[wanted]


def check_environment():
    """Warn (RuntimeWarning) when ``CBPTT_ISA`` is set to a value that does
    nothing: not a level's name or number, or a level above the CPU's best
    (the variable can only lower the level)."""
    value = os.environ.get("CBPTT_ISA")
    if value is None:
        return
    wanted = _SPELLINGS.get(value)
    if wanted is None:
        warnings.warn(f"CBPTT_ISA={value!r} names no instruction set and is "
                      "ignored; use avx512, avx2 or baseline (or 2, 1, 0)",
                      RuntimeWarning, stacklevel=3)
    elif wanted > _cpu_level():
        warnings.warn(f"CBPTT_ISA={value!r}: this CPU cannot run it; the "
                      f"kernels use {LEVELS[_cpu_level()]!r}", RuntimeWarning,
                      stacklevel=3)
