"""The torch training loop: tensors on the device, index batching, checkpoints, resume, SIGTERM.

Determinism: the validation split, the weight init and every epoch's batch order derive from the
seed; dropout draws from the global torch RNG whose state is checkpointed. A run resumed from a
checkpoint therefore replays exactly what the uninterrupted run would have done (bitwise on CPU).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.errors import DataError, TrainingInterrupted
from ctloop.model import MANIFEST, MODEL_FORMAT, prepare_frame
from ctloop.profile import compute_profile
from ctloop.schema import Schema
from ctloop.torch_trainer.checkpoint import CheckpointStore
from ctloop.torch_trainer.params import TorchParams, parse_torch_params
from ctloop.torch_trainer.preprocess import Preprocessor

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
WEIGHTS_FILE = "model.pt"
StepCallback = Callable[[int], Any]
EpochCallback = Callable[[dict[str, float]], None]


def fingerprint(train: pd.DataFrame, columns: list[str], params: TorchParams, seed: int) -> str:
    """Identity of a training job: same data, params and seed → same checkpoint folder."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CHECKPOINT_VERSION, "params": params.model_dump(), "seed": seed,
                         "columns": columns}, sort_keys=True).encode())
    h.update(pd.util.hash_pandas_object(train[columns], index=False).to_numpy().tobytes())
    return h.hexdigest()


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train_idx, val_idx)``; both non-empty."""
    if n < 2:
        raise DataError(f"training split has {n} row(s); the torch trainer needs at least 2")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * fraction)), n - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class _StopFlag:
    """Set by SIGTERM (or a step callback): checkpoint at the next step boundary and stop."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def on_sigterm(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            self.requested = True

        previous = signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


def _device(params: TorchParams) -> Any:
    import torch

    if params.device == "cuda" or (params.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


class _Progress:
    """A rich progress bar over epochs (and the batches of the current epoch) on stderr."""

    def __init__(self, enabled: bool, epochs: int, batches: int) -> None:
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(file=sys.stderr), transient=False)
            self.epochs = self.bar.add_task("epochs", total=epochs)
            self.batches = self.bar.add_task("epoch 1", total=batches)

    def __enter__(self) -> _Progress:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def set(self, epoch: int, batch: int, n_batches: int) -> None:
        if self.bar:
            self.bar.update(self.epochs, completed=epoch)
            if batch == 0 and epoch > 0:  # an epoch just ended: show it complete until the next starts
                epoch, batch = epoch - 1, n_batches
            self.bar.update(self.batches, completed=batch, description=f"epoch {epoch + 1}")


def train_torch(
    train: pd.DataFrame,
    schema: Schema,
    params: dict[str, Any] | TorchParams,
    seed: int,
    out_dir: str | Path,
    checkpoint_uri: str | None = None,
    checkpoint_every: int = 50,
    checkpoint_keep: int = 3,
    on_step: StepCallback | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = False,
    handle_sigterm: bool = True,
) -> dict[str, Any]:
    """Train the tabular MLP, resuming from the newest valid checkpoint; save the model folder.

    Args:
        train: The training split (features and target).
        schema: Column roles.
        params: ``model.params`` (validated here).
        seed: ``model.seed``.
        out_dir: Model folder to write (``model.json``, ``model.pt``, ``profile.json``).
        checkpoint_uri: Folder URI for checkpoints; a sub-folder per job fingerprint is used. ``None``
            disables checkpointing.
        checkpoint_every: Write a checkpoint every N optimiser steps (and on SIGTERM, and at the end).
        checkpoint_keep: Newest checkpoints to keep.
        on_step: Called with the global step after each optimiser step; a truthy return requests a stop
            (as SIGTERM does).
        on_epoch: Called with each epoch's metrics.
        progress: Show a progress bar on stderr.
        handle_sigterm: Install a SIGTERM handler (main thread only) for the duration of training.

    Returns:
        The manifest written to ``model.json``.

    Raises:
        TrainingInterrupted: After SIGTERM (or a stop request): the checkpoint is written; rerun to resume.
        DataError: When the split cannot train (one class, too few rows).
        ConfigError: On bad ``model.params``.
    """
    import torch

    from ctloop.torch_trainer.net import TabularMLP, architecture

    p = params if isinstance(params, TorchParams) else parse_torch_params(params)
    num_cols, cat_cols, target = schema.numeric_features, schema.categorical_features, schema.target
    if target not in train.columns:
        raise DataError(f"training split has no target column {target!r}")
    y_all = train[target]
    if y_all.nunique() < 2:
        raise DataError(f"training split has a single class in {target!r}; cannot train")
    frame = prepare_frame(train, num_cols, cat_cols)
    fp = fingerprint(train, num_cols + cat_cols + [target], p, seed)
    tr_idx, va_idx = split_validation(len(frame), p.validation_fraction, seed)
    pre = Preprocessor.fit(frame.iloc[tr_idx], num_cols, cat_cols)
    num, cat = pre.transform(frame)
    y = y_all.to_numpy(dtype="float32")

    device = _device(p)
    use_amp = p.amp and device.type == "cuda"
    det_before = torch.are_deterministic_algorithms_enabled()
    threads_before = torch.get_num_threads()
    if device.type == "cpu" and p.cpu_threads:
        torch.set_num_threads(p.cpu_threads)  # small MLPs: more threads only add contention
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)

    def to_dev(a: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a[idx])).to(device)

    xn, xc, yt = to_dev(num, tr_idx), to_dev(cat, tr_idx), to_dev(y, tr_idx)
    vn, vc, vy = to_dev(num, va_idx), to_dev(cat, va_idx), to_dev(y, va_idx)
    n = len(tr_idx)
    bs = min(p.batch_size, n)
    n_batches = (n + bs - 1) // bs

    arch = architecture(len(num_cols), pre.cardinalities, p.embedding_dim, p.hidden, p.dropout)
    net = TabularMLP(**arch).to(device)  # type: ignore[arg-type]
    opt = torch.optim.AdamW(net.parameters(), lr=p.learning_rate, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5,
                                                       patience=max(1, p.patience // 2))
    loss_fn = torch.nn.BCEWithLogitsLoss()

    st: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "done": False, "best_val": float("inf"),
                          "best_epoch": -1, "bad_epochs": 0, "history": [],
                          "loss_sum": torch.zeros((), device=device, dtype=torch.float64)}
    best_state: dict[str, torch.Tensor] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

    store = None
    run_uri = None
    resumed_from = None
    if checkpoint_uri:
        run_uri = f"{checkpoint_uri.rstrip('/')}/{fp[:16]}"
        store = CheckpointStore(run_uri, keep=checkpoint_keep)
        loaded = store.load_latest()
        if loaded is not None and loaded.state.get("fingerprint") != fp:
            log.warning("ignoring checkpoint %s: it belongs to another job", loaded.path)
            loaded = None
        if loaded is not None:
            s = loaded.state
            net.load_state_dict(s["model"])
            opt.load_state_dict(s["optimizer"])
            sched.load_state_dict(s["scheduler"])
            best_state = s["best_state"]
            for k in ("step", "epoch", "batch", "done", "best_val", "best_epoch", "bad_epochs", "history"):
                st[k] = s[k]
            st["loss_sum"] = s["loss_sum"].to(device)
            torch.set_rng_state(s["rng_cpu"])
            if device.type == "cuda" and s.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(s["rng_cuda"])
            resumed_from = loaded.step
            log.info("resumed from checkpoint %s (step %d, epoch %d)", loaded.path, loaded.step, st["epoch"])

    ckpt_seconds = 0.0

    def save(background: bool) -> None:
        """Periodic checkpoints are written in the background; the last one (stop/done) synchronously."""
        nonlocal ckpt_seconds
        if store is None:
            return
        t = time.perf_counter()
        state = {"version": CHECKPOINT_VERSION, "fingerprint": fp, **{k: st[k] for k in st},
                 "model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "best_state": best_state, "rng_cpu": torch.get_rng_state(),
                 "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None}
        if background:
            store.save_async(int(st["step"]), state)
        else:
            store.flush()
            store.save(int(st["step"]), state)
        ckpt_seconds += time.perf_counter() - t

    def evaluate() -> tuple[float, float]:
        net.eval()
        total, correct = torch.zeros((), dtype=torch.float64, device=device), 0
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            for i in range(0, len(vy), 4096):
                logits = net(vn[i:i + 4096], vc[i:i + 4096]).float()
                target_b = vy[i:i + 4096]
                total += torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, target_b, reduction="sum").double()
                correct += int(((logits >= 0).float() == target_b).sum())
        net.train()
        return float(total) / len(vy), correct / len(vy)

    stop = _StopFlag()
    perm: torch.Tensor | None = None
    perm_epoch = -1
    t_train = time.perf_counter()
    net.train()
    try:
        with stop.on_sigterm(handle_sigterm), _Progress(progress, p.max_epochs, n_batches) as bar:
            while not st["done"]:
                if perm_epoch != st["epoch"]:
                    g = torch.Generator().manual_seed(seed * 1_000_003 + int(st["epoch"]))
                    perm = torch.randperm(n, generator=g).to(device)
                    perm_epoch = st["epoch"]
                assert perm is not None
                b = int(st["batch"])
                idx = perm[b * bs:(b + 1) * bs]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    loss = loss_fn(net(xn[idx], xc[idx]).float(), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                st["loss_sum"] += loss.detach().double()
                st["step"] += 1
                st["batch"] += 1
                if st["batch"] == n_batches:
                    val_loss, val_acc = evaluate()
                    sched.step(val_loss)
                    row = {"epoch": int(st["epoch"]) + 1, "train_loss": float(st["loss_sum"]) / n_batches,
                           "val_loss": val_loss, "val_accuracy": val_acc, "lr": opt.param_groups[0]["lr"]}
                    st["history"].append(row)
                    if val_loss < st["best_val"]:
                        st["best_val"], st["best_epoch"], st["bad_epochs"] = val_loss, row["epoch"], 0
                        best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                    else:
                        st["bad_epochs"] += 1
                    st["epoch"] += 1
                    st["batch"] = 0
                    st["loss_sum"] = torch.zeros((), device=device, dtype=torch.float64)
                    st["done"] = st["epoch"] >= p.max_epochs or st["bad_epochs"] >= p.patience
                    log.info("epoch %d/%d train_loss=%.5f val_loss=%.5f val_accuracy=%.4f", row["epoch"],
                             p.max_epochs, row["train_loss"], val_loss, val_acc)
                    if on_epoch:
                        on_epoch(row)
                bar.set(int(st["epoch"]), int(st["batch"]), n_batches)
                if on_step and on_step(int(st["step"])):
                    stop.requested = True
                if st["done"] or stop.requested:
                    save(background=False)
                elif st["step"] % checkpoint_every == 0:
                    save(background=True)
                if stop.requested and not st["done"]:
                    raise TrainingInterrupted(
                        f"training stopped at step {st['step']} (SIGTERM); checkpoint written to {run_uri}. "
                        "Run the step again to resume from it.")
    finally:
        if store is not None:
            store.close()
        torch.use_deterministic_algorithms(det_before)
        torch.set_num_threads(threads_before)

    train_seconds = time.perf_counter() - t_train
    net.load_state_dict(best_state)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cpu_state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(cpu_state, out / WEIGHTS_FILE)
    manifest = {
        "format": MODEL_FORMAT,
        "trainer": "torch",
        "params": p.model_dump(),
        "seed": seed,
        "numeric_features": num_cols,
        "categorical_features": cat_cols,
        "target": target,
        "classes": [0, 1],
        "train_rows": int(len(train)),
        "fit_rows": int(n),
        "validation_rows": int(len(va_idx)),
        "architecture": arch,
        "preprocessing": pre.to_dict(),
        "weights": WEIGHTS_FILE,
        "weights_sha256": hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest(),
        "history": st["history"],
        "best_epoch": int(st["best_epoch"]),
        "best_val_loss": float(st["best_val"]),
        "epochs_run": int(st["epoch"]),
        "steps": int(st["step"]),
        "device": device.type,
        "cpu_threads": p.cpu_threads if device.type == "cpu" else None,
        "amp": use_amp,
        "torch_version": torch.__version__,
        "fingerprint": fp,
        "checkpoint": {"uri": run_uri, "resumed_from_step": resumed_from, "every_steps": checkpoint_every},
        "timing": {"train_seconds": round(train_seconds, 4), "checkpoint_seconds": round(ckpt_seconds, 4)},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    compute_profile(train, num_cols, cat_cols, target).save(out)
    from ctloop.fastpath.artifact import export_fast_path
    from ctloop.train import FAST_PATH_CHECK_ROWS

    manifest["fast_path"] = export_fast_path(out, train.head(FAST_PATH_CHECK_ROWS))
    return manifest
