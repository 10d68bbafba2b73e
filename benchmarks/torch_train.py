"""What `tfseq train` does, as a plain PyTorch script: the baseline of ``benchmarks/bench_commands.py``.

Reads the long-format CSV or Parquet file, splits 80/20 by device, normalises with the training
statistics, trains the same network as tfseq's default (LSTM, final states, dropout 0.2, dense 32
ReLU, one logit; Adam 1e-3, gradient norm clipped at 1, class-balanced loss), validates after
every epoch, restores the best epoch and saves it. Equal-length sequences, so no packing.

    python benchmarks/torch_train.py DATA --out DIR [--units 64] [--no-bidirectional] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


class Net(torch.nn.Module):
    def __init__(self, features: int, units: int, bidirectional: bool):
        super().__init__()
        self.units, self.bidirectional = units, bidirectional
        self.rnn = torch.nn.LSTM(features, units, batch_first=True, bidirectional=bidirectional)
        self.head = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(units * (1 + bidirectional), 32),
                                        torch.nn.ReLU(), torch.nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        last = torch.cat([out[:, -1, :self.units], out[:, 0, self.units:]], -1) if self.bidirectional else out[:, -1]
        return self.head(last).squeeze(-1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("data", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--no-bidirectional", dest="bidirectional", action="store_false")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    a = p.parse_args(argv)
    torch.manual_seed(0)
    frame = pd.read_parquet(a.data) if a.data.suffix == ".parquet" else pd.read_csv(a.data)
    frame = frame.sort_values(["device_id", "cycle"])
    features = [c for c in frame.columns if c not in ("device_id", "cycle", "status")]
    n = frame["device_id"].nunique()
    x = frame[features].to_numpy(np.float32).reshape(n, -1, len(features))
    y = (frame.groupby("device_id", sort=True)["status"].first() == "fail").to_numpy(np.float32)
    order = np.random.default_rng(0).permutation(n)
    train, val = order[: int(n * 0.8)], order[int(n * 0.8):]
    mean, std = x[train].mean((0, 1)), x[train].std((0, 1)) + 1e-6
    tx, ty = torch.from_numpy((x - mean) / std), torch.from_numpy(y)
    model = Net(len(features), a.units, a.bidirectional)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    positive = float(y[train].mean())
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - positive) / positive))
    best, best_state, epochs = float("inf"), None, []
    for _ in range(a.epochs):
        started = time.perf_counter()
        model.train()
        shuffled = torch.from_numpy(train)[torch.randperm(len(train))]
        for i in range(0, len(train), a.batch_size):
            idx = shuffled[i:i + a.batch_size]
            optimizer.zero_grad()
            loss_fn(model(tx[idx]), ty[idx]).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        fitted = time.perf_counter()
        model.eval()
        with torch.inference_mode():
            logits = torch.cat([model(tx[val[i:i + 1024]]) for i in range(0, len(val), 1024)])
            val_loss = float(loss_fn(logits, ty[val]))
        accuracy = float(((logits > 0).float() == ty[val]).float().mean())
        epochs.append({"train_seconds": fitted - started, "seconds": time.perf_counter() - started,
                       "val_loss": val_loss, "val_accuracy": accuracy})
        if val_loss < best:
            best, best_state = val_loss, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state or model.state_dict())
    a.out.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "mean": mean, "std": std, "units": a.units,
                "bidirectional": a.bidirectional, "features": len(features)}, a.out / "model.pt")
    (a.out / "metrics.json").write_text(json.dumps({"train_sequences": len(train), "epochs": epochs}, indent=2))
    print(f"validation accuracy {epochs[-1]['val_accuracy']:.3f}, best val loss {best:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
