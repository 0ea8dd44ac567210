"""The dataset generators: the tasks as the papers define them, shapes,
determinism, padding, the embedded Reber scorer, the text corpus, bad input."""
import re
from collections import defaultdict

import numpy as np
import pytest

from cbptt.datasets import (REBER_SYMBOLS, TEMPORAL_ORDER_SYMBOLS, CharCodec,
                            embedded_reber_next, load_text,
                            make_adding_problem, make_embedded_reber,
                            make_long_lag, make_sine, make_temporal_order,
                            score_embedded_reber)

# The Reber grammar as a regular expression, derived by hand from its graph
# (independent of the state table in cbptt.datasets):
#   after P (state 3): (T* V P X)* T* V (V | P S)
#   after T (state 2): S* X (S | X <state 3>)
_AFTER_P = "(?:T*VPX)*T*V(?:V|PS)"
_AFTER_T = f"S*X(?:S|X{_AFTER_P})"
_REBER = f"B(?:T{_AFTER_T}|P{_AFTER_P})E"
EMBEDDED_REBER = re.compile(f"B(?:T{_REBER}T|P{_REBER}P)E")


def strings_of(X, y):
    """Whole strings: the inputs' symbols plus the last target (E)."""
    out = []
    for x, t in zip(X, y):
        out.append("".join(REBER_SYMBOLS[i] for i in np.asarray(x).argmax(1))
                   + REBER_SYMBOLS[int(t[-1])])
    return out


GENERATORS = [
    lambda rs: make_adding_problem(20, 30, random_state=rs),
    lambda rs: make_adding_problem(20, 30, version="simple", random_state=rs),
    lambda rs: make_embedded_reber(20, random_state=rs),
    lambda rs: make_embedded_reber(20, target="possible", random_state=rs),
    lambda rs: make_temporal_order(20, 30, random_state=rs),
    lambda rs: make_temporal_order(20, 30, n_relevant=3, random_state=rs),
    lambda rs: make_long_lag(20, 12, random_middle=True, random_state=rs),
    lambda rs: make_sine(20, 15, noise=0.1, random_state=rs),
]


@pytest.mark.parametrize("make", GENERATORS)
def test_deterministic_from_seed(make):
    X1, y1 = make(3)
    X2, y2 = make(3)
    X3, _ = make(4)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert X1.shape != X3.shape or not np.array_equal(X1, X3, equal_nan=True)
    rs = np.random.RandomState(3)
    X4, _ = make(rs)
    np.testing.assert_array_equal(X1, X4)


# --- the adding problem ------------------------------------------------------

@pytest.mark.parametrize("T", [20, 50, 101])
def test_adding_1997_follows_the_paper(T):
    X, y = make_adding_problem(300, T, random_state=0)
    n_max = T + T // 10
    assert X.ndim == 3 and X.shape[0] == 300 and X.shape[2] == 2
    assert X.shape[1] <= n_max and y.shape == (300,)
    lengths = []
    for x, target in zip(X, y):
        length = int(np.sum(~np.isnan(x[:, 0])))
        lengths.append(length)
        assert T <= length <= n_max
        assert np.isnan(x[length:]).all()              # trailing padding only
        x = x[:length]
        assert np.all(np.abs(x[:, 0]) <= 1)
        marked = np.flatnonzero(x[:, 1] == 1.0)
        assert len(marked) == 2
        first, second = marked.min(), marked.max()
        assert first < 10 and second < T // 2 or second < 10
        others = np.setdiff1d(np.arange(length), marked)
        expected = np.zeros(length)
        expected[[0, length - 1]] = -1.0
        np.testing.assert_array_equal(x[others, 1], expected[others])
        if 0 in marked:
            assert x[0, 0] == 0.0                       # "X1 is set to zero"
        assert target == pytest.approx(0.5 + x[marked, 0].sum() / 4.0, abs=1e-15)
        assert 0.0 <= target <= 1.0
    assert len(set(lengths)) > 1                        # lengths vary
    # the first marked pair is among the first ten, uniformly enough
    firsts = [np.flatnonzero(x[:, 1] == 1.0).min() for x in X]
    assert set(firsts) <= set(range(10))


def test_adding_simple_version():
    X, y = make_adding_problem(200, 40, version="simple", random_state=1)
    assert X.shape == (200, 40, 2) and not np.isnan(X).any()
    assert np.all((X[:, :, 0] >= 0) & (X[:, :, 0] <= 1))
    for x, target in zip(X, y):
        marked = np.flatnonzero(x[:, 1] == 1.0)
        assert len(marked) == 2 and marked[0] < 20 <= marked[1]
        assert set(np.unique(x[:, 1])) == {0.0, 1.0}
        assert target == x[marked, 0].sum()
    # the trivial baseline the demo reports: MSE of the mean is about 1/6
    assert abs(y.var() - 1 / 6) < 0.04


def test_adding_variable_length_and_lists():
    X, y = make_adding_problem(10, 30, random_state=2)
    Xl, yl = make_adding_problem(10, 30, as_list=True, random_state=2)
    np.testing.assert_array_equal(y, yl)
    assert isinstance(Xl, list) and all(x.shape[1] == 2 for x in Xl)
    for x, xp in zip(Xl, X):
        np.testing.assert_array_equal(x, xp[:len(x)])
    Xf, _ = make_adding_problem(10, 30, variable_length=False, random_state=2)
    assert Xf.shape == (10, 30, 2) and not np.isnan(Xf).any()


# --- the embedded Reber grammar ----------------------------------------------

def test_every_reber_string_is_valid():
    X, y = make_embedded_reber(2000, as_list=True, random_state=0)
    strings = strings_of(X, y)
    assert all(EMBEDDED_REBER.fullmatch(s) for s in strings)
    # both embeddings, every symbol, several lengths
    assert {s[1] for s in strings} == {"T", "P"}
    assert set("".join(strings)) == set(REBER_SYMBOLS)
    assert len({len(s) for s in strings}) > 10
    # the regex rejects what the grammar forbids (so the check can fail)
    assert not EMBEDDED_REBER.fullmatch("BTBTSSXSEPE")
    assert not EMBEDDED_REBER.fullmatch("BTBTSSXXE TE".replace(" ", ""))


def test_reber_inputs_targets_and_padding():
    X, y = make_embedded_reber(50, random_state=3)
    Xl, yl = make_embedded_reber(50, as_list=True, random_state=3)
    assert X.shape[2] == 7 and y.shape == X.shape[:2]
    for n, (x, t) in enumerate(zip(Xl, yl)):
        L = len(x)
        np.testing.assert_array_equal(X[n, :L], x)
        np.testing.assert_array_equal(y[n, :L], t)
        assert np.isnan(X[n, L:]).all() and np.isnan(y[n, L:]).all()
        # the target at step t is the input at step t + 1
        np.testing.assert_array_equal(t[:-1], x[1:].argmax(1))
        assert REBER_SYMBOLS[int(t[-1])] == "E"
        assert REBER_SYMBOLS[int(x[-1].argmax())] == REBER_SYMBOLS[int(x[1].argmax())]


def test_reber_possible_next_matches_observed_continuations():
    X, y = make_embedded_reber(3000, as_list=True, random_state=5)
    possible = embedded_reber_next(X)
    observed, claimed = defaultdict(set), {}
    for x, t, p in zip(X, y, possible):
        s = "".join(REBER_SYMBOLS[i] for i in x.argmax(1))
        for k in range(len(s)):
            prefix = s[:k + 1]
            observed[prefix].add(REBER_SYMBOLS[int(t[k])])
            claimed[prefix] = {REBER_SYMBOLS[j] for j in np.flatnonzero(p[k])}
            assert REBER_SYMBOLS[int(t[k])] in claimed[prefix]
    counts = defaultdict(int)
    for x in X:
        s = "".join(REBER_SYMBOLS[i] for i in x.argmax(1))
        for k in range(len(s)):
            counts[s[:k + 1]] += 1
    frequent = [p for p, c in counts.items() if c >= 30]
    assert len(frequent) > 40
    for prefix in frequent:      # each branch has probability 1/2
        assert observed[prefix] == claimed[prefix], prefix
    # target="possible" is the same multi-hot encoding
    Xp, yp = make_embedded_reber(30, target="possible", random_state=6)
    np.testing.assert_array_equal(yp, embedded_reber_next(Xp))


def test_reber_scorer():
    X, y = make_embedded_reber(40, random_state=7)
    possible = embedded_reber_next(X)
    assert score_embedded_reber(X, possible) == 1.0
    # the actual next symbol alone is wrong wherever two symbols may follow
    one_hot_next = np.where(np.isnan(y)[..., None], np.nan,
                            np.eye(7)[np.nan_to_num(y).astype(int)])
    acc, step_acc = score_embedded_reber(X, one_hot_next, return_steps=True)
    assert acc == 0.0 and 0.3 < step_acc < 1.0
    # one wrong step spoils one string
    bad = possible.copy()
    bad[0, 3] = 1.0 - bad[0, 3]
    assert score_embedded_reber(X, bad) == pytest.approx(39 / 40)
    # columns in another order, as named by a classifier's classes_
    order = np.array([6, 0, 5, 1, 4, 2, 3])
    assert score_embedded_reber(X, possible[:, :, order], classes=order) == 1.0
    # a symbol without a column is never predicted: strings needing S fail
    has_s = [n for n in range(40) if np.nansum(possible[n, :, 3]) > 0]
    keep = np.array([0, 1, 2, 4, 5, 6])
    assert score_embedded_reber(X, possible[:, :, keep], classes=keep) == \
        pytest.approx(1 - len(has_s) / 40)
    assert 0 < len(has_s) < 40
    with pytest.raises(ValueError, match="outputs"):
        score_embedded_reber(X, possible[:, :, keep])
    with pytest.raises(ValueError, match="classes"):
        score_embedded_reber(X, possible, classes=[0, 1, 2, 3, 4, 5, 9])
    # ties are not right: the possible symbols must be strictly on top
    assert score_embedded_reber(X, np.ones_like(possible)) == 0.0
    # lists work like padded arrays
    Xl, _ = make_embedded_reber(40, as_list=True, random_state=7)
    assert score_embedded_reber(Xl, embedded_reber_next(Xl)) == 1.0


def test_reber_next_rejects_strings_outside_the_grammar():
    def encode(s):
        return np.eye(7)[[REBER_SYMBOLS.index(c) for c in s]][None]
    embedded_reber_next(encode("BTBPVVET"))            # valid: no error
    for bad in ["BTBPVVEP", "TTBPVVET", "BXBPVVET", "BTBPVSET", "BTBPVVETE"]:
        with pytest.raises(ValueError, match="not an embedded Reber string"):
            embedded_reber_next(encode(bad))
    with pytest.raises(ValueError, match="one-hot"):
        embedded_reber_next(encode("BTBPVVET") * 0.5)


# --- temporal order, long lags, sine ----------------------------------------

@pytest.mark.parametrize("n_relevant", [2, 3])
def test_temporal_order(n_relevant):
    T = 100
    X, y = make_temporal_order(400, T, n_relevant=n_relevant, random_state=0)
    assert X.shape[2] == 8 and y.dtype.kind == "i"
    assert set(y) == set(range(2 ** n_relevant))
    ranges = ([(10, 20), (50, 60)] if n_relevant == 2
              else [(10, 20), (33, 43), (66, 76)])
    for x, label in zip(X, y):
        L = int(np.sum(~np.isnan(x[:, 0])))
        assert T <= L <= T + 10
        s = "".join(TEMPORAL_ORDER_SYMBOLS[i] for i in x[:L].argmax(1))
        assert s[0] == "E" and s[-1] == "B"
        assert set(s[1:-1]) <= set("abcdXY")
        pos = [m.start() for m in re.finditer("[XY]", s)]
        assert len(pos) == n_relevant
        for p, (lo, hi) in zip(pos, ranges):
            assert lo <= p <= hi
        bits = "".join("0" if s[p] == "X" else "1" for p in pos)
        assert label == int(bits, 2)


def test_long_lag():
    p = 15
    X, y = make_long_lag(100, p, random_state=0)
    assert X.shape == (100, p, p + 1) and y.shape == (100,)
    np.testing.assert_array_equal(X.sum(axis=2), 1.0)
    sym = X.argmax(2)
    np.testing.assert_array_equal(y, sym[:, 0])
    assert set(y) == {0, 1}
    np.testing.assert_array_equal(sym[:, 1:], np.broadcast_to(np.arange(2, p + 1), (100, p - 1)))
    Xs, ys = make_long_lag(100, p, output="sequence", random_state=0)
    np.testing.assert_array_equal(Xs, X)
    assert ys.shape == (100, p)
    np.testing.assert_array_equal(ys[:, :-1], sym[:, 1:])
    np.testing.assert_array_equal(ys[:, -1], y)
    Xr, yr = make_long_lag(100, p, random_middle=True, random_state=0)
    mid = Xr.argmax(2)[:, 1:]
    assert mid.min() >= 2 and mid.max() <= p and len(np.unique(mid)) > p // 2
    np.testing.assert_array_equal(yr, Xr.argmax(2)[:, 0])


def test_sine():
    X, y = make_sine(10, 25, random_state=0)
    assert X.shape == (10, 25, 1) and y.shape == (10, 25)
    np.testing.assert_allclose(X[:, 1:, 0], y[:, :-1])
    # the next value of a sine follows from the last two: s(t+1) = 2cos(w)s(t) - s(t-1)
    w = np.arccos((X[:, 2, 0] + X[:, 0, 0]) / (2 * X[:, 1, 0]))
    np.testing.assert_allclose(y[:, -1], 2 * np.cos(w) * X[:, -1, 0] - X[:, -2, 0],
                               atol=1e-9)
    Xl, yl = make_sine(10, 25, output="last", random_state=0)
    np.testing.assert_array_equal(yl, y[:, -1])
    Xn, yn = make_sine(10, 25, noise=0.5, random_state=0)
    np.testing.assert_array_equal(yn, y)             # targets stay clean
    assert 0.3 < np.std(Xn - X) < 0.7


# --- text --------------------------------------------------------------------

def test_load_text_is_english_from_the_standard_library():
    text, codec = load_text(max_chars=50000)
    assert len(text) == 50000
    words = text.lower().split()
    assert words.count("the") > 200 and words.count("of") > 50
    assert set(text) <= set(codec.chars) and codec.n_chars < 100
    assert all(c == "\n" or " " <= c <= "~" for c in text)
    full, _ = load_text()
    assert len(full) > 100000 and full.startswith(text[:1000])


def test_load_text_from_file_and_codec(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("héllo world\nhello again", encoding="utf-8")
    text, codec = load_text(path)
    assert text == "hllo world\nhello again"
    text2, _ = load_text(path, ascii_only=False, max_chars=5)
    assert text2 == "héllo"
    idx = codec.encode(text)
    assert codec.decode(idx) == text
    oh = codec.one_hot("hello")
    assert oh.shape == (5, codec.n_chars) and oh.dtype == np.float32
    np.testing.assert_array_equal(oh.argmax(1), codec.encode("hello"))
    X, y = codec.sequences(text, 5, step=3)
    assert X.shape == (6, 5, codec.n_chars) and y.shape == (6, 5)
    for k in range(6):
        s = 3 * k
        assert codec.decode(X[k].argmax(1)) == text[s:s + 5]
        assert codec.decode(y[k]) == text[s + 1:s + 6]
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        codec.encode("zebra")
    with pytest.raises(ValueError, match="more than n_timesteps"):
        codec.sequences("hello", 10)
    with pytest.raises(ValueError, match="at least one"):
        CharCodec("")


# --- bad input ---------------------------------------------------------------

@pytest.mark.parametrize("call, exc, match", [
    (lambda: make_adding_problem(0), ValueError, "n_samples=0"),
    (lambda: make_adding_problem(5, 10), ValueError, "n_timesteps=10"),
    (lambda: make_adding_problem(5, 2.5), TypeError, "n_timesteps"),
    (lambda: make_adding_problem(5, version="2015"), ValueError, "version"),
    (lambda: make_embedded_reber(5, target="set"), ValueError, "target"),
    (lambda: make_temporal_order(5, n_relevant=4), ValueError, "n_relevant"),
    (lambda: make_long_lag(5, 1), ValueError, "n_timesteps=1"),
    (lambda: make_long_lag(5, output="all"), ValueError, "output"),
    (lambda: make_sine(5, noise=-1), ValueError, "noise"),
    (lambda: make_sine(5, frequency=(0.3, 0.1)), ValueError, "frequency"),
    (lambda: make_sine(5, frequency=0.3), TypeError, "frequency"),
    (lambda: make_sine(True), TypeError, "n_samples"),
    (lambda: load_text(max_chars=0), ValueError, "max_chars"),
])
def test_bad_parameters_are_named(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
