"""
The adding problem
==================

Hochreiter & Schmidhuber's (1997) adding problem: each step carries a random number and
a marker; the target is a function of the two marked numbers, the first of which lies in
the first ten steps, so its error has to travel back over most of the sequence. A tanh
Elman network and an LSTM (forget bias 4) are trained alike; the demo's second part
(``cbptt adding``) does the same at T = 100.

``record_error_flow="epoch"`` records, after every epoch, how far back an error at the
last step still reaches.
"""
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from cbptt import RNNRegressor
from cbptt.datasets import make_adding_problem
from cbptt.plotting import plot_error_flow, plot_loss_curve

T = 40
X, y = make_adding_problem(800, T, random_state=0)
X_test, y_test = make_adding_problem(300, T, random_state=1)
baseline = np.mean((y_test - y.mean()) ** 2)          # always predict the mean

models = {}
for name, cell in [("tanh Elman", "elman"), ("LSTM", "lstm")]:
    model = RNNRegressor(hidden_layer_sizes=(16,), cell=cell, batch_size=16,
                         learning_rate_init=0.01, forget_bias=4.0, max_iter=6,
                         record_error_flow="epoch", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # max_iter is small on purpose
        models[name] = model.fit(X, y)
    mse = np.mean((model.predict(X_test) - y_test) ** 2)
    print(f"{name}: test MSE {mse:.4f} ({mse / baseline:.2f} of the baseline's), "
          f"error-flow horizon {model.error_flow_.horizon} steps")

# %%
# The LSTM's test error falls to about a tenth of the baseline's while the tanh
# network's stays near it; after training, the LSTM's error reaches back over the whole
# sequence and the tanh network's about ten steps.
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
plot_loss_curve(models, baseline={"predict the mean": baseline}, ax=left,
                title=f"adding problem, T = {T}: training loss")
plot_error_flow({name: m.error_flow_ for name, m in models.items()}, bound=False,
                ax=right, title="error flow after training")
fig.tight_layout()
