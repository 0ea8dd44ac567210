"""The plots draw what they are given and save files; without matplotlib a
clear ImportError says how to install it."""
import sys

import numpy as np
import pytest

from cbptt.diagnostics import error_flow, error_signals

from cbptt import plotting

try:
    import matplotlib  # noqa: F401
    HAS_MPL = True
except ImportError:
    HAS_MPL = False

needs_mpl = pytest.mark.skipif(not HAS_MPL, reason="matplotlib not installed "
                               "(the optional extra cbptt[plot])")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    if HAS_MPL and sys.modules.get("matplotlib.pyplot") is not None:
        sys.modules["matplotlib.pyplot"].close("all")


def elman(rng, H=6):
    return dict(weight_ih=rng.standard_normal((H, 2)),
                weight_hh=rng.standard_normal((H, H)) / np.sqrt(H),
                bias=np.zeros(H))


@needs_mpl
def test_plot_error_flow_several_models(tmp_path, rng):
    X = rng.standard_normal((6, 40, 2))
    w = elman(rng)
    flows = {a: error_flow(X, w, activation=a, random_state=0)
             for a in ("logistic", "tanh")}
    path = tmp_path / "flow.png"
    ax = plotting.plot_error_flow(flows, path=path, title="error flow")
    assert path.stat().st_size > 5000
    assert ax.get_yscale() == "log" and ax.get_title() == "error flow"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[0] == "logistic" and labels[2] == "tanh"
    assert labels[1].startswith("bound") and labels[-1] == "threshold 0.001"
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(),
                               flows["logistic"].ratio)
    # plain arrays and a shared axis, without bounds
    ax2 = plotting.plot_error_flow([flows["tanh"].ratio, np.ones(40)],
                                   labels=["a", "b"], bound=False, ax=ax)
    assert ax2 is ax
    with pytest.raises(ValueError, match="labels has 1"):
        plotting.plot_error_flow([np.ones(3), np.ones(3)], labels=["x"])
    with pytest.raises(ValueError, match="1-D"):
        plotting.plot_error_flow(np.ones((2, 3)))


@needs_mpl
def test_plot_loss_curve(tmp_path):
    class Fitted:
        loss_curve_ = [1.0, 0.4, 0.2, 0.1]

    path = tmp_path / "loss.svg"
    ax = plotting.plot_loss_curve([Fitted(), [0.9, 0.8]],
                                  baseline={"mean predictor": 0.5}, path=path)
    assert path.read_text().startswith("<?xml")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["Fitted", "model 2",
                                                    "mean predictor"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3, 4])
    linear = plotting.plot_loss_curve([1.0, 0.0], log=False)
    assert linear.get_yscale() == "linear"
    with pytest.raises(ValueError, match="non-empty 1-D"):
        plotting.plot_loss_curve({"empty": []})


@needs_mpl
def test_plot_error_signals(tmp_path, rng):
    X = rng.standard_normal((3, 25, 2))
    g = np.zeros((3, 25, 6))
    g[:, -1] = 1.0
    signals = error_signals(X, [elman(rng)], g)
    path = tmp_path / "signals.png"
    ax = plotting.plot_error_signals(signals, sample=1, path=path)
    assert path.stat().st_size > 3000
    image = ax.get_images()[0].get_array()
    assert image.shape == (6, 25)                      # units x time
    np.testing.assert_allclose(image, np.abs(signals[0].delta[1]).T)
    # padded steps are not drawn; arrays work directly
    padded = np.full((2, 30, 4), np.nan)
    padded[0, :12] = rng.standard_normal((12, 4))
    assert plotting.plot_error_signals(padded).get_images()[0].get_array().shape == (4, 12)
    with pytest.raises(ValueError, match="sample=5"):
        plotting.plot_error_signals(signals, sample=5)
    with pytest.raises(ValueError, match="layer=2"):
        plotting.plot_error_signals(signals, layer=2)
    with pytest.raises(ValueError, match="delta_c"):
        plotting.plot_error_signals(signals, which="delta_c")
    with pytest.raises(ValueError, match="gate"):
        plotting.plot_error_signals(signals, which="f")


def test_missing_matplotlib_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import fails
    with pytest.raises(ImportError, match=r'pip install "cbptt\[plot\]"'):
        plotting.plot_loss_curve([1.0, 0.5])


def _estimator(cls_name="RNNRegressor", **kw):
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    import cbptt
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 25, 2))
    y = X[:, -5:, 0].sum(axis=1)
    if cls_name == "RNNClassifier":
        y = y > 0
    params = dict(cell="elman", hidden_layer_sizes=(6,), max_iter=4,
                  random_state=0)
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return getattr(cbptt, cls_name)(**params).fit(X, y), X


@needs_mpl
def test_plot_error_flow_takes_a_fitted_estimator():
    est, X = _estimator(record_error_flow="fit")
    ax = plotting.plot_error_flow(est)
    line = ax.get_lines()[0]
    assert line.get_label() == "RNNRegressor (elman)"
    np.testing.assert_allclose(line.get_ydata(), est.error_flow_.ratio)
    # next to profiles of the functional API, in a dict
    ax = plotting.plot_error_flow({"fitted": est, "flat": np.ones(25)})
    assert [ln.get_label() for ln in ax.get_lines()][:1] == ["fitted"]
    # without a recorded flow: measured on X, or a clear error
    plain, _ = _estimator(cell="lstm")
    with pytest.raises(ValueError, match="record_error_flow") as info:
        plotting.plot_error_flow(plain)
    assert "X=X" in str(info.value)
    ax = plotting.plot_error_flow(plain, X=X[:8])
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(),
                               plain.error_flow(X[:8]).ratio)
    assert ax.get_lines()[0].get_label() == "RNNRegressor (lstm)"


def _whole_numbers(ticks):
    return np.array_equal(ticks, np.round(ticks))


@needs_mpl
@pytest.mark.parametrize("cls_name,score", [("RNNRegressor", "R^2"),
                                            ("RNNClassifier", "accuracy")])
def test_plot_loss_curve_shows_validation_scores(cls_name, score):
    est, _ = _estimator(cls_name, early_stopping=True, n_iter_no_change=50,
                        max_iter=5)
    assert len(est.validation_scores_) == 5
    ax = plotting.plot_loss_curve(est)
    assert len(ax.figure.axes) == 2
    right = ax.figure.axes[1]
    assert right.get_ylabel() == f"validation score ({score})"
    (val,) = right.get_lines()
    np.testing.assert_array_equal(val.get_xdata(), np.arange(1, 6))
    np.testing.assert_array_equal(val.get_ydata(), est.validation_scores_)
    assert val.get_color() == ax.get_lines()[0].get_color()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [cls_name, f"{cls_name}: validation score"]
    ax.figure.canvas.draw()
    assert _whole_numbers(ax.get_xticks())
    # a plain loss curve: one axis, whole-number epochs too
    loss_only = plotting.plot_loss_curve([1.0, 0.5, 0.4])
    assert len(loss_only.figure.axes) == 1
    loss_only.figure.canvas.draw()
    assert _whole_numbers(loss_only.get_xticks())


@needs_mpl
def test_plot_loss_curve_without_validation_scores_has_one_axis():
    est, _ = _estimator()
    assert est.validation_scores_ is None
    ax = plotting.plot_loss_curve(est)
    assert len(ax.figure.axes) == 1 and len(ax.get_lines()) == 1
