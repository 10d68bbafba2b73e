"""Runs .tflite files in the standalone LiteRT runtime with TensorFlow made unimportable.

Run as ``python -I _litert_worker.py IN.npz OUT_DIR [--step] FILE...``: a separate
process that imports only numpy and ai_edge_litert, as an edge test station
without TensorFlow would. Writes ``OUT_DIR/<i>.npz`` (outputs) and
``OUT_DIR/report.json`` (latency, delegate, whether TensorFlow was importable).

With ``--step`` the files are step artifacts (signature ``step``): the sequences are fed cycle
by cycle, every device starting from zero states, each step's ``new_state_*`` outputs fed back
as the next step's ``state_*`` inputs; the outputs are stacked ``[n, steps, k]``.
"""

import importlib.abc
import json
import os
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

#: Sequences per invoke for files with a dynamic batch axis (tfseq.export.runtimes.TFLITE_BATCH;
#: this worker imports nothing of tfseq, to run where TensorFlow cannot be imported).
BATCH = 128
THREADS = os.cpu_count() or 1


class _Block(importlib.abc.MetaPathFinder):
    BLOCKED = ("tensorflow", "tf_keras", "keras", "tensorflow_intel", "tf2onnx")

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> None:
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"{name} is blocked: the LiteRT check runs without TensorFlow")
        return None


sys.meta_path.insert(0, _Block())
for _name in list(sys.modules):
    if _name.split(".")[0] in _Block.BLOCKED:
        del sys.modules[_name]


def _interpreter(path: str) -> tuple[Any, Any, str, bool]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interpreter = Interpreter(model_path=path, num_threads=THREADS)
        runner = interpreter.get_signature_runner("serving_default")
        return interpreter, runner, "default (XNNPACK)", True
    except (RuntimeError, ValueError):
        pass
    interpreter = Interpreter(
        model_path=path, num_threads=THREADS,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    return interpreter, interpreter.get_signature_runner("serving_default"), "builtin kernels", False


def _step_main(x: Any, out_dir: str, paths: list[str], report: dict[str, Any]) -> None:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    for i, path in enumerate(paths):
        delegate = "default (XNNPACK)"
        try:
            runner = Interpreter(model_path=path, num_threads=THREADS).get_signature_runner("step")
        except (RuntimeError, ValueError):
            runner = Interpreter(
                model_path=path, num_threads=THREADS,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            ).get_signature_runner("step")
            delegate = "builtin kernels"
        details = runner.get_input_details()
        states = {k: int(v["shape_signature"][-1]) for k, v in details.items() if k != "features"}

        def replay(batch: Any) -> dict[str, Any]:
            state = {k: np.zeros((len(batch), u), dtype=np.float32) for k, u in states.items()}
            outs: dict[str, list[Any]] = {}
            for t in range(batch.shape[1]):
                out = runner(features=np.ascontiguousarray(batch[:, t]), **state)
                state = {k: out[f"new_{k}"] for k in states}
                for name, value in out.items():
                    if not name.startswith("new_state_"):
                        outs.setdefault(name, []).append(np.asarray(value))
            return {k: np.stack(v, axis=1) for k, v in outs.items()}

        start = time.perf_counter()
        arrays = replay(x)
        batched = time.perf_counter() - start
        one = {"features": x[:1, 0], **{k: np.zeros((1, u), dtype=np.float32) for k, u in states.items()}}
        for _ in range(20):
            runner(**one)
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            runner(**one)
            times.append(time.perf_counter() - t0)
        np.savez(f"{out_dir}/{i}.npz", **arrays)
        report["files"].append({
            "path": path,
            "delegate": delegate,
            "step_batch1_latency_us": float(np.median(times) * 1e6),
            "replay_latency_ms": float(batched * 1e3),
            "batch_size": int(len(x)),
            "steps": int(x.shape[1]),
        })


def main(argv: list[str]) -> int:
    import numpy as np

    step = len(argv) > 2 and argv[2] == "--step"
    data_path, out_dir, paths = argv[0], argv[1], argv[3:] if step else argv[2:]
    x = np.load(data_path)["x"].astype(np.float32)
    try:
        import tensorflow  # noqa: F401

        tensorflow_importable = True
    except ImportError:
        tensorflow_importable = False
    files: list[dict[str, Any]] = []
    report = {"tensorflow_importable": tensorflow_importable,
              "tensorflow_loaded": any(m.split(".")[0] == "tensorflow" for m in sys.modules),
              "files": files}
    if step:
        _step_main(x, out_dir, paths, report)
        paths = []
    for i, path in enumerate(paths):
        _, runner, delegate, _ = _interpreter(path)
        try:
            runner(sequence=x[:1])
        except RuntimeError:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType

            interpreter = Interpreter(
                model_path=path, num_threads=THREADS,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            runner, delegate = interpreter.get_signature_runner("serving_default"), "builtin kernels"
        signature = runner.get_input_details()["sequence"]["shape_signature"]
        batch = BATCH if int(signature[0]) == -1 else 1
        outputs: dict[str, list[np.ndarray]] = {}
        start = time.perf_counter()
        for row in range(0, len(x), batch):
            out = runner(sequence=x[row:row + batch])
            for name, value in out.items():
                outputs.setdefault(name, []).append(np.asarray(value))
        batched = time.perf_counter() - start
        one = x[:1]
        for _ in range(5):
            runner(sequence=one)
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            runner(sequence=one)
            times.append(time.perf_counter() - t0)
        arrays = {k: np.concatenate(v) for k, v in outputs.items()}
        np.savez(f"{out_dir}/{i}.npz", **arrays)  # type: ignore[arg-type]  # mypy: **arrays may hit allow_pickle
        files.append({
            "path": path,
            "delegate": delegate,
            "batch1_latency_ms": float(np.median(times) * 1e3),
            "batched_latency_ms": float(batched * 1e3),
            "batch_size": int(len(x)),
            "invoke_batch": batch,
        })
    with open(f"{out_dir}/report.json", "w") as handle:
        json.dump(report, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
