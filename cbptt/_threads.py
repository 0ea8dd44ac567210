"""The threads the kernels use: the CPU's topology, the override, the report.

Contract: the layer driver's policy (``cbptt/_layer.pyx``) chooses each
layer's threads from its sizes, cell kind and dtype, below a limit: the
OpenMP limit (``OMP_NUM_THREADS``, ``threadpoolctl.threadpool_limits``; 1 in a
process forked after a threaded kernel) capped by :func:`set_num_threads`
(or the environment variable ``CBPTT_NUM_THREADS`` at import). Results are
bitwise identical for any thread count: the policy and the cap change the
speed only. :func:`topology` reads ``/sys/devices/system/cpu`` (logical CPUs,
cores, SMT siblings) and says "unknown" where it is absent;
:func:`show_config` prints all of it, with the threads a few layer sizes get
and why.
"""
import numbers
import os
import platform
import re
import sys
import warnings

_SYS_CPU = "/sys/devices/system/cpu"
_MAX_CAP = 2 ** 31 - 1
# The layer sizes show_config explains (B = 32 sequences of T = 100 steps).
_SHOW_CELLS = ("elman", "lstm", "gru")
_SHOW_H = (16, 64, 256)
_SHOW_B, _SHOW_T = 32, 100


def _layer():
    from cbptt import _layer
    return _layer


# ---------------------------------------------------------------------------
# Topology
# ---------------------------------------------------------------------------

def parse_cpu_list(text):
    """The CPUs of a Linux CPU list such as ``"0-3,8,10-11"``, as a set."""
    cpus = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def _read(path):
    with open(path) as fh:
        return fh.read().strip()


def topology(root=_SYS_CPU):
    """The CPU's topology, from ``root/cpu*/topology`` where present.

    Parameters
    ----------
    root : str, default "/sys/devices/system/cpu"
        The sysfs folder to read (a test passes a fake tree).

    Returns
    -------
    top : dict
        ``logical_cpus`` (CPUs with a readable topology; else
        ``os.cpu_count()``), ``cores`` (distinct (package, core) pairs),
        ``packages``, ``threads_per_core`` (the most SMT siblings of a
        core), ``smt`` (whether any core has two or more), ``affinity``
        (the CPUs this process may run on, sorted, or None where the OS
        does not say) and ``affinity_cores`` (the cores they are on).
        Without a readable tree (another OS, some containers) every field
        from it is None: unknown.
    """
    core_of, siblings = {}, {}
    try:
        names = [n for n in os.listdir(root) if re.fullmatch(r"cpu\d+", n)]
    except OSError:
        names = []
    for name in names:
        top = os.path.join(root, name, "topology")
        try:
            core = _read(os.path.join(top, "core_id"))
            package = _read(os.path.join(top, "physical_package_id"))
            sib = parse_cpu_list(_read(os.path.join(top,
                                                    "thread_siblings_list")))
        except (OSError, ValueError):
            continue               # offline or unreadable: not counted
        cpu = int(name[3:])
        core_of[cpu] = (package, core)
        siblings[cpu] = sib | {cpu}
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    if not core_of:
        return {"logical_cpus": os.cpu_count(), "cores": None,
                "packages": None, "threads_per_core": None, "smt": None,
                "affinity": affinity, "affinity_cores": None}
    per_core = max(len(s) for s in siblings.values())
    return {"logical_cpus": len(core_of),
            "cores": len(set(core_of.values())),
            "packages": len({p for p, _ in core_of.values()}),
            "threads_per_core": per_core, "smt": per_core > 1,
            "affinity": affinity,
            "affinity_cores": (None if affinity is None else
                               len({core_of[c] for c in affinity
                                    if c in core_of}))}


def on_real_cores(top):
    """Whether every CPU this process may use is a core of its own (no SMT
    sibling among them): False where the topology or the affinity is
    unknown."""
    aff = top["affinity"]
    if top["cores"] is None or aff is None or top["affinity_cores"] is None:
        return False
    return not top["smt"] or top["affinity_cores"] == len(aff)


def _plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe_topology(top):
    """One line for :func:`topology`'s dict."""
    if top["cores"] is None:
        text = (f"{_plural(top['logical_cpus'] or 0, 'logical CPU')}; cores "
                "and SMT unknown (no /sys/devices/system/cpu topology)")
    else:
        smt = (f"SMT: {top['threads_per_core']} threads per core"
               if top["smt"] else "no SMT: 1 thread per core")
        text = (f"{_plural(top['logical_cpus'], 'logical CPU')} on "
                f"{_plural(top['cores'], 'core')} in "
                f"{_plural(top['packages'], 'package')} ({smt})")
    aff = top["affinity"]
    if aff is not None:
        text += f"; this process may run on {_plural(len(aff), 'CPU')}"
        if top["affinity_cores"] is not None:
            text += f" of {_plural(top['affinity_cores'], 'core')}"
    return text


def cpu_model():
    """The CPU's model name (/proc/cpuinfo where present, else
    platform.processor(), else the machine type)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


# ---------------------------------------------------------------------------
# The override
# ---------------------------------------------------------------------------

def _valid_cap(n, where):
    """``n`` as a cap (0 for None); TypeError/ValueError naming ``where``."""
    if n is None:
        return 0
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{where}: n must be a positive integer or None, got "
                        f"{type(n).__name__}")
    if n < 1:
        raise ValueError(f"{where}: n={n}; use a positive integer (1 runs "
                         "every layer on one thread) or None for no cap")
    return min(int(n), _MAX_CAP)


def set_num_threads(n):
    """Cap the threads of every recurrent layer at ``n``.

    The kernels split a mini-batch among OpenMP threads where the layer's
    work pays for it (the policy :func:`show_config` explains). This cap
    applies on top of that policy and of the OpenMP limit, as
    ``torch.set_num_threads`` does for PyTorch: ``n = 1`` runs every layer
    on one thread; a layer then gets ``min(n, OpenMP limit)`` threads where
    the policy gives it threads at all, and one thread elsewhere. A value
    above the OpenMP limit (``OMP_NUM_THREADS``,
    ``threadpoolctl.threadpool_limits``) is capped by it: to allow more
    threads, raise that limit. Results are bitwise identical for any thread
    count.

    Parameters
    ----------
    n : int >= 1 or None
        The most threads a layer may use; None removes the cap (the
        environment variable ``CBPTT_NUM_THREADS``, read at import, sets
        the starting cap).

    Returns
    -------
    previous : int or None
        The cap before this call (None: there was none), to restore it.

    Raises
    ------
    TypeError
        If ``n`` is neither an integer nor None (a bool is refused).
    ValueError
        If ``n < 1``; the cap in use is then unchanged.

    Notes
    -----
    The cap is process-wide and read at the start of every layer call: set
    it between computations. It does not limit BLAS (which the estimators'
    output layers use): ``threadpoolctl.threadpool_limits`` limits both.

    See Also
    --------
    get_num_threads : The most threads a layer may use now.
    show_config : The threads each layer size gets, and why.

    Examples
    --------
    >>> import numpy as np
    >>> import cbptt
    >>> previous = cbptt.set_num_threads(1)
    >>> cbptt.get_num_threads()
    1
    >>> x = np.ones((2, 3, 1), np.float32)
    >>> w_ih, w_hh = np.full((4, 1), 0.5, np.float32), np.eye(4, dtype=np.float32)
    >>> cbptt.rnn_forward(x, w_ih, w_hh, np.zeros(4, np.float32)).h.shape
    (2, 3, 4)
    >>> cbptt.set_num_threads(previous)
    1
    """
    cap = _valid_cap(n, "set_num_threads")
    old = _layer()._set_num_threads(cap)
    return old or None


def get_num_threads():
    """The most threads a recurrent layer may use now.

    Returns
    -------
    n : int
        The OpenMP limit (``omp_get_max_threads()``; 1 without OpenMP and in
        a process forked after a threaded kernel), capped by
        :func:`set_num_threads`. A layer uses that many only where its work
        pays for them (see :func:`show_config`).

    See Also
    --------
    set_num_threads : Cap it.

    Examples
    --------
    >>> import cbptt
    >>> cbptt.get_num_threads() >= 1
    True
    """
    return _layer().max_layer_threads()


def check_environment():
    """At import: give the policy the topology (real cores or not, see
    :func:`on_real_cores`) and apply ``CBPTT_NUM_THREADS`` (a positive
    integer) as the starting cap of :func:`set_num_threads`; warn
    (RuntimeWarning) about a value that is not one, which is then
    ignored."""
    _layer()._set_real_cores(on_real_cores(topology()))
    value = os.environ.get("CBPTT_NUM_THREADS")
    if value is None or not value.strip():
        return
    try:
        n = int(value)
        if n < 1:
            raise ValueError
    except ValueError:
        warnings.warn(f"CBPTT_NUM_THREADS={value!r} is not a positive "
                      "integer and is ignored", RuntimeWarning, stacklevel=3)
        return
    _layer()._set_num_threads(min(n, _MAX_CAP))


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------

def _count(x):
    return f"{x:.0f}" if x < 1e7 else f"{x:.3g}"


def explain(cell, T, B, H, itemsize=4):
    """The threads a layer gets and the reason in words: a dict of
    :func:`cbptt._layer.thread_policy`'s figures plus ``reason``."""
    p = _layer().thread_policy(cell, T, B, H, itemsize)
    n = p["threads"]
    got = "one thread" if n == 1 else f"{n} threads"
    g = "" if p["G"] == 1 else "G*"
    formula = (f"per-call work T*B*{g}H*H" if p["per_call"]
               else f"per-step work B*{g}H*H")
    cores = "real cores" if p["real_cores"] else "SMT or unknown cores"
    if p["why"] == "limit":
        reason = f"the thread limit is {p['limit']}: one thread"
    elif p["why"] == "work" and p["min_work"] == float("inf"):
        reason = "no recurrent product: one thread"
    elif p["why"] == "work":
        reason = (f"{formula} = {_count(p['work'])} < "
                  f"{_count(p['min_work'])} ({cores}): one thread")
    elif p["why"] == "rows":
        reason = (f"B = {B} < 2 row chunks of {p['row_chunk']}: one thread")
    else:
        reason = (f"{formula} = {_count(p['work'])} >= "
                  f"{_count(p['min_work'])} ({cores})")
        if p["rows_cap"] and n < p["limit"]:
            reason += f", one thread per {p['row_chunk']} sequences"
        reason += f": {got}"
    p.update(cell=cell, T=T, B=B, H=H,
             dtype="float32" if itemsize == 4 else "float64", reason=reason)
    return p


def _libraries():
    """threadpoolctl's view of the loaded BLAS and OpenMP libraries."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    keys = ("user_api", "internal_api", "version", "num_threads",
            "threading_layer", "architecture", "filepath")
    return [{k: lib[k] for k in keys if k in lib}
            for lib in threadpoolctl.threadpool_info()]


def _version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:           # not installed, or no metadata
        return None


def config():
    """Everything :func:`show_config` prints, as a dict of sections."""
    import cbptt
    from cbptt import _isa
    layer = _layer()
    cap = layer._num_threads_cap()
    top = topology()
    return {
        "cbptt": {"version": cbptt.__version__,
                  "path": os.path.dirname(cbptt.__file__)},
        "dependencies": {"python": platform.python_version(),
                         **{name: _version(name) for name in (
                             "numpy", "scipy", "scikit-learn",
                             "threadpoolctl")}},
        "libraries": _libraries(),
        "isa": {"level": _isa.get_isa(),
                "cpu_best": _isa.LEVELS[_isa._cpu_level()],
                "CBPTT_ISA": os.environ.get("CBPTT_ISA")},
        "cpu": {"model": cpu_model(), "machine": platform.machine(),
                "topology": top, "summary": describe_topology(top)},
        "threads": {"openmp": layer.openmp_version(),
                    "openmp_limit": layer.openmp_limit(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "set_num_threads": cap or None,
                    "CBPTT_NUM_THREADS": os.environ.get("CBPTT_NUM_THREADS"),
                    "max_layer_threads": layer.max_layer_threads(),
                    "real_cores": on_real_cores(top),
                    "forked_child": layer.forked()},
        "layers": [explain(cell, _SHOW_T, _SHOW_B, H, itemsize)
                   for cell in _SHOW_CELLS for H in _SHOW_H
                   for itemsize in (4, 8)],
    }


def _unset(v):
    return "unset" if v is None else repr(v)


def format_config(c):
    """:func:`config`'s dict as the text :func:`show_config` prints."""
    d, isa, cpu, th = c["dependencies"], c["isa"], c["cpu"], c["threads"]
    L = [f"cbptt {c['cbptt']['version']} ({c['cbptt']['path']})", "",
         "Dependencies:"]
    L += [f"  {k:<14}{v or 'not installed'}" for k, v in d.items()]
    L += ["", "BLAS and OpenMP libraries (threadpoolctl):"]
    if c["libraries"] is None:
        L.append("  unknown (threadpoolctl not installed)")
    for lib in c["libraries"] or []:
        L.append(f"  {lib.get('user_api', '?'):<7}"
                 f"{lib.get('internal_api', '?')}"
                 + (f" {lib['version']}" if lib.get("version") else "")
                 + f", {_plural(lib.get('num_threads', 0), 'thread')}"
                 + (f", {lib['threading_layer']}"
                    if lib.get("threading_layer") else "")
                 + f": {lib.get('filepath', '?')}")
    L += ["", "Instruction set:",
          f"  in use        {isa['level']} (this CPU runs up to "
          f"{isa['cpu_best']}; CBPTT_ISA {_unset(isa['CBPTT_ISA'])}; "
          "cbptt.set_isa changes it)",
          "", "CPU:", f"  model         {cpu['model']} ({cpu['machine']})",
          f"  topology      {cpu['summary']}",
          "", "Threads:",
          "  OpenMP        " + (f"built with OpenMP {th['openmp']}"
                                if th["openmp"] else
                                "built without OpenMP: one thread"),
          f"  OpenMP limit  {th['openmp_limit']} (OMP_NUM_THREADS "
          f"{_unset(th['OMP_NUM_THREADS'])}; threadpoolctl lowers it)",
          f"  cap           {th['set_num_threads'] or 'none'} "
          "(cbptt.set_num_threads; CBPTT_NUM_THREADS "
          f"{_unset(th['CBPTT_NUM_THREADS'])})",
          "  cores         " + ("real: each CPU of this process on a core "
                                "of its own (the lower thresholds)"
                                if th["real_cores"] else
                                "SMT siblings or unknown (the higher "
                                "thresholds)"),
          f"  forked child  {'yes: every layer on one thread' if th['forked_child'] else 'no'}",
          f"  per layer     at most {th['max_layer_threads']}, where the "
          "work pays for it:",
          "", f"Layers (B = {_SHOW_B}, T = {_SHOW_T}; G = 4 LSTM gates, "
          "3 GRU gates):",
          f"  {'cell':<6}{'H':>4}  {'dtype':<8}{'threads':>7}  reason"]
    for r in c["layers"]:
        L.append(f"  {r['cell']:<6}{r['H']:>4}  {r['dtype']:<8}"
                 f"{r['threads']:>7}  {r['reason']}")
    return "\n".join(L) + "\n"


def show_config(file=None, mode="stdout"):
    """Print how cbptt runs here: versions, libraries, instruction set, CPU
    topology and the threads each layer size gets, with the reason.

    Parameters
    ----------
    file : file-like, default None
        Where to print (``sys.stdout`` for None); ignored for
        ``mode="dicts"``.
    mode : {"stdout", "dicts"}, default "stdout"
        ``"stdout"`` prints the report; ``"dicts"`` prints nothing and
        returns it as a dict of sections (as ``numpy.show_config`` does):
        ``cbptt``, ``dependencies``, ``libraries`` (threadpoolctl's BLAS and
        OpenMP entries), ``isa``, ``cpu`` (model, :func:`topology`),
        ``threads`` (the OpenMP limit, the :func:`set_num_threads` cap, the
        environment variables, whether this is a forked child) and
        ``layers`` (per cell, H and dtype at B = 32, T = 100: ``threads``
        and ``reason``).

    Returns
    -------
    config : dict or None
        The report's dict for ``mode="dicts"``, else None.

    Raises
    ------
    ValueError
        If ``mode`` is neither "stdout" nor "dicts".

    Notes
    -----
    A layer gets one thread unless its work pays for more: an Elman layer
    from a step's work ``B*H*H >= 32768`` (at most one thread per 8
    sequences), an LSTM or GRU layer from a call's work ``T*B*G*H*H >=
    2e6`` with at least 16 sequences, a CEC layer never; always at most the
    OpenMP limit and the :func:`set_num_threads` cap. Where every CPU the
    process may use is a core of its own (no SMT sibling among them, read
    from ``/sys/devices/system/cpu``), a second thread shares no core's FP
    units and an Elman layer gets threads from ``B*H*H >= 16384``. Include this report
    in a bug report or a benchmark.

    See Also
    --------
    set_num_threads : Cap the threads of every layer.
    get_isa : The instruction set in use.

    Examples
    --------
    >>> import io
    >>> import cbptt
    >>> out = io.StringIO()
    >>> cbptt.show_config(file=out)
    >>> "Threads:" in out.getvalue()
    True
    >>> c = cbptt.show_config(mode="dicts")
    >>> sorted(c)
    ['cbptt', 'cpu', 'dependencies', 'isa', 'layers', 'libraries', 'threads']
    >>> row = c["layers"][0]
    >>> (row["cell"], row["H"], row["dtype"], row["threads"])
    ('elman', 16, 'float32', 1)
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"show_config: mode={mode!r}; use 'stdout' or "
                         "'dicts'")
    c = config()
    if mode == "dicts":
        return c
    print(format_config(c), end="", file=sys.stdout if file is None else file)
    return None
