"""
The embedded Reber grammar
==========================

Networks read strings of the embedded Reber grammar symbol by symbol and predict, at
every step, which symbols may come next. The symbol before the final E must repeat the
second symbol of the string, seen many steps earlier. A step is right when the outputs
of the possible next symbols are all above the others; a string is right when every
step is. This is the demo's third part (``cbptt reber``).
"""
import matplotlib.pyplot as plt
import numpy as np

from cbptt import RNNClassifier
from cbptt.datasets import REBER_SYMBOLS, make_embedded_reber, score_embedded_reber

X, y = make_embedded_reber(600, random_state=0)
X_test, _ = make_embedded_reber(200, random_state=1)
classes = np.arange(len(REBER_SYMBOLS))

scores = {}
for name, cell in [("LSTM", "lstm"), ("tanh Elman", "elman")]:
    model = RNNClassifier(hidden_layer_sizes=(16,), cell=cell, output="sequence",
                          batch_size=16, learning_rate_init=0.02, random_state=0)
    scores[name] = []
    for epoch in range(10):                 # one epoch per call, scored after each
        model.partial_fit(X, y, classes=classes)
        scores[name].append(score_embedded_reber(
            X_test, model.predict_proba(X_test), classes=model.classes_))
    print(f"{name}: test strings fully right after each epoch:",
          ", ".join(f"{s:.0%}" for s in scores[name]))

# %%
# A network that forgets the second symbol gets about half of the strings right by luck.
# The LSTM gets every string right within ten epochs. These lags are short, and with
# orthogonal initialisation, Adam and clipping the tanh network learns much of them too,
# more slowly (compare the adding problem's lags of 30 steps and more).
fig, ax = plt.subplots(figsize=(6, 4))
for name, curve in scores.items():
    ax.plot(np.arange(1, len(curve) + 1), curve, marker="o", label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("test strings fully right")
ax.set_ylim(0, 1.05)
ax.legend()
