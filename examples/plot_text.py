"""
A character model
=================

An LSTM trained on English text gathered at run time from the standard library's
docstrings (nothing is downloaded) predicts the next character, then samples new text
with :meth:`cbptt.RNNClassifier.generate`. The demo's fourth part (``cbptt text``)
trains a larger one.
"""
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from cbptt import RNNClassifier
from cbptt.datasets import load_text
from cbptt.plotting import plot_loss_curve

text, codec = load_text(max_chars=12_000)
split = int(0.9 * len(text))
X, y = codec.sequences(text[:split], 40, step=20)     # one-hot windows, next characters
X_test, y_test = codec.sequences(text[split:], 40)
model = RNNClassifier(hidden_layer_sizes=(32,), output="sequence", batch_size=32,
                      learning_rate_init=0.02, max_iter=3, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)    # max_iter is small on purpose
    model.fit(X, y)
print(f"{codec.n_chars} symbols, {len(X)} windows of 40 characters")
print(f"next character right on held-out text: {np.mean(model.predict(X_test) == y_test):.1%}")
print("The " + model.generate("The ", 120, temperature=0.7, codec=codec, random_state=0))

# %%
# The training loss per epoch.
ax = plot_loss_curve(model, title="character model: training loss")
