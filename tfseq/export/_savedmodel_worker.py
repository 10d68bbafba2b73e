"""Loads a SavedModel with ``tf.saved_model.load`` in a fresh process and runs it.

Run as ``python -I _savedmodel_worker.py IN.npz OUT_DIR SAVEDMODEL_DIR [--step]``;
writes ``OUT_DIR/0.npz`` and ``OUT_DIR/report.json``. With ``--step`` the signature ``step`` is
fed cycle by cycle from zero states (outputs stacked ``[n, steps, k]``).
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _step(fn: object, x: object, out_dir: str, path: str) -> int:
    import numpy as np
    import tensorflow as tf

    _, specs = fn.structured_input_signature  # type: ignore[attr-defined]
    states = {k: int(v.shape[-1]) for k, v in specs.items() if k != "features"}

    def replay(batch: np.ndarray) -> dict[str, np.ndarray]:
        state = {k: tf.zeros((len(batch), u), tf.float32) for k, u in states.items()}
        outs: dict[str, list[np.ndarray]] = {}
        for t in range(batch.shape[1]):
            out = fn(features=tf.constant(batch[:, t]), **state)  # type: ignore[operator]
            state = {k: out[f"new_{k}"] for k in states}
            for name, value in out.items():
                if not name.startswith("new_state_"):
                    outs.setdefault(name, []).append(value.numpy())
        return {k: np.stack(v, axis=1) for k, v in outs.items()}

    start = time.perf_counter()
    arrays = replay(np.asarray(x, dtype=np.float32))
    batched = time.perf_counter() - start
    one = {"features": tf.constant(np.asarray(x)[:1, 0]),
           **{k: tf.zeros((1, u), tf.float32) for k, u in states.items()}}
    for _ in range(5):
        fn(**one)  # type: ignore[operator]
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        fn(**one)  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    np.savez(f"{out_dir}/0.npz", **arrays)  # type: ignore[arg-type]
    with open(f"{out_dir}/report.json", "w") as handle:
        json.dump({"files": [{"path": path, "step_batch1_latency_us": float(np.median(times) * 1e6),
                              "replay_latency_ms": float(batched * 1e3), "batch_size": int(len(np.asarray(x))),
                              "steps": int(np.asarray(x).shape[1])}]}, handle)
    return 0


def main(argv: list[str]) -> int:
    import numpy as np
    import tensorflow as tf

    data_path, out_dir, path = argv[:3]
    x = np.load(data_path)["x"].astype(np.float32)
    if argv[3:] == ["--step"]:
        return _step(tf.saved_model.load(path).signatures["step"], x, out_dir, path)
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
