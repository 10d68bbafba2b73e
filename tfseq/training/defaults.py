"""The defaults of ``tfseq train``: a model and training settings that hold up on real data.

(:func:`tfseq.workflows.train.train_run` trains them into a RUN directory.)

Users run ``tfseq train`` without tuning, so these are chosen for real
multivariate sensor and speech-like sequences of variable length (see
docs/design/defaults.md, "How the defaults were chosen"), not for the synthetic set:

* normalisation inside the model (per-feature mean / variance of the training
  steps, padding left out) and masking of the zero padding;
* one bidirectional LSTM layer of 64 units whose two final states (forward
  after the last valid step, backward after the first) feed a 32-unit ReLU
  layer, dropout 0.2 before the head; no recurrent dropout, which would rule
  out the fused cuDNN / TF Lite kernels. It follows the small recurrent
  baselines published for the UEA multivariate archive (not reproduced here:
  the archive cannot be downloaded on our machines), it beat attention or mean
  pooling and a unidirectional LSTM on our stand-in data sets, and it exports: with masking, bidirectional layers that return sequences (attention
  or mean pooling) fail the TF Lite parity check, final states pass;
* Adam at 1e-3 with gradient clipping (norm 1), halved on plateaus, up to 100
  epochs with early stopping (patience 10) restoring the best epoch, batch 64
  (benchmark training sets hold hundreds to a few thousand sequences) and
  class-balanced sample weights.
"""

from __future__ import annotations

from tfseq.models.spec import HeadSpec, ModelSpec


def default_spec(task: str, *, num_classes: int = 2, horizon: int = 1) -> ModelSpec:
    """The default :class:`ModelSpec` of ``tfseq train`` for ``task``.

    Args:
        task: ``binary``, ``multiclass``, ``regression`` or ``forecast``.
        num_classes: Classes of a multiclass task.
        horizon: Future values of a forecast.
    """
    head = HeadSpec(kind=task, num_classes=num_classes if task == "multiclass" else 2, horizon=horizon)
    return ModelSpec(
        cell="lstm",
        units=(64,),
        bidirectional=True,
        dropout=0.2,
        recurrent_dropout=0.0,
        pooling="last",
        dense_units=32,
        masking=True,
        learning_rate=1e-3,
        clipnorm=1.0,
        heads=(head,),
        precision="auto",
    )
