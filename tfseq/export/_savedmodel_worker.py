"""Loads a SavedModel with ``tf.saved_model.load`` in a fresh process and runs it.

Run as ``python -I _savedmodel_worker.py IN.npz OUT_DIR SAVEDMODEL_DIR``;
writes ``OUT_DIR/0.npz`` and ``OUT_DIR/report.json``.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str]) -> int:
    import numpy as np
    import tensorflow as tf

    data_path, out_dir, path = argv
    x = np.load(data_path)["x"].astype(np.float32)
    fn = tf.saved_model.load(path).signatures["serving_default"]
    start = time.perf_counter()
    out = fn(sequence=tf.constant(x))
    batched = time.perf_counter() - start
    start = time.perf_counter()
    out = fn(sequence=tf.constant(x))
    batched = min(batched, time.perf_counter() - start)
    one = tf.constant(x[:1])
    for _ in range(3):
        fn(sequence=one)
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        fn(sequence=one)
        times.append(time.perf_counter() - t0)
    np.savez(f"{out_dir}/0.npz", **{k: v.numpy() for k, v in out.items()})
    with open(f"{out_dir}/report.json", "w") as handle:
        json.dump({"files": [{"path": path, "batch1_latency_ms": float(np.median(times) * 1e3),
                              "batched_latency_ms": float(batched * 1e3),
                              "batch_size": int(len(x))}]}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
