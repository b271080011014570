"""Compile fitted models into flat arrays (``dict[str, np.ndarray]``, saved as an ``.npz`` without pickle).

Layout: ``kind`` (``"trees"``, ``"linear"`` or ``"mlp"``), the numeric transform (``medians``,
``means``, ``scales``), one vocabulary per categorical feature (``vocab_<j>``, string arrays), then the
estimator. Anything outside the supported shapes raises :class:`~ctloop.errors.FastPathError`, and the
model is served on the reference path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ctloop.errors import FastPathError

Arrays = dict[str, np.ndarray]


def _vocab(arrays: Arrays, categories: list[Any]) -> None:
    for j, values in enumerate(categories):
        arrays[f"vocab_{j}"] = np.asarray([str(v) for v in values], dtype=str)


def _sklearn_features(pipe: Any, numeric: list[str], categorical: list[str]) -> Arrays:
    """The ColumnTransformer as arrays: impute medians, scaler means/scales, one-hot vocabularies."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = pipe.steps[0][1]
    if not isinstance(pre, ColumnTransformer):
        raise FastPathError(f"first step is {type(pre).__name__}, not a ColumnTransformer")
    arrays: Arrays = {}
    seen = set()
    for name, tr, cols in pre.transformers_:
        if name == "remainder" and (tr == "drop" or len(cols) == 0):
            continue
        seen.add(name)
        if name == "num":
            steps = dict(tr.steps) if isinstance(tr, Pipeline) else {}
            imp, sc = steps.get("impute"), steps.get("scale")
            if (list(cols) != numeric or not isinstance(imp, SimpleImputer) or not isinstance(sc, StandardScaler)
                    or imp.add_indicator or len(steps) != 2):
                raise FastPathError("numeric transform is not SimpleImputer + StandardScaler over the features")
            arrays["medians"] = np.asarray(imp.statistics_, dtype="float64")
            arrays["means"] = (np.asarray(sc.mean_, dtype="float64") if sc.with_mean
                               else np.zeros(len(numeric)))
            arrays["scales"] = (np.asarray(sc.scale_, dtype="float64") if sc.with_std
                                else np.ones(len(numeric)))
        elif name == "cat":
            if (list(cols) != categorical or not isinstance(tr, OneHotEncoder) or tr.drop is not None
                    or tr.handle_unknown != "ignore" or getattr(tr, "infrequent_categories_", None)):
                raise FastPathError("categorical transform is not a plain OneHotEncoder(handle_unknown='ignore')")
            _vocab(arrays, list(tr.categories_))
        else:
            raise FastPathError(f"unsupported transformer {name!r} ({type(tr).__name__})")
    if (numeric and "num" not in seen) or (categorical and "cat" not in seen):
        raise FastPathError("the pipeline does not transform every feature")
    arrays.setdefault("medians", np.zeros(0))
    arrays.setdefault("means", np.zeros(0))
    arrays.setdefault("scales", np.ones(0))
    return arrays


def _trees(est: Any) -> Arrays:
    """All trees of a binary HistGradientBoostingClassifier as one node table (leaves point to themselves)."""
    if getattr(est, "n_trees_per_iteration_", 0) != 1 or getattr(est, "_preprocessor", None) is not None:
        raise FastPathError("only binary HistGradientBoostingClassifier without native categoricals compiles")
    feats, thrs, lefts, rights, miss, values, roots = [], [], [], [], [], [], []
    offset = 0
    depth = 0
    for (pred,) in est._predictors:
        nodes = pred.nodes
        if np.any(nodes["is_categorical"]):
            raise FastPathError("a tree splits on a native categorical feature")
        n = len(nodes)
        own = np.arange(offset, offset + n)
        leaf = nodes["is_leaf"].astype(bool)
        feats.append(np.where(leaf, 0, nodes["feature_idx"]).astype("int64"))
        thrs.append(np.where(leaf, np.inf, nodes["num_threshold"]).astype("float64"))
        lefts.append(np.where(leaf, own, nodes["left"].astype("int64") + offset))
        rights.append(np.where(leaf, own, nodes["right"].astype("int64") + offset))
        miss.append(nodes["missing_go_to_left"].astype(bool) | leaf)
        values.append(np.where(leaf, nodes["value"], 0.0).astype("float64"))
        roots.append(offset)
        depth = max(depth, int(nodes["depth"].max()))
        offset += n
    return {"kind": np.asarray("trees"), "feature": np.concatenate(feats), "threshold": np.concatenate(thrs),
            "left": np.concatenate(lefts), "right": np.concatenate(rights), "missing_left": np.concatenate(miss),
            "value": np.concatenate(values), "roots": np.asarray(roots, dtype="int64"),
            "depth": np.asarray(depth, dtype="int64"),
            "baseline": np.asarray(float(np.ravel(est._baseline_prediction)[0]), dtype="float64")}


def compile_sklearn(pipe: Any, numeric: list[str], categorical: list[str]) -> Arrays:
    """Compile the scikit-learn trainer's fitted Pipeline.

    Raises:
        FastPathError: When a step is of a kind this compiler does not know.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if not hasattr(pipe, "steps") or len(pipe.steps) != 2:
        raise FastPathError(f"expected Pipeline([features, model]), got {type(pipe).__name__}")
    est = pipe.steps[1][1]
    if list(getattr(est, "classes_", [])) != [0, 1]:
        raise FastPathError("the estimator's classes are not [0, 1]")
    arrays = _sklearn_features(pipe, numeric, categorical)
    if isinstance(est, HistGradientBoostingClassifier):
        arrays.update(_trees(est))
    elif isinstance(est, LogisticRegression):
        coef = np.asarray(est.coef_, dtype="float64")
        if coef.shape[0] != 1:
            raise FastPathError("LogisticRegression is not binary")
        arrays.update({"kind": np.asarray("linear"), "coef": coef[0],
                       "intercept": np.asarray(float(est.intercept_[0]))})
    else:
        raise FastPathError(f"no compiler for estimator {type(est).__name__}")
    return arrays


def compile_torch(manifest: dict[str, Any], state: dict[str, Any]) -> Arrays:
    """Compile the torch MLP (``model.json``'s preprocessing and the saved weights) into float32 arrays."""
    try:
        pre = manifest["preprocessing"]
        arch = manifest["architecture"]
        arrays: Arrays = {"kind": np.asarray("mlp"),
                          "medians": np.asarray(pre["medians"], dtype="float64"),
                          "means": np.asarray(pre["means"], dtype="float64"),
                          "scales": np.asarray(pre["stds"], dtype="float64")}
        _vocab(arrays, [pre["vocabularies"][c] for c in pre["categorical"]])
        for j in range(len(pre["categorical"])):
            arrays[f"emb_{j}"] = state[f"embeddings.{j}.weight"].numpy().astype("float32")
        linear = sorted({int(k.split(".")[1]) for k in state if k.startswith("body.") and k.endswith(".weight")})
        if len(linear) != len(arch["hidden"]) + 1:
            raise FastPathError(f"expected {len(arch['hidden']) + 1} linear layers, found {len(linear)}")
        for i, idx in enumerate(linear):
            arrays[f"w_{i}"] = state[f"body.{idx}.weight"].numpy().astype("float32").T.copy()
            arrays[f"b_{i}"] = state[f"body.{idx}.bias"].numpy().astype("float32")
        arrays["layers"] = np.asarray(len(linear), dtype="int64")
    except (KeyError, TypeError, AttributeError) as exc:
        raise FastPathError(f"torch model cannot be compiled ({type(exc).__name__}: {exc})") from exc
    return arrays
