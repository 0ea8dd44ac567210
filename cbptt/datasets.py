"""Sequence datasets for BPTT: the classic long-time-lag tasks, sine waves, text.

Contract
--------
* Every generator is deterministic given ``random_state`` (an int, a
  ``numpy.random.RandomState`` or None, as in scikit-learn) and returns
  ``X, y`` in the estimators' conventions:

  - ``X`` has shape ``(n_samples, n_timesteps, n_features)``, batch-first,
    float64;
  - ``output="last"`` targets have shape ``(n_samples,)``;
    ``output="sequence"`` targets have shape ``(n_samples, n_timesteps)``
    (one target per step) or ``(n_samples, n_timesteps, n_outputs)``;
  - variable-length tasks pad every sequence to the longest one with
    trailing NaN (in ``X`` and in per-step targets), or return lists of
    per-sequence arrays with ``as_list=True``.

* Symbols are one-hot ("local") vectors; class labels are small ints whose
  meaning each docstring states.
* Nothing is downloaded and no corpus is shipped: :func:`load_text` gathers
  English prose from the docstrings of Python's own standard library at call
  time, or reads a file the user names.
"""
import ast
import inspect
import numbers
import pathlib
import sysconfig

import numpy as np
from sklearn.utils import check_random_state

__all__ = [
    "REBER_SYMBOLS", "TEMPORAL_ORDER_SYMBOLS", "CharCodec",
    "make_adding_problem", "make_embedded_reber", "embedded_reber_next",
    "score_embedded_reber", "make_temporal_order", "make_long_lag",
    "make_sine", "load_text",
]


# ---------------------------------------------------------------------------
# Parameter checks and padding
# ---------------------------------------------------------------------------

def _check_int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} has type {type(value).__name__}; "
                        f"expected an int >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}={value}; expected an int >= {minimum}")
    return int(value)


def _check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; expected one of "
                         f"{sorted(choices)}")
    return value


def _check_real(name, value, low=-np.inf, high=np.inf):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} has type {type(value).__name__}; "
                        "expected a real number")
    if not (low <= value <= high) or not np.isfinite(value):
        raise ValueError(f"{name}={value}; expected a finite number in "
                         f"[{low}, {high}]")
    return float(value)


def _check_range(name, value, low=-np.inf, high=np.inf):
    try:
        a, b = value
    except (TypeError, ValueError):
        raise TypeError(f"{name}={value!r}; expected a pair (low, high)") from None
    a = _check_real(f"{name}[0]", a, low, high)
    b = _check_real(f"{name}[1]", b, low, high)
    if a > b:
        raise ValueError(f"{name}={value!r}; expected low <= high")
    return a, b


def _pad(seqs, as_list):
    """Per-sequence arrays ``(T_i, ...)`` as a list or as one NaN-padded array."""
    seqs = [np.asarray(s, dtype=np.float64) for s in seqs]
    if as_list:
        return seqs
    t_max = max(s.shape[0] for s in seqs)
    out = np.full((len(seqs), t_max) + seqs[0].shape[1:], np.nan)
    for i, s in enumerate(seqs):
        out[i, :s.shape[0]] = s
    return out


def _one_hot(indices, n):
    out = np.zeros((len(indices), n))
    out[np.arange(len(indices)), indices] = 1.0
    return out


def _lengths(X):
    """Each sequence's length: its rows up to the first all-NaN one."""
    if isinstance(X, (list, tuple)):
        return np.array([np.asarray(s).shape[0] for s in X])
    X = np.asarray(X, dtype=np.float64)
    finite = ~np.isnan(X).all(axis=tuple(range(2, X.ndim)))
    return np.where(finite.all(axis=1), X.shape[1], np.argmin(finite, axis=1))


# ---------------------------------------------------------------------------
# The adding problem
# ---------------------------------------------------------------------------

def make_adding_problem(n_samples=1000, n_timesteps=100, *, version="1997",
                        variable_length=None, as_list=False, random_state=None):
    """The adding problem: remember two marked numbers and output their sum.

    Every step carries a pair (value, marker). Two pairs are marked with 1.0;
    the target, given only after the last step, depends on their values X1
    and X2. A network must carry both values over up to ``n_timesteps``
    steps of distracting input.

    ``version="1997"`` is Experiment 4 of Hochreiter & Schmidhuber (1997):

    * values uniform in [-1, 1]; the sequence length is a random integer in
      [T, T + T // 10] (``T = n_timesteps``);
    * X1 is one of the first ten pairs, chosen at random; X2 is one of the
      first T // 2 - 1 pairs that are still unmarked;
    * the markers of all other pairs are 0.0 except the first and the last
      pair's, which are -1.0; when the first pair is marked, its marker is
      1.0 and its value (X1 in the paper) is set to 0;
    * the target is ``0.5 + (X1 + X2) / 4`` (the sum scaled into [0, 1]); a
      sequence counts as solved when the absolute error is below 0.04.

    ``version="simple"`` is the form used since Le et al. (2015) and
    Arjovsky et al. (2016): values uniform in [0, 1], fixed length T, one
    marker (1.0) in the first half and one in the second half, all other
    markers 0.0, and the target is the plain sum ``X1 + X2``.

    Always predicting the mean target gives a mean squared error of about
    1/24 = 0.0417 for "1997" (the target's variance) and 1/6 = 0.167 for
    "simple": the trivial baseline a network has to beat.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sequences.
    n_timesteps : int, default=100
        T: the (minimal) sequence length; at least 20 for "1997" (the first
        marker is among the first ten steps), at least 2 for "simple".
    version : {"1997", "simple"}, default="1997"
        Which form of the task, as described above.
    variable_length : bool or None, default=None
        Lengths drawn from [T, T + T // 10]. None means True for "1997"
        (as in the paper) and False for "simple".
    as_list : bool, default=False
        Return ``X`` as a list of ``(T_i, 2)`` arrays instead of one
        NaN-padded array.
    random_state : int, RandomState instance or None, default=None
        Seed of the generator.

    Returns
    -------
    X : ndarray of shape (n_samples, n_timesteps_max, 2) or list of ndarray
        Pairs (value, marker), trailing-NaN padded when lengths vary.
    y : ndarray of shape (n_samples,)
        The target at each sequence's last step.

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long short-term memory",
       Neural Computation 9(8):1735-1780, 1997, Section 5.4 (Experiment 4).
    .. [2] Q. V. Le, N. Jaitly and G. E. Hinton, "A simple way to initialize
       recurrent networks of rectified linear units", arXiv:1504.00941, 2015.
    .. [3] M. Arjovsky, A. Shah and Y. Bengio, "Unitary evolution recurrent
       neural networks", ICML 2016.

    Examples
    --------
    >>> from cbptt.datasets import make_adding_problem
    >>> X, y = make_adding_problem(4, 30, random_state=0)
    >>> X.shape[0], X.shape[2], y.shape
    (4, 2, (4,))
    >>> X, y = make_adding_problem(4, 30, version="simple", random_state=0)
    >>> X.shape
    (4, 30, 2)
    """
    n_samples = _check_int("n_samples", n_samples, 1)
    version = _check_choice("version", version, {"1997", "simple"})
    T = _check_int("n_timesteps", n_timesteps, 20 if version == "1997" else 2)
    if variable_length is None:
        variable_length = version == "1997"
    rng = check_random_state(random_state)
    seqs, y = [], np.empty(n_samples)
    for n in range(n_samples):
        length = rng.randint(T, T + T // 10 + 1) if variable_length else T
        x = np.zeros((length, 2))
        if version == "1997":
            x[:, 0] = rng.uniform(-1.0, 1.0, length)
            x[0, 1] = x[-1, 1] = -1.0
            first = rng.randint(10)
            unmarked = [t for t in range(T // 2) if t != first][:T // 2 - 1]
            second = unmarked[rng.randint(len(unmarked))]
            x[[first, second], 1] = 1.0
            if 0 in (first, second):
                x[0, 0] = 0.0
            y[n] = 0.5 + (x[first, 0] + x[second, 0]) / 4.0
        else:
            x[:, 0] = rng.uniform(0.0, 1.0, length)
            half = length // 2
            first, second = rng.randint(half), rng.randint(half, length)
            x[[first, second], 1] = 1.0
            y[n] = x[first, 0] + x[second, 0]
        seqs.append(x)
    return _pad(seqs, as_list), y


# ---------------------------------------------------------------------------
# The embedded Reber grammar
# ---------------------------------------------------------------------------

REBER_SYMBOLS = "BTPSXVE"
"""The symbols of the (embedded) Reber grammar; a symbol's index is its
position here (the one-hot feature and the class label)."""

# Reber's finite-state grammar: state -> ((symbol, next state), ...), each
# branch taken with probability 1/2. State 0 emits B; state 6 emits E.
_REBER = {
    0: (("B", 1),),
    1: (("T", 2), ("P", 3)),
    2: (("S", 2), ("X", 4)),
    3: (("T", 3), ("V", 5)),
    4: (("X", 3), ("S", 6)),
    5: (("P", 4), ("V", 6)),
    6: (("E", None),),
}


def _reber_string(rng):
    state, out = 0, []
    while state is not None:
        branches = _REBER[state]
        symbol, state = branches[rng.randint(len(branches))]
        out.append(symbol)
    return "".join(out)


def _embedded_reber_string(rng):
    branch = "TP"[rng.randint(2)]
    return "B" + branch + _reber_string(rng) + branch + "E"


def _embedded_reber_possible(string):
    """For each prefix ``string[:t+1]``, the set of symbols that may follow.

    The embedded grammar is deterministic (each state has at most one branch
    per symbol), so the state after any prefix is unique. Raises ValueError
    when ``string`` leaves the grammar.
    """
    def fail(t):
        raise ValueError(f"{string!r} is not an embedded Reber string: "
                         f"symbol {t} ({string[t]!r}) is not allowed there")

    if len(string) < 2 or string[0] != "B" or string[1] not in "TP":
        fail(0 if not string or string[0] != "B" else 1)
    branch = string[1]
    possible = [{"T", "P"}, {"B"}]
    state = 0                  # state of the inner grammar, None once done
    t = 2
    while state is not None:
        if t >= len(string):
            raise ValueError(f"{string!r} is not an embedded Reber string: "
                             "it ends inside the embedded Reber string")
        nxt = dict(_REBER[state])
        if string[t] not in nxt:
            fail(t)
        state = nxt[string[t]]
        possible.append({s for s, _ in _REBER[state]} if state is not None
                        else {branch})
        t += 1
    for k, expected in enumerate(branch + "E"):
        if t + k >= len(string):
            raise ValueError(f"{string!r} is not an embedded Reber string: "
                             f"it ends before the closing {branch}E")
        if string[t + k] != expected:
            fail(t + k)
    if len(string) > t + 2:
        fail(t + 2)
    possible.append({"E"})
    possible.append(set())     # nothing follows the final E
    return possible


def embedded_reber_next(X):
    """The symbols that may follow each prefix of embedded Reber strings.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_timesteps, 7) or list of ndarray
        One-hot inputs as made by :func:`make_embedded_reber` (a string
        without its final E), NaN-padded or as a list of ``(T_i, 7)`` arrays.

    Returns
    -------
    possible : ndarray of shape (n_samples, n_timesteps, 7)
        ``possible[n, t, k]`` is 1.0 when symbol ``REBER_SYMBOLS[k]`` may
        follow the first t + 1 symbols of sequence n, else 0.0; NaN on
        padded steps.

    Raises
    ------
    ValueError
        If a row is not one-hot or a sequence leaves the grammar.

    Examples
    --------
    >>> from cbptt.datasets import make_embedded_reber, embedded_reber_next
    >>> X, y = make_embedded_reber(3, random_state=0)
    >>> embedded_reber_next(X)[0, 0]       # after B: T or P
    array([0., 1., 1., 0., 0., 0., 0.])
    """
    strings = _decode_reber(X)
    out = []
    for s in strings:
        sets = _embedded_reber_possible(s + "E")[:len(s)]
        out.append([[float(c in p) for c in REBER_SYMBOLS] for p in sets])
    return _pad(out, isinstance(X, (list, tuple)))


def _decode_reber(X):
    lengths = _lengths(X)
    strings = []
    for n, length in enumerate(lengths):
        x = np.asarray(X[n], dtype=np.float64)[:length]
        if x.ndim != 2 or x.shape[1] != len(REBER_SYMBOLS):
            raise ValueError(f"X[{n}] has shape {x.shape}; expected "
                             f"(n_timesteps, {len(REBER_SYMBOLS)})")
        ok = np.all((x == 0) | (x == 1), axis=1) & (x.sum(axis=1) == 1)
        if not ok.all():
            raise ValueError(f"X[{n}] step {int(np.argmin(ok))} is not a "
                             "one-hot row; expected one 1.0 and zeros")
        strings.append("".join(REBER_SYMBOLS[i] for i in x.argmax(axis=1)))
    return strings


def make_embedded_reber(n_samples=1000, *, target="next", as_list=False,
                        random_state=None):
    """Strings of the embedded Reber grammar, for next-symbol prediction.

    A Reber string (Reber 1967; as used by Cleeremans et al. 1989) is
    generated by a small finite-state grammar over B, T, P, S, X, V, E,
    taking each of two branches with probability 1/2. An embedded Reber
    string is ``B T <reber> T E`` or ``B P <reber> P E``: the symbol after
    the inner string must repeat the second symbol, so predicting it needs a
    memory over the whole inner string (Experiment 1 of Hochreiter &
    Schmidhuber 1997).

    The input at step t is symbol t, one-hot over :data:`REBER_SYMBOLS`; the
    target is what comes next. A string of length L gives L - 1 steps.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of strings.
    target : {"next", "possible"}, default="next"
        "next": the index of the symbol that actually follows, for a
        classifier with ``output="sequence"`` trained by cross-entropy.
        "possible": the 0/1 vector of every symbol that may follow (the
        targets of the 1997 paper, for a regressor).
    as_list : bool, default=False
        Return lists of per-string arrays instead of NaN-padded arrays.
    random_state : int, RandomState instance or None, default=None
        Seed of the generator.

    Returns
    -------
    X : ndarray of shape (n_samples, n_timesteps_max, 7) or list of ndarray
        One-hot symbols, trailing-NaN padded.
    y : ndarray of shape (n_samples, n_timesteps_max) or (n_samples, n_timesteps_max, 7)
        For "next", the next symbol's index (a float array so that padding
        can be NaN; ``REBER_SYMBOLS[int(y)]`` is the symbol); for
        "possible", the 0/1 vectors. Lists with ``as_list=True``.

    See Also
    --------
    score_embedded_reber : the share of strings predicted entirely right.
    embedded_reber_next : the possible next symbols of given inputs.

    References
    ----------
    .. [1] A. S. Reber, "Implicit learning of artificial grammars", Journal
       of Verbal Learning and Verbal Behavior 6(6):855-863, 1967.
    .. [2] A. Cleeremans, D. Servan-Schreiber and J. L. McClelland, "Finite
       state automata and simple recurrent networks", Neural Computation
       1(3):372-381, 1989.
    .. [3] S. Hochreiter and J. Schmidhuber, "Long short-term memory",
       Neural Computation 9(8):1735-1780, 1997, Section 5.1.

    Examples
    --------
    >>> from cbptt.datasets import make_embedded_reber, REBER_SYMBOLS
    >>> X, y = make_embedded_reber(2, as_list=True, random_state=1)
    >>> s = "".join(REBER_SYMBOLS[i] for i in X[0].argmax(1))
    >>> s[:3], s[-1] in "TP", REBER_SYMBOLS[int(y[0][-1])]
    ('BPB', True, 'E')
    """
    n_samples = _check_int("n_samples", n_samples, 1)
    target = _check_choice("target", target, {"next", "possible"})
    rng = check_random_state(random_state)
    index = {c: i for i, c in enumerate(REBER_SYMBOLS)}
    xs, ys = [], []
    for _ in range(n_samples):
        s = [index[c] for c in _embedded_reber_string(rng)]
        xs.append(_one_hot(s[:-1], len(REBER_SYMBOLS)))
        if target == "next":
            ys.append(np.array(s[1:], dtype=np.float64))
        else:
            sets = _embedded_reber_possible(
                "".join(REBER_SYMBOLS[i] for i in s))[:-1]
            ys.append([[float(c in p) for c in REBER_SYMBOLS] for p in sets])
    return _pad(xs, as_list), _pad(ys, as_list)


def score_embedded_reber(X, outputs, *, classes=None, return_steps=False):
    """Share of embedded Reber strings whose every next symbol is predicted.

    A step is right when the outputs of the symbols that may come next are
    all larger than every other output: with k possible next symbols, the k
    most active outputs are exactly those (the criterion of Hochreiter &
    Schmidhuber 1997). A string is right when all of its steps are.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_timesteps, 7) or list of ndarray
        The one-hot inputs (as made by :func:`make_embedded_reber`).
    outputs : ndarray of shape (n_samples, n_timesteps, n_columns) or list of ndarray
        A score per symbol and step, e.g. ``predict_proba`` of a classifier
        with ``output="sequence"``; padded steps are ignored.
    classes : array-like of int, default=None
        The symbol index of each column of ``outputs`` (a classifier's
        ``classes_``, which lacks any symbol it never saw as a target).
        None means columns 0..6 are the symbols in :data:`REBER_SYMBOLS`
        order. A symbol without a column counts as never predicted.
    return_steps : bool, default=False
        Also return the share of right steps.

    Returns
    -------
    string_accuracy : float
        The share of strings predicted right at every step.
    step_accuracy : float
        Only with ``return_steps=True``: the share of right steps.

    Raises
    ------
    ValueError
        On mismatched shapes, bad ``classes`` or inputs outside the grammar.

    Examples
    --------
    >>> from cbptt.datasets import (make_embedded_reber, embedded_reber_next,
    ...                             score_embedded_reber)
    >>> X, y = make_embedded_reber(5, random_state=0)
    >>> score_embedded_reber(X, embedded_reber_next(X))   # a perfect predictor
    1.0
    """
    possible = embedded_reber_next(X)
    lengths = _lengths(X)
    n_symbols = len(REBER_SYMBOLS)
    if classes is None:
        classes = np.arange(n_symbols)
    classes = np.asarray(classes)
    if (classes.ndim != 1 or classes.dtype.kind not in "iuf"
            or not np.all(np.isin(classes, np.arange(n_symbols)))
            or len(np.unique(classes)) != len(classes)):
        raise ValueError(f"classes={classes!r}; expected distinct symbol "
                         f"indices in 0..{n_symbols - 1}")
    classes = classes.astype(int)
    if isinstance(outputs, (list, tuple)) != isinstance(X, (list, tuple)):
        raise TypeError("outputs and X must both be arrays or both be lists")
    if len(outputs) != len(lengths):
        raise ValueError(f"outputs has {len(outputs)} sequences; X has "
                         f"{len(lengths)}")
    n_right, n_steps, n_strings = 0, 0, 0
    for n, length in enumerate(lengths):
        out = np.asarray(outputs[n], dtype=np.float64)
        if out.ndim != 2 or out.shape[0] < length or out.shape[1] != len(classes):
            raise ValueError(f"outputs[{n}] has shape {out.shape}; expected "
                             f"({length}, {len(classes)}) or more steps")
        scores = np.full((length, n_symbols), -np.inf)
        scores[:, classes] = out[:length]
        if np.isnan(scores).any():
            raise ValueError(f"outputs[{n}] has NaN within the sequence's "
                             f"{length} steps")
        mask = np.asarray(possible[n][:length]) == 1.0
        low = np.where(mask, scores, np.inf).min(axis=1)
        high = np.where(mask, -np.inf, scores).max(axis=1)
        right = low > high
        n_right += int(right.sum())
        n_steps += length
        n_strings += bool(right.all())
    string_accuracy = n_strings / len(lengths)
    if return_steps:
        return string_accuracy, n_right / n_steps
    return string_accuracy


# ---------------------------------------------------------------------------
# Temporal order and long time lags without noise
# ---------------------------------------------------------------------------

TEMPORAL_ORDER_SYMBOLS = "abcdXYEB"
"""Symbols of :func:`make_temporal_order`: distractors a-d, the relevant X
and Y, the start symbol E and the trigger B."""


def make_temporal_order(n_samples=1000, n_timesteps=100, *, n_relevant=2,
                        as_list=False, random_state=None):
    """The temporal order problem: classify by the order of distant symbols.

    Experiment 6 of Hochreiter & Schmidhuber (1997). A sequence starts with
    E, ends with the trigger B, and otherwise holds random distractors from
    {a, b, c, d}, except at ``n_relevant`` positions holding X or Y. The
    class is the order of those: with two, XX, XY, YX, YY are classes 0-3
    (the paper's Q, R, S, U); with three, XXX ... YYY are classes 0-7 (read
    as a binary number with X = 0, Y = 1, first symbol most significant).

    With ``T = n_timesteps``, the length is random in [T, T + T // 10]; the
    relevant positions are random in [T/10, T/5] and [T/2, T/2 + T/10] for
    two (the paper's 10-20 and 50-60 at T = 100), and [T/10, T/5],
    [T/3, T/3 + T/10], [2T/3, 2T/3 + T/10] for three (10-20, 33-43, 66-76).

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sequences.
    n_timesteps : int, default=100
        T, the minimal length; at least 20.
    n_relevant : {2, 3}, default=2
        Number of X/Y symbols (Experiment 6a or 6b).
    as_list : bool, default=False
        Return ``X`` as a list of ``(T_i, 8)`` arrays.
    random_state : int, RandomState instance or None, default=None
        Seed of the generator.

    Returns
    -------
    X : ndarray of shape (n_samples, n_timesteps_max, 8) or list of ndarray
        One-hot symbols over :data:`TEMPORAL_ORDER_SYMBOLS`, trailing-NaN
        padded.
    y : ndarray of shape (n_samples,), dtype int
        The class, 0 .. 2**n_relevant - 1.

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long short-term memory",
       Neural Computation 9(8):1735-1780, 1997, Section 5.6.

    Examples
    --------
    >>> from cbptt.datasets import make_temporal_order
    >>> X, y = make_temporal_order(6, 40, random_state=0)
    >>> X.shape[2], sorted(set(y)) <= [0, 1, 2, 3]
    (8, True)
    """
    n_samples = _check_int("n_samples", n_samples, 1)
    T = _check_int("n_timesteps", n_timesteps, 20)
    if n_relevant not in (2, 3) or isinstance(n_relevant, bool):
        raise ValueError(f"n_relevant={n_relevant!r}; expected 2 or 3")
    rng = check_random_state(random_state)
    width = T // 10
    starts = ([T // 10, T // 2] if n_relevant == 2
              else [T // 10, T // 3, (2 * T) // 3])
    ends = [T // 5] + [s + width for s in starts[1:]]
    xs, y = [], np.empty(n_samples, dtype=int)
    for n in range(n_samples):
        length = rng.randint(T, T + width + 1)
        s = rng.randint(4, size=length)            # distractors a-d
        s[0], s[-1] = 6, 7                          # E ... B
        label = 0
        for lo, hi in zip(starts, ends):
            bit = rng.randint(2)
            s[rng.randint(lo, hi + 1)] = 4 + bit    # X or Y
            label = 2 * label + bit
        y[n] = label
        xs.append(_one_hot(s, len(TEMPORAL_ORDER_SYMBOLS)))
    return _pad(xs, as_list), y


def make_long_lag(n_samples=1000, n_timesteps=100, *, random_middle=False,
                  output="last", random_state=None):
    """Noise-free sequences whose first symbol must be remembered p steps.

    Experiment 2 of Hochreiter & Schmidhuber (1997). With ``p = n_timesteps``
    there are p + 1 symbols: x (index 0), y (index 1) and a_1 .. a_{p-1}
    (indices 2 .. p). A sequence is ``(x, a_1, ..., a_{p-1}, x)`` or
    ``(y, a_1, ..., a_{p-1}, y)`` with probability 1/2 each: its last symbol
    repeats its first, p steps earlier. With ``random_middle=True`` the
    middle symbols are drawn at random from a_1 .. a_{p-1} (the paper's
    variant without local regularities, 2b).

    The network sees the first p symbols, one-hot, and predicts what comes
    next.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sequences.
    n_timesteps : int, default=100
        p, the time lag and the number of input steps; at least 2.
    random_middle : bool, default=False
        Draw the middle symbols at random instead of a_1 .. a_{p-1} in order.
    output : {"last", "sequence"}, default="last"
        "last": only the final symbol (0 for x, 1 for y) is the target, the
        one that needs the memory. "sequence": the next symbol's index at
        every step.
    random_state : int, RandomState instance or None, default=None
        Seed of the generator.

    Returns
    -------
    X : ndarray of shape (n_samples, p, p + 1)
        One-hot symbols.
    y : ndarray of shape (n_samples,) or (n_samples, p), dtype int
        The index of the symbol that follows (0 or 1 for "last").

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long short-term memory",
       Neural Computation 9(8):1735-1780, 1997, Section 5.2.

    Examples
    --------
    >>> from cbptt.datasets import make_long_lag
    >>> X, y = make_long_lag(4, 10, random_state=0)
    >>> X.shape, y.shape, bool((X[:, 0, :2].argmax(1) == y).all())
    ((4, 10, 11), (4,), True)
    """
    n_samples = _check_int("n_samples", n_samples, 1)
    p = _check_int("n_timesteps", n_timesteps, 2)
    output = _check_choice("output", output, {"last", "sequence"})
    rng = check_random_state(random_state)
    seqs = np.empty((n_samples, p + 1), dtype=int)
    seqs[:, 0] = rng.randint(2, size=n_samples)
    seqs[:, -1] = seqs[:, 0]
    if random_middle:
        seqs[:, 1:-1] = rng.randint(2, p + 1, size=(n_samples, p - 1))
    else:
        seqs[:, 1:-1] = np.arange(2, p + 1)
    X = np.zeros((n_samples, p, p + 1))
    np.put_along_axis(X, seqs[:, :-1, None], 1.0, axis=2)
    y = seqs[:, -1] if output == "last" else seqs[:, 1:]
    return X, y


# ---------------------------------------------------------------------------
# Sine waves
# ---------------------------------------------------------------------------

def make_sine(n_samples=1000, n_timesteps=50, *, output="sequence",
              frequency=(0.05, 0.3), noise=0.0, random_state=None):
    """Sine waves of random frequency and phase, for next-value prediction.

    Sequence n is ``s_n(t) = sin(omega_n t + phi_n)`` with ``omega_n``
    uniform in ``frequency`` (radians per step) and ``phi_n`` uniform in
    [0, 2 pi). The input is ``s_n(t) + noise * N(0, 1)`` for t = 0..T-1;
    the target is the clean next value.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of sequences.
    n_timesteps : int, default=50
        T, the number of input steps.
    output : {"sequence", "last"}, default="sequence"
        "sequence": ``y[n, t] = s_n(t + 1)`` for every step. "last": only
        ``y[n] = s_n(T)``.
    frequency : (float, float), default=(0.05, 0.3)
        Range of the angular frequency, radians per step.
    noise : float, default=0.0
        Standard deviation of Gaussian noise added to the inputs only.
    random_state : int, RandomState instance or None, default=None
        Seed of the generator.

    Returns
    -------
    X : ndarray of shape (n_samples, n_timesteps, 1)
    y : ndarray of shape (n_samples, n_timesteps) or (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt.datasets import make_sine
    >>> X, y = make_sine(3, 20, random_state=0)
    >>> X.shape, y.shape, bool(np.allclose(X[:, 1:, 0], y[:, :-1]))
    ((3, 20, 1), (3, 20), True)
    """
    n_samples = _check_int("n_samples", n_samples, 1)
    T = _check_int("n_timesteps", n_timesteps, 1)
    output = _check_choice("output", output, {"last", "sequence"})
    lo, hi = _check_range("frequency", frequency, 0.0)
    noise = _check_real("noise", noise, 0.0)
    rng = check_random_state(random_state)
    omega = rng.uniform(lo, hi, (n_samples, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (n_samples, 1))
    s = np.sin(omega * np.arange(T + 1) + phase)
    X = s[:, :-1, None].copy()
    if noise > 0:
        X += noise * rng.standard_normal(X.shape)
    y = s[:, 1:] if output == "sequence" else s[:, -1]
    return X, y


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------

# Standard-library modules whose docstrings are mostly English prose.
_DOC_MODULES = (
    "argparse", "base64", "bisect", "calendar", "cmd", "codecs", "collections",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime",
    "difflib", "doctest", "email.message", "enum", "filecmp", "fnmatch",
    "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip",
    "hashlib", "heapq", "hmac", "imaplib", "inspect", "ipaddress",
    "json", "logging", "mailbox", "mimetypes", "netrc", "numbers",
    "optparse", "os", "pathlib", "pdb", "pickle", "pprint", "queue",
    "random", "re", "sched", "secrets", "selectors", "shelve", "shlex",
    "shutil", "smtplib", "socket", "socketserver", "statistics", "string",
    "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit",
    "trace", "traceback", "typing", "unittest.case", "urllib.parse",
    "urllib.request", "uuid", "warnings", "weakref", "zipfile",
)


def _clean_docstring(doc):
    """A docstring without indentation, doctest examples or tabs."""
    lines, in_example = [], False
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        if stripped.startswith(">>>"):
            in_example = True
        elif not stripped:
            in_example = False
        if not in_example:
            lines.append(line.replace("\t", "    ").rstrip())
    return "\n".join(lines).strip()


def _docstrings_from_source(path):
    """Docstrings of a module file and its public classes and functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = [ast.get_docstring(tree, clean=False)]
    for node in ast.walk(tree):
        if (isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and not node.name.startswith("_")):
            docs.append(ast.get_docstring(node, clean=False))
    return docs


def _docstrings_from_import(name):
    """Docstrings of an imported module and its public members (no source)."""
    import importlib
    module = importlib.import_module(name)
    docs = [module.__doc__]
    for attr, value in sorted(vars(module).items()):
        if (not attr.startswith("_") and getattr(value, "__module__", None) == name
                and (inspect.isclass(value) or inspect.isfunction(value))):
            docs.append(value.__doc__)
    return docs


def _stdlib_docstrings():
    """Yield the cleaned docstrings of :data:`_DOC_MODULES`, in order."""
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    for name in _DOC_MODULES:
        base = stdlib.joinpath(*name.split("."))
        path = base.with_suffix(".py")
        if not path.is_file():
            path = base / "__init__.py"
        try:
            docs = (_docstrings_from_source(path) if path.is_file()
                    else _docstrings_from_import(name))
        except (ImportError, OSError, SyntaxError, UnicodeDecodeError):
            continue   # a module this Python lacks: skip it
        for doc in docs:
            if doc:
                doc = _clean_docstring(doc)
                if len(doc) >= 40:
                    yield doc


class CharCodec:
    """Characters <-> indices <-> one-hot vectors, for next-character models.

    Parameters
    ----------
    chars : str or iterable of str
        The vocabulary; each distinct character gets the index of its rank
        in sorted order.

    Attributes
    ----------
    chars : str
        The vocabulary, sorted; ``chars[i]`` is the character of index i.
    n_chars : int
        Its size (the number of features and classes).

    Examples
    --------
    >>> from cbptt.datasets import CharCodec
    >>> codec = CharCodec("hello")
    >>> codec.chars, codec.encode("hole").tolist(), codec.decode([1, 0])
    ('ehlo', [1, 3, 2, 0], 'he')
    """

    def __init__(self, chars):
        self.chars = "".join(sorted(set(chars)))
        if not self.chars or not all(isinstance(c, str) and len(c) == 1
                                     for c in self.chars):
            raise ValueError("chars must hold at least one character")
        self._index = {c: i for i, c in enumerate(self.chars)}

    @property
    def n_chars(self):
        return len(self.chars)

    def __repr__(self):
        return f"CharCodec(n_chars={self.n_chars})"

    def encode(self, text):
        """The indices of ``text``'s characters, an int ndarray.

        Raises ValueError naming the first character outside the vocabulary.
        """
        if not isinstance(text, str):
            raise TypeError(f"text has type {type(text).__name__}; expected str")
        try:
            return np.array([self._index[c] for c in text], dtype=np.intp)
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the "
                             f"vocabulary of {self.n_chars} characters") from None

    def decode(self, indices):
        """The string whose characters have these indices."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and (idx.dtype.kind not in "iu"
                                           or idx.min() < 0
                                           or idx.max() >= self.n_chars)):
            raise ValueError(f"indices must be a 1-D array of ints in "
                             f"[0, {self.n_chars}); got {indices!r}")
        return "".join(self.chars[i] for i in idx)

    def one_hot(self, text, dtype=np.float32):
        """``text`` as one-hot rows, shape ``(len(text), n_chars)``."""
        idx = self.encode(text) if isinstance(text, str) else np.asarray(text)
        out = np.zeros((len(idx), self.n_chars), dtype=dtype)
        out[np.arange(len(idx)), idx] = 1
        return out

    def sequences(self, text, n_timesteps, *, step=None, max_sequences=None,
                  dtype=np.float32):
        """Windows of ``text`` for next-character training.

        Parameters
        ----------
        text : str
            Text in the vocabulary.
        n_timesteps : int
            Window length T.
        step : int, default=None
            Offset between window starts; None means T (no overlap).
        max_sequences : int, default=None
            Keep only the first this many windows.
        dtype : dtype, default=np.float32
            Of ``X`` (float32 keeps large corpora small and trains in
            float32).

        Returns
        -------
        X : ndarray of shape (n_sequences, T, n_chars)
            One-hot characters ``text[s:s+T]``.
        y : ndarray of shape (n_sequences, T), dtype int
            The next characters' indices ``text[s+1:s+T+1]``.
        """
        T = _check_int("n_timesteps", n_timesteps, 1)
        step = T if step is None else _check_int("step", step, 1)
        idx = self.encode(text)
        starts = np.arange(0, len(idx) - T, step)
        if max_sequences is not None:
            starts = starts[:_check_int("max_sequences", max_sequences, 1)]
        if len(starts) == 0:
            raise ValueError(f"text has {len(idx)} characters; expected more "
                             f"than n_timesteps={T}")
        windows = idx[starts[:, None] + np.arange(T + 1)]
        X = np.zeros((len(starts), T, self.n_chars), dtype=dtype)
        np.put_along_axis(X, windows[:, :-1, None], 1, axis=2)
        return X, windows[:, 1:]


def load_text(path=None, *, max_chars=None, ascii_only=True):
    """English text for next-character modelling, with its character codec.

    Without ``path``, the text is gathered at call time from the docstrings
    of about eighty modules of Python's standard library (read from their
    source files with :mod:`ast`, or from the imported modules when no
    source is installed), with doctest examples removed: real English prose
    present on every machine, nothing downloaded or shipped. The exact text
    depends on the Python version.

    Parameters
    ----------
    path : str or path-like, default=None
        A UTF-8 text file to read instead.
    max_chars : int, default=None
        Keep only the first this many characters.
    ascii_only : bool, default=True
        Drop characters outside printable ASCII (keeping newlines), which
        keeps the vocabulary near 96 symbols.

    Returns
    -------
    text : str
        The text.
    codec : CharCodec
        Its vocabulary, with ``encode``, ``decode``, ``one_hot`` and
        ``sequences`` (windows ``X``, next-character targets ``y``).

    Raises
    ------
    ValueError
        If the text is empty (e.g. a Python without docstrings and sources).

    Examples
    --------
    >>> from cbptt.datasets import load_text
    >>> text, codec = load_text(max_chars=20000)
    >>> len(text), codec.n_chars < 100
    (20000, True)
    >>> X, y = codec.sequences(text, 50, max_sequences=8)
    >>> X.shape[:2], y.shape
    ((8, 50), (8, 50))
    """
    if max_chars is not None:
        max_chars = _check_int("max_chars", max_chars, 1)
    if path is None:
        chunks = _stdlib_docstrings()
        source = "the standard library's docstrings"
    else:
        chunks = [pathlib.Path(path).read_text(encoding="utf-8")]
        source = str(path)
    parts, total = [], 0
    for chunk in chunks:
        if ascii_only:
            chunk = "".join(c for c in chunk if c == "\n" or " " <= c <= "~")
        parts.append(chunk)
        total += len(chunk) + 2
        if max_chars is not None and total >= max_chars:
            break
    text = "\n\n".join(parts)[:max_chars]
    if not text:
        raise ValueError(f"no text was found in {source}; pass path= to a "
                         "text file")
    return text, CharCodec(text)
