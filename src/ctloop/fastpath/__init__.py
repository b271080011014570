"""The compiled inference path: a model's fitted transforms and estimator as flat numpy arrays.

:mod:`.compile` turns a fitted scikit-learn pipeline (median imputer + scaler + one-hot encoder in front
of a histogram gradient-boosting or logistic-regression classifier) or the torch MLP into arrays;
:mod:`.runtime` predicts from them on typed columns without pandas; :mod:`.artifact` writes the arrays
beside the model (``fast.npz``, digest in ``model.json``), checks agreement with the reference path and
loads them back. Every comparison is in float64, so the fast path agrees with ``predict_proba`` to
rounding (see benchmarks/RESULTS.md for why this beat ONNX).
"""
