"""The demo, ``cbptt`` (or ``python -m cbptt``): see what backpropagation through time does.

The demo runs on built-in data only and prints one progress line per epoch.
Its parts (all by default, or name some: ``cbptt flow adding``):

flow
    The error flow at initialisation, T = 100: an error injected at the last
    step, measured back at every lag, for a logistic Elman layer, a tanh
    Elman layer, a constant error carousel (CEC), LSTMs (1997 form,
    forget-gate form with bias 1 and 4) and GRUs (PyTorch's initialisation,
    and update-gate bias 4). A table of the ratio at lags 1, 10, 50, 99 and
    ``error_flow.png``.
adding
    The adding problem of Hochreiter & Schmidhuber (1997) at a lag the tanh
    Elman network cannot bridge: a tanh Elman network and an LSTM trained
    alike; test MSE against always predicting the mean; ``adding_loss.png``.
reber
    The embedded Reber grammar: the share of test strings whose every next
    symbol an LSTM (and, for contrast, a tanh Elman network) predicts.
text
    A character-level LSTM on English text gathered from Python's own
    docstrings, and a sample it generates.

``--quick`` runs smaller versions of flow, adding and reber (under 30
seconds on two cores; name ``text`` to add a small character model);
``--out DIR`` (default ``./cbptt-demo``) receives the PNGs and
``report.md`` with the tables.
"""
import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np

from cbptt import __version__
from cbptt._cells import make_cell
from cbptt.datasets import make_adding_problem
from cbptt.diagnostics import error_flow, format_error_flow_table

PARTS = ("flow", "adding", "reber", "text")


@dataclass(frozen=True)
class Settings:
    """How big each part of the demo is, and which parts run by default."""

    flow: dict
    adding: dict
    reber: dict
    text: dict
    parts: tuple


FULL = Settings(
    flow=dict(n_samples=64, T=100, hidden=32),
    adding=dict(T=100, n_train=3000, n_test=500, hidden=16, epochs=12,
                fit=dict(batch_size=32, learning_rate_init=0.01,
                         forget_bias=4.0)),
    reber=dict(n_train=1000, n_test=500, hidden=16, epochs=12,
               fit=dict(batch_size=16, learning_rate_init=0.02)),
    text=dict(n_chars=40_000, T=50, hidden=48, epochs=3, sample=300,
              fit=dict(batch_size=32, learning_rate_init=0.02)),
    parts=PARTS)
QUICK = Settings(
    flow=dict(n_samples=16, T=100, hidden=16),
    adding=dict(T=40, n_train=1000, n_test=300, hidden=16, epochs=8,
                fit=dict(batch_size=16, learning_rate_init=0.01,
                         forget_bias=4.0)),
    reber=dict(n_train=600, n_test=300, hidden=16, epochs=10,
               fit=dict(batch_size=16, learning_rate_init=0.02)),
    text=dict(n_chars=20_000, T=40, hidden=32, epochs=1, sample=120,
              fit=dict(batch_size=32, learning_rate_init=0.02)),
    parts=("flow", "adding", "reber"))


def _settings_text(fit):
    return ", ".join(f"{k}={v}" for k, v in fit.items())


# ---------------------------------------------------------------------------
# Output: the terminal, report.md and the PNGs
# ---------------------------------------------------------------------------

class Report:
    """Prints progress and collects the Markdown report as it goes."""

    def __init__(self, out_dir, argv, quiet=False):
        self.out_dir = out_dir
        self.sections = [
            "# cbptt demo report\n",
            f"`cbptt {' '.join(argv)}`: cbptt {__version__}, "
            f"Python {platform.python_version()}, numpy {np.__version__}, "
            f"{platform.machine()} with {os.cpu_count()} CPU(s).\n"]
        self.quiet = quiet

    def line(self, text=""):
        if not self.quiet:
            print(text, flush=True)

    def section(self, markdown):
        self.sections.append(markdown.strip() + "\n")
        self.save()

    def save(self):
        os.makedirs(self.out_dir, exist_ok=True)
        with open(os.path.join(self.out_dir, "report.md"), "w",
                  encoding="utf-8") as f:
            f.write("\n".join(self.sections))

    def figure_path(self, name):
        """Where a PNG goes, or None when matplotlib is missing."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.line(f"  (no {name}: matplotlib is not installed; "
                      "pip install \"cbptt[plot]\")")
            return None
        os.makedirs(self.out_dir, exist_ok=True)
        return os.path.join(self.out_dir, name)


# ---------------------------------------------------------------------------
# Part 1: error flow at initialisation
# ---------------------------------------------------------------------------

def initial_weights(cell, n_features, hidden, seed, forget_bias=1.0):
    """The first recurrent layer an estimator starts from, as a weight dict.

    Exactly what ``RNNRegressor(cell=cell, forget_bias=forget_bias,
    random_state=seed)`` draws for its first layer: the estimators' own cell
    adapter (:func:`cbptt._cells.make_cell`) fills the weights from
    ``RandomState(seed)`` (Glorot-uniform input weights, an orthogonal
    recurrent block per gate, zero biases except ``forget_bias`` on a forget
    gate).
    """
    adapter = make_cell(cell, "tanh")      # the activation does not draw
    weights = {name: np.zeros(shape) for name, shape, _ in
               adapter.param_specs(n_features, hidden)}
    adapter.init_params(weights, np.random.RandomState(seed), forget_bias)
    return weights


# (name, cell, activation, the LSTM's forget bias, added to the GRU's
# update-gate bias b_iz)
FLOW_MODELS = (("logistic Elman", "elman", "logistic", None, 0.0),
               ("tanh Elman", "elman", "tanh", None, 0.0),
               ("CEC", "cec", None, None, 0.0),
               ("LSTM 1997 (no forget gate)", "lstm1997", None, None, 0.0),
               ("LSTM, forget bias 1", "lstm", None, 1.0, 0.0),
               ("LSTM, forget bias 4", "lstm", None, 4.0, 0.0),
               ("GRU", "gru", None, None, 0.0),
               ("GRU, update bias 4", "gru", None, None, 4.0))


def update_gate_biased(weights, hidden, bias):
    """GRU weights with ``bias`` added to the update gate's input bias
    ``b_iz`` (rows ``H:2H`` of ``bias_ih``, gates ``r, z, n``): z = logistic(
    ... + b_iz + ...) then starts near logistic(bias), the share of h(t-1)
    that h(t) keeps."""
    if bias:
        weights["bias_ih"][hidden:2 * hidden] += bias
    return weights


def part_flow(settings, report, seed):
    """Error flow at initialisation for eight layers on the same inputs."""
    cfg = settings.flow
    T, H, n = cfg["T"], cfg["hidden"], cfg["n_samples"]
    report.line(f"== 1. error flow at initialisation (T = {T}, {H} units, "
                f"{n} sequences)")
    X, _ = make_adding_problem(n, T, variable_length=False, random_state=seed)
    flows = {}
    for name, cell, activation, forget_bias, update_bias in FLOW_MODELS:
        tic = time.perf_counter()
        w = initial_weights(cell, X.shape[2], H, seed, forget_bias or 1.0)
        w = update_gate_biased(w, H, update_bias)
        flows[name] = error_flow(X, w, cell=cell,
                                 activation=activation or "tanh",
                                 random_state=seed)
        report.line(f"  {name:28s} ratio[{T - 1}] = "
                    f"{flows[name].ratio[-1]:9.3g}   horizon "
                    f"{flows[name].horizon:3d}   "
                    f"({time.perf_counter() - tic:.2f} s)")
    table = format_error_flow_table(flows, lags=[q for q in (1, 10, 50, 99)
                                                 if q < T])
    report.line()
    report.line(table)
    text = (f"## 1. Error flow at initialisation\n\n"
            f"An error is injected at the last step T of {n} sequences "
            f"(adding-problem inputs, T = {T}, {H} units, the first layer "
            f"an estimator with random_state={seed} starts from, so both "
            "Elman layers have the same weights); ratio[q] = mean ||delta(T-q)|| / "
            "||delta(T)|| is the share of it that reaches lag q, and the "
            "horizon is the last lag where that share is above "
            f"{flows['CEC'].threshold:g} (\"+\": the whole sequence). For "
            "LSTMs the error is the carousel's, dL/dc(t); for GRUs the gates' "
            "error signals dL/dnet(t)."
            f"\n\n{table}\n\n{explain_flow(flows, T)}\n")
    path = report.figure_path("error_flow.png")
    if path:
        draw_flow(flows, T, path)
        text += "\n![error flow](error_flow.png)\n"
        report.line(f"  saved {path}")
    report.section(text)
    return flows


def explain_flow(flows, T):
    """What the error-flow table shows, in words, from its own numbers."""
    log_, tanh = flows["logistic Elman"], flows["tanh Elman"]
    lstm97 = flows["LSTM 1997 (no forget gate)"]
    lstm1, lstm4 = flows["LSTM, forget bias 1"], flows["LSTM, forget bias 4"]
    gru, gru4 = flows["GRU"], flows["GRU, update bias 4"]
    last = T - 1

    def trend(f):
        r = f.ratio[last]
        return "grows" if r > 1.5 else "stays near 1" if r > 0.5 else "fades"

    return "\n".join([
        "* **Logistic Elman**: each step back multiplies the error by "
        "diag(f'(net)) W_hh^T, and f' <= 1/4, so it shrinks at least by "
        f"0.25 ||W_hh|| = {log_.bound_per_step:.3g} per step: "
        f"{log_.ratio[min(10, last)]:.2g} after 10 steps, "
        f"{log_.ratio[last]:.2g} at q = {last}. It vanishes.",
        "* **tanh Elman**: f' <= 1 and the orthogonal W_hh has norm "
        f"{tanh.weight_hh_norm:.3g}, so nothing forces a decay; yet every "
        "unit's f'(net) < 1 shrinks the error a little at each step "
        f"(the largest per-step stretch averages {np.nanmean(tanh.step_factor):.3g}) "
        f"and {tanh.ratio[last]:.2g} of it reaches q = {last}: horizon "
        f"{tanh.horizon}. Training saturates units, and f' falls further.",
        "* **CEC**: s(t) = s(t-1) + W x(t), so delta(t) = delta(t+1): the "
        "ratio is exactly 1 at every lag. This is the constant error "
        "carousel.",
        "* **LSTM**: the carousel inside each cell carries dL/dc back. "
        f"Without a forget gate (1997) the error {trend(lstm97)} "
        f"({lstm97.ratio[last]:.3g} at q = {last}): the carousel keeps it and "
        "the recurrent paths through h add to it. A forget gate multiplies "
        "it by f(t) at each step: with the usual bias 1, f is about 0.73 at "
        f"first and the error {trend(lstm1)} ({lstm1.ratio[last]:.2g} at "
        f"q = {last}); with bias 4, f is about 0.98 and the error "
        f"{trend(lstm4)} ({lstm4.ratio[last]:.3g} at q = {last}). Training "
        "moves the gates: "
        "they open the carousel where memory pays.",
        "* **GRU**: h(t) = (1 - z) n + z h(t-1), so the direct path carries "
        "the error back multiplied by the update gate z(t) at each step: a "
        "carousel whose self-weight the gate sets (the paths through W_hh "
        "add to it). At PyTorch's initialisation z is about 0.5 and the "
        f"error {trend(gru)} ({gru.ratio[min(10, last)]:.2g} at q = "
        f"{min(10, last)}, horizon {gru.horizon}); with an update-gate bias "
        f"of 4, z is about 0.98 and {gru4.ratio[last]:.2g} of the error "
        f"still arrives from q = {last}.",
    ])


def draw_flow(flows, T, path):
    """error_flow.png: all profiles, and a zoom on the ones that survive."""
    import matplotlib.pyplot as plt
    from cbptt.plotting import plot_error_flow
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    plot_error_flow(flows, ax=left, title=f"Error flow at initialisation, T = {T}")
    plot_error_flow(flows, bound=False, ylim=(1e-5, 1e3), ax=right,
                    title="zoom: the error that survives (same colours)")
    right.get_legend().remove()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------
# Training with a progress line per epoch
# ---------------------------------------------------------------------------

def train_epochs(model, X, y, epochs, report, label, evaluate=None, **fit_kw):
    """``partial_fit`` one epoch at a time, printing a line per epoch.

    ``evaluate(model)`` returns ``(name, value)`` shown on each line (e.g.
    the test error); returns the list of those values.
    """
    values = []
    for epoch in range(1, epochs + 1):
        tic = time.perf_counter()
        model.partial_fit(X, y, **(fit_kw if epoch == 1 else {}))
        line = (f"  {label:12s} epoch {epoch:3d}/{epochs}  train loss "
                f"{model.loss_curve_[-1]:.5f}")
        if evaluate is not None:
            name, value = evaluate(model)
            values.append(value)
            line += f"  {name} {value:.5f}"
        report.line(f"{line}  ({time.perf_counter() - tic:.1f} s)")
    return values


# ---------------------------------------------------------------------------
# Part 2: the adding problem, tanh Elman against LSTM
# ---------------------------------------------------------------------------

def part_adding(settings, report, seed):
    """Train a tanh Elman network and an LSTM alike on the adding problem."""
    from cbptt import RNNRegressor
    cfg = settings.adding
    T, H, fit = cfg["T"], cfg["hidden"], cfg["fit"]
    report.line(f"== 2. the adding problem (Hochreiter & Schmidhuber 1997), "
                f"T = {T}: {cfg['n_train']} training sequences")
    X, y = make_adding_problem(cfg["n_train"], T, random_state=seed)
    Xt, yt = make_adding_problem(cfg["n_test"], T, random_state=seed + 1)
    baseline = float(np.mean((yt - y.mean()) ** 2))
    report.line(f"  baseline (always predict the training mean): test MSE "
                f"{baseline:.5f}")
    # record_error_flow="epoch": the first layer's error flow after every
    # epoch, on 64 of the training sequences
    models = {"tanh Elman": RNNRegressor((H,), cell="elman", activation="tanh",
                                         random_state=seed,
                                         record_error_flow="epoch", **fit),
              "LSTM": RNNRegressor((H,), cell="lstm", random_state=seed,
                                   record_error_flow="epoch", **fit)}

    def test_mse(m):
        return "test MSE", float(np.mean((m.predict(Xt) - yt) ** 2))

    results = {}
    for name, model in models.items():
        tic = time.perf_counter()
        curve = train_epochs(model, X, y, cfg["epochs"], report, name,
                             evaluate=test_mse)
        seconds = time.perf_counter() - tic
        flow = model.error_flow_
        horizons = [horizon(r, flow.threshold)
                    for r in model.error_flow_history_]
        report.line(f"  {name:12s} error-flow horizon after each epoch: "
                    + ", ".join(map(str, horizons)))
        results[name] = dict(
            mse=curve[-1], curve=curve, seconds=seconds, flow=flow,
            horizon=flow.horizon, horizons=horizons,
            solved=curve[-1] < 0.1 * baseline,
            correct=float(np.mean(np.abs(model.predict(Xt) - yt) < 0.04)))
    rows = ["| model | test MSE | / baseline | abs error < 0.04 | solved | "
            "error-flow horizon after training | seconds |",
            "|---|---:|---:|---:|---|---:|---:|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['mse']:.5f} | {r['mse'] / baseline:.3f} | "
                    f"{r['correct']:.1%} | {'yes' if r['solved'] else 'no'} | "
                    f"{r['horizon']} | {r['seconds']:.1f} |")
    rows.append(f"| predict the mean | {baseline:.5f} | 1.000 | "
                f"{float(np.mean(np.abs(y.mean() - yt) < 0.04)):.1%} | no | - "
                "| - |")
    table = "\n".join(rows)
    report.line()
    report.line(table)
    solved = [n for n, r in results.items() if r["solved"]] or ["neither"]
    report.line(f"  solved by: {', '.join(solved)}")
    text = (f"## 2. The adding problem, T = {T}\n\n"
            f"Hochreiter & Schmidhuber's (1997) version: {cfg['n_train']} "
            f"training sequences of {T} to {T + T // 10} steps; the first "
            "marked number is among the first ten steps, so its error has to "
            f"travel back at least {T - 10} steps. Both networks have {H} "
            f"units and the same settings ({_settings_text(fit)}, "
            f"{cfg['epochs']} epochs; the forget bias only concerns the "
            "LSTM). \"Solved\": test MSE below a tenth of the baseline's. "
            "The horizon is the error flow's, recorded during training "
            "(`record_error_flow=\"epoch\"`, on 64 training sequences): "
            "after training, an error at the last step reaches "
            f"{results['LSTM']['horizon']} steps back in the LSTM and "
            f"{results['tanh Elman']['horizon']} in the tanh network (above "
            "1e-3 of its size). After each epoch:\n\n"
            + "\n".join(f"* {n}: {', '.join(map(str, r['horizons']))}"
                        for n, r in results.items())
            + f"\n\n{table}\n\nSolved by: {', '.join(solved)}.\n")
    path = report.figure_path("adding_loss.png")
    if path:
        draw_adding(models, results, baseline, T, path)
        text += "\n![adding problem](adding_loss.png)\n"
        report.line(f"  saved {path}")
    report.section(text)
    return results


def horizon(ratio, threshold):
    """The memory horizon of a ratio profile: the last lag above threshold."""
    above = np.flatnonzero(ratio > threshold)
    return int(above.max()) if above.size else 0


def draw_adding(models, results, baseline, T, path):
    """adding_loss.png: training loss, test MSE, error flow after training."""
    import matplotlib.pyplot as plt
    from cbptt.plotting import plot_error_flow, plot_loss_curve
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(16, 4.2))
    plot_loss_curve(models, ax=left, labels=list(models),
                    title=f"adding problem, T = {T}: training loss")
    plot_loss_curve({n: r["curve"] for n, r in results.items()},
                    baseline={"predict the mean": baseline}, ax=mid,
                    title="test MSE")
    mid.set_ylabel("test MSE")
    plot_error_flow({n: r["flow"] for n, r in results.items()}, bound=False,
                    ax=right, title="error flow after training")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------
# Part 3: the embedded Reber grammar
# ---------------------------------------------------------------------------

def part_reber(settings, report, seed):
    """An LSTM (and, for contrast, a tanh Elman network) on embedded Reber."""
    from cbptt import RNNClassifier
    from cbptt.datasets import (REBER_SYMBOLS, make_embedded_reber,
                                score_embedded_reber)
    cfg = settings.reber
    H, fit = cfg["hidden"], cfg["fit"]
    report.line(f"== 3. the embedded Reber grammar: {cfg['n_train']} "
                "training strings")
    X, y = make_embedded_reber(cfg["n_train"], random_state=seed)
    Xt, _ = make_embedded_reber(cfg["n_test"], random_state=seed + 1)
    lengths = np.sum(~np.isnan(Xt[:, :, 0]), axis=1)
    classes = np.arange(len(REBER_SYMBOLS))
    rows = ["| model | test strings fully right | test steps right | "
            "seconds |", "|---|---:|---:|---:|"]
    results = {}
    for name, cell in (("LSTM", "lstm"), ("tanh Elman", "elman")):
        model = RNNClassifier((H,), cell=cell, output="sequence",
                              random_state=seed, **fit)

        def strings_right(m):
            return "test strings right", score_embedded_reber(
                Xt, m.predict_proba(Xt), classes=m.classes_)

        tic = time.perf_counter()
        train_epochs(model, X, y, cfg["epochs"], report, name,
                     evaluate=strings_right, classes=classes)
        strings, steps = score_embedded_reber(
            Xt, model.predict_proba(Xt), classes=model.classes_,
            return_steps=True)
        results[name] = dict(strings=strings, steps=steps)
        rows.append(f"| {name} | {strings:.1%} | {steps:.1%} | "
                    f"{time.perf_counter() - tic:.1f} |")
    table = "\n".join(rows)
    report.line()
    report.line(table)
    text = (f"## 3. The embedded Reber grammar\n\n"
            f"Networks of {H} units read {cfg['n_train']} strings symbol by "
            "symbol and learn, at every step, which symbols may come next "
            f"({_settings_text(fit)}, {cfg['epochs']} epochs). A step is "
            "right when the outputs of the possible next symbols are all "
            "above the others; a string is right when every step is. The "
            "symbol before the final E must repeat the second symbol, seen "
            f"{int(lengths.min()) - 2} to {int(lengths.max()) - 2} steps "
            f"earlier (median {int(np.median(lengths)) - 2}); a network that "
            "forgets it gets about half of the strings right by luck. These "
            "lags are short: with orthogonal initialisation, Adam and "
            "clipping, the tanh Elman network "
            + ("learns them too" if results["tanh Elman"]["strings"] >= 0.9
               else "learns part of them")
            + " here (compare the adding problem's lags of "
            f"{settings.adding['T'] - 10} steps and more in part 2)."
            f"\n\n{table}\n")
    report.section(text)
    return results


# ---------------------------------------------------------------------------
# Part 4: a character model on the standard library's docstrings
# ---------------------------------------------------------------------------

def part_text(settings, report, seed):
    """A character-level LSTM on built-in English text, and a sample."""
    from cbptt import RNNClassifier
    from cbptt.datasets import load_text
    cfg = settings.text
    T, H = cfg["T"], cfg["hidden"]
    text, codec = load_text(max_chars=cfg["n_chars"])
    split = int(0.9 * len(text))
    X, y = codec.sequences(text[:split], T, step=T // 2)
    Xt, yt = codec.sequences(text[split:], T)
    report.line(f"== 4. a character model: {len(text)} characters of "
                f"Python's docstrings, {codec.n_chars} symbols, {len(X)} "
                f"windows of {T}")
    model = RNNClassifier((H,), cell="lstm", output="sequence",
                          random_state=seed, **cfg["fit"])

    def accuracy(m):
        return "test char accuracy", float(np.mean(m.predict(Xt) == yt))

    tic = time.perf_counter()
    acc = train_epochs(model, X, y, cfg["epochs"], report, "char LSTM",
                       evaluate=accuracy, classes=np.arange(codec.n_chars))[-1]
    seconds = time.perf_counter() - tic
    seed_text = "The "
    sample = seed_text + model.generate(seed_text, cfg["sample"],
                                        temperature=0.7, codec=codec,
                                        random_state=seed)
    report.line("  sample (temperature 0.7):")
    for line in sample.splitlines():
        report.line("    " + line)
    report.section(
        f"## 4. A character model\n\nAn LSTM ({H} units, "
        f"{_settings_text(cfg['fit'])}, {cfg['epochs']} epochs, "
        f"{seconds:.1f} s) trained on {split} characters of the standard "
        "library's docstrings (gathered at run time, nothing downloaded) "
        f"predicts the next character of held-out text right {acc:.1%} of "
        "the time. A sample at temperature 0.7, seeded with \"The \":\n\n"
        f"```text\n{sample}\n```\n")
    return dict(accuracy=acc, sample=sample)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

RUNNERS = {"flow": part_flow, "adding": part_adding, "reber": part_reber,
           "text": part_text}


def main(argv=None):
    """Run the demo from the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="cbptt",
        description="See what backpropagation through time does: the error "
                    "flow, the adding problem, the embedded Reber grammar and "
                    "a character model, on built-in data.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="parts: " + ", ".join(PARTS) + " (default: all; with --quick: "
               + ", ".join(QUICK.parts) + ")")
    parser.add_argument("parts", nargs="*", metavar="PART",
                        help="run only these parts: " + ", ".join(PARTS))
    parser.add_argument("--quick", action="store_true",
                        help="smaller runs, under 30 s in all")
    parser.add_argument("--out", default="cbptt-demo", metavar="DIR",
                        help="directory for report.md and the PNGs "
                             "(default: ./cbptt-demo)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of data and weights (default: 0)")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {list(PARTS)}")
    settings = QUICK if args.quick else FULL
    parts = [p for p in PARTS if p in (args.parts or settings.parts)]
    report = Report(args.out, argv)
    start = time.perf_counter()
    for part in parts:
        tic = time.perf_counter()
        RUNNERS[part](settings, report, args.seed)
        report.line(f"  [{part}: {time.perf_counter() - tic:.1f} s]\n")
    total = time.perf_counter() - start
    report.section(f"Total time: {total:.1f} s.")
    report.line(f"done in {total:.1f} s; report: "
                f"{os.path.join(args.out, 'report.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
