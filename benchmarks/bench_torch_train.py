"""Benchmark: torch trainer throughput vs a naive per-row Dataset + DataLoader loop, and checkpoint overhead.

Both loops train the same MLP (same preprocessing, optimiser, batch size 256) on the same data in the
same process. Prints samples/s for each, the ratio, and the checkpoint overhead as a % of epoch time.

    python benchmarks/bench_torch_train.py [--rows 40000] [--epochs 3] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time

import numpy as np
import pandas as pd
import torch

from ctloop.datagen import generate_day
from ctloop.model import prepare_frame
from ctloop.project import example_schema
from ctloop.torch_trainer.net import TabularMLP
from ctloop.torch_trainer.preprocess import Preprocessor
from ctloop.torch_trainer.trainer import split_validation, train_torch


class RowDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The naive baseline: one Python ``__getitem__`` per sample."""

    def __init__(self, num: np.ndarray, cat: np.ndarray, y: np.ndarray) -> None:
        self.num, self.cat, self.y = num, cat, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        return torch.from_numpy(self.num[i]), torch.from_numpy(self.cat[i]), torch.tensor(self.y[i])


def naive_loop(frame: pd.DataFrame, params: dict, epochs: int, device: torch.device, seed: int) -> float:
    """Train with DataLoader over a per-row Dataset; return samples/s."""
    schema = example_schema()
    num_cols, cat_cols = schema.numeric_features, schema.categorical_features
    prepared = prepare_frame(frame, num_cols, cat_cols)
    tr_idx, _ = split_validation(len(prepared), params["validation_fraction"], seed)
    pre = Preprocessor.fit(prepared.iloc[tr_idx], num_cols, cat_cols)
    num, cat = pre.transform(prepared.iloc[tr_idx])
    y = frame[schema.target].to_numpy(dtype="float32")[tr_idx]
    torch.manual_seed(seed)
    net = TabularMLP(len(num_cols), pre.cardinalities, params["embedding_dim"], params["hidden"],
                     params["dropout"]).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=params["learning_rate"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = torch.utils.data.DataLoader(RowDataset(num, cat, y), batch_size=256, shuffle=True)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for xn, xc, yb in loader:
            xn, xc, yb = xn.to(device), xc.to(device), yb.to(device)
            loss = loss_fn(net(xn, xc), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(y) * epochs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=40000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--every", type=int, default=50, help="checkpoint every N steps")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for both loops (0: torch default)")
    args = ap.parse_args()
    days = max(1, args.rows // 5000)
    frame = pd.concat([generate_day(dt.date(2026, 1, 1) + dt.timedelta(d), args.rows // days, 11)
                       for d in range(days)], ignore_index=True)
    params = {"hidden": [64, 32], "embedding_dim": 4, "dropout": 0.1, "batch_size": 256,
              "max_epochs": args.epochs, "patience": args.epochs + 1, "learning_rate": 3e-3,
              "validation_fraction": 0.15, "device": args.device,
              "cpu_threads": args.threads}
    schema = example_schema()
    with tempfile.TemporaryDirectory() as tmp:
        plain = train_torch(frame, schema, params, 0, f"{tmp}/a", handle_sigterm=False)
        ckpt = train_torch(frame, schema, params, 0, f"{tmp}/b", checkpoint_uri=f"{tmp}/ckpt",
                           checkpoint_every=args.every, handle_sigterm=False)
    device = torch.device(plain["device"])
    if device.type == "cpu":
        torch.set_num_threads(plain["params"]["cpu_threads"] or torch.get_num_threads())  # same as ours
    ours = plain["fit_rows"] * plain["epochs_run"] / plain["timing"]["train_seconds"]
    naive = naive_loop(frame, params, args.epochs, device, 0)
    t = ckpt["timing"]
    steps_per_epoch = ckpt["steps"] / ckpt["epochs_run"]
    epoch_s = (t["train_seconds"] - t["checkpoint_seconds"]) / ckpt["epochs_run"]
    out = {
        "device": device.type, "amp": plain["amp"], "torch": torch.__version__,
        "threads": torch.get_num_threads(), "rows": len(frame), "fit_rows": plain["fit_rows"],
        "epochs": args.epochs, "batch_size": 256,
        "ours_samples_per_s": round(ours), "naive_samples_per_s": round(naive),
        "speedup_vs_naive": round(ours / naive, 2),
        "checkpoint_every_steps": args.every, "steps_per_epoch": round(steps_per_epoch, 1),
        "epoch_seconds_without_checkpoints": round(epoch_s, 4),
        "checkpoint_seconds_total": t["checkpoint_seconds"],
        "checkpoint_overhead_pct_of_epoch": round(
            100 * t["checkpoint_seconds"] / (epoch_s * ckpt["epochs_run"]), 2),
        "weights_equal_with_and_without_checkpoints": plain["weights_sha256"] == ckpt["weights_sha256"],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
