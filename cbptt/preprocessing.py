"""Preprocessing of sequences: :class:`SequenceScaler`.

Contract
--------
* Input is what the estimators take (see :mod:`cbptt._sequences`), and is
  validated the same way: a 3-D array ``(n_samples, n_timesteps,
  n_features)`` (channels-last), a 2-D array ``(n_samples, n_timesteps)`` of
  univariate series, or a list of ``(n_timesteps_i, n_features)`` or
  ``(n_timesteps_i,)`` arrays; trailing NaN padding marks shorter sequences.
* The output has the input's layout (2-D or 3-D array; a list of arrays
  gives a list, whose 1-D items stay 1-D) and dtype (float32 stays float32); padded steps stay NaN.
  The input is never written to.
* Statistics are per feature over every valid step of every sequence,
  accumulated in float64; padded steps count for nothing.
"""
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from cbptt._sequences import validate_sequences

__all__ = ["SequenceScaler"]


class SequenceScaler(TransformerMixin, BaseEstimator):
    """Standardise each feature of sequences over all their time steps.

    ``x'[n, t, f] = (x[n, t, f] - mean_[f]) / scale_[f]``, where ``mean_``
    and ``scale_`` (the standard deviation) of feature ``f`` are taken over
    every valid step of every sequence: scikit-learn's ``StandardScaler``
    for 3-D sequences, which it cannot take (and which, on a flattened
    ``(n_samples, n_timesteps * n_features)`` array, would scale every time
    step separately). Padded steps (trailing NaN) and the unequal lengths of
    a list are respected: they add nothing to the statistics and stay NaN
    (or stay absent) in the output. Use it in a
    :class:`~sklearn.pipeline.Pipeline` before
    :class:`~cbptt.RNNRegressor` or :class:`~cbptt.RNNClassifier`.

    Parameters
    ----------
    with_mean : bool, default=True
        Subtract each feature's mean.
    with_std : bool, default=True
        Divide by each feature's standard deviation (a feature constant
        over all steps is left unscaled).

    Attributes
    ----------
    mean_ : ndarray of shape (n_step_features,) or None
        Each feature's mean over all valid steps (None when
        ``with_mean=False``). ``n_step_features`` is the number of features
        per step: ``X.shape[2]`` of a 3-D ``X``, 1 for a 2-D ``X``.
    var_ : ndarray of shape (n_step_features,) or None
        Each feature's variance over all valid steps (None when
        ``with_std=False``).
    scale_ : ndarray of shape (n_step_features,) or None
        The divisor: ``sqrt(var_)``, 1 where it is 0 (None when
        ``with_std=False``).
    n_steps_seen_ : int
        The valid steps the statistics were taken over.
    n_features_in_ : int
        Features seen during fit: per step for a 3-D ``X`` or a list, but
        the columns (time steps) of a 2-D ``X``, as for the estimators.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of a 2-D ``X`` given as a DataFrame with string names.

    See Also
    --------
    sklearn.preprocessing.StandardScaler : The same for one row per sample.

    Notes
    -----
    The layout is channels-last, as for the estimators. Data of aeon or
    sktime is channels-first, ``(n_cases, n_channels, n_timepoints)``, and
    must be transposed first (``X.transpose(0, 2, 1)``): scaled as given, each time point would
    be standardised as a feature of its own.

    Examples
    --------
    >>> import numpy as np
    >>> from cbptt import SequenceScaler
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal([10.0, -3.0], [5.0, 0.1], size=(50, 20, 2))
    >>> Xs = SequenceScaler().fit_transform(X)
    >>> Xs.shape
    (50, 20, 2)
    >>> steps = Xs.reshape(-1, 2)                  # every step of every sequence
    >>> bool(np.allclose(steps.mean(axis=0), 0) and np.allclose(steps.std(axis=0), 1))
    True

    Ragged lists and NaN padding: each sequence keeps its length.

    >>> seqs = [rng.normal(5.0, 2.0, (t, 2)) for t in (4, 7, 3)]
    >>> [s.shape for s in SequenceScaler().fit_transform(seqs)]
    [(4, 2), (7, 2), (3, 2)]

    In a Pipeline before an estimator:

    >>> from sklearn.pipeline import make_pipeline
    >>> from cbptt import RNNRegressor
    >>> y = X[:, :, 1].mean(axis=1)
    >>> model = make_pipeline(SequenceScaler(),
    ...                       RNNRegressor(hidden_layer_sizes=(8,), max_iter=5,
    ...                                    random_state=0)).fit(X, y)
    >>> model.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        "with_mean": ["boolean"],
        "with_std": ["boolean"],
    }

    def __init__(self, *, with_mean=True, with_std=True):
        self.with_mean = with_mean
        self.with_std = with_std

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Compute each feature's mean and standard deviation over all steps.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or \
(n_samples, n_timesteps), or list of (n_timesteps_i, n_features) arrays
            The sequences, channels-last (trailing NaN steps are padding).
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted scaler.
        """
        seqs = validate_sequences(self, X, reset=True)
        values = seqs.data[seqs.valid_mask().T].astype(np.float64)  # (M, F)
        self.n_steps_seen_ = values.shape[0]
        self.mean_ = values.mean(axis=0) if self.with_mean else None
        if self.with_std:
            self.var_ = values.var(axis=0)
            scale = np.sqrt(self.var_)
            # A constant feature is left as it is (StandardScaler's rule,
            # with its tolerance for a variance that is rounding only).
            eps = 10 * np.finfo(np.float64).eps
            scale[scale < eps * np.maximum(1.0, np.abs(values.mean(axis=0)))] = 1.0
            self.scale_ = scale
        else:
            self.var_ = self.scale_ = None
        return self

    def transform(self, X):
        """Standardise ``X`` with the fitted statistics.

        Parameters
        ----------
        X : array-like or list of arrays
            As for :meth:`fit`, with as many features per step.

        Returns
        -------
        X_scaled : ndarray or list of ndarray
            In ``X``'s layout and dtype; padded steps stay NaN.
        """
        return self._apply(X, inverse=False)

    def inverse_transform(self, X):
        """Undo :meth:`transform`: ``x * scale_ + mean_``.

        Parameters
        ----------
        X : array-like or list of arrays
            Standardised sequences, as :meth:`transform` returns them.

        Returns
        -------
        X_original : ndarray or list of ndarray
            In ``X``'s layout and dtype.
        """
        return self._apply(X, inverse=True)

    def _apply(self, X, inverse):
        check_is_fitted(self, "n_steps_seen_")
        seqs = validate_sequences(self, X, reset=False)
        dtype = seqs.dtype
        mean = (np.zeros(seqs.n_features) if self.mean_ is None
                else self.mean_).astype(dtype)
        scale = (np.ones(seqs.n_features) if self.scale_ is None
                 else self.scale_).astype(dtype)
        out = (seqs.data * scale + mean) if inverse else (seqs.data - mean) / scale
        if not (isinstance(X, (list, tuple)) and len(X)
                and all(isinstance(x, np.ndarray) for x in X)):
            return out[:, :, 0] if seqs.layout == "2d" else out
        lengths = (np.full(seqs.n_samples, seqs.n_steps) if seqs.lengths is None
                   else seqs.lengths)
        flat = [np.ndim(x) == 1 for x in X]
        return [out[i, :n, 0] if flat[i] else out[i, :n]
                for i, n in enumerate(lengths)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
