"""One training process of tests/test_distribute.py: single, or a worker under TF_CONFIG."""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
keras.config.disable_traceback_filtering()

from tfseq.data.splits import split_sequences  # noqa: E402
from tfseq.data.synthetic import make_semiconductor_data  # noqa: E402
from tfseq.evaluation import classification_metrics  # noqa: E402
from tfseq.models.builders import build_model  # noqa: E402
from tfseq.models.spec import ModelSpec  # noqa: E402
from tfseq.training.distribute import is_chief, make_strategy  # noqa: E402
from tfseq.training.fit import fit  # noqa: E402

out, strategy_name, epochs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
train, val, test = split_sequences(make_semiconductor_data(800, n_cycles=10, seed=4), seed=0)
strategy = make_strategy(strategy_name)
with strategy.scope():
    model = build_model(ModelSpec(cell="gru", units=(8,), precision=os.environ.get("PRECISION", "float32")),
                        n_features=15, adapt=train.x, seed=0)
history = fit(model, train.x, train.y, validation_data=(val.x, val.y), epochs=epochs, batch_size=32,
              patience=epochs, run_dir=out, seed=0, strategy=strategy, verbose=0)
probabilities = model.predict(test.x, verbose=0)["binary"]  # every worker: predict is collective too
if is_chief():
    metrics = classification_metrics(test.y, probabilities)
    (out / "result.json").write_text(json.dumps({
        "accuracy": metrics["accuracy"], "epochs": len(history.history["loss"]),
        "replicas": strategy.num_replicas_in_sync}))
