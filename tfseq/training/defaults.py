"""The defaults of ``tfseq train``: a model and training settings that hold up on real data.

(:func:`tfseq.workflows.train.train_run` trains them into a RUN directory.)

Users run ``tfseq train`` without tuning, on data of every shape: short parametric cycles, long
equipment traces, a few dozen sequences, regression targets, series to forecast. The defaults
were measured on real public data sets against simple baselines (``benchmarks/realdata.py``;
docs/design/defaults.md, "How the defaults were chosen"):

* normalisation inside the model (per-feature mean / variance of the training steps, padding left
  out); masking only when sequences differ in length (``variable_length``): data of one length
  have no padding, and a step whose features are all 0 stays data;
* one bidirectional LSTM layer of 64 units on final states, beside a convolutional branch
  (32-64-32 filters, an FCN averaged over the real steps) and a summary branch (per-feature mean,
  std, min, max, slope, 32 quantiles and the means of 32 equal parts: what the simple baselines
  see), into a 32-unit ReLU layer and dropout 0.2;
* on small data sets (under :data:`SMALL_DATA` steps, sequences x the steps the convolutional
  branch reads), about :data:`RANDOM_FEATURES` random convolutional features (MiniRocket's
  kernels, half of them on the first differences) beside the summary branch in the linear path,
  and for classes :data:`COMPETING_GROUPS` groups of competing kernels per dilation (Hydra's);
* a linear path on the summary branch into every head, fitted by ridge regression when the model
  is built and frozen: the model starts at the best linear fit and the network learns what it
  misses (``tfseq train`` then keeps :data:`NETWORK_SHARE` of the network's part, or the fit
  alone unless that lowered the validation loss by more than :data:`NETWORK_EVIDENCE` standard
  errors, and refits the path on training and validation sequences together);
* long sequences are averaged in groups before the recurrent layers (at most
  :data:`RECURRENT_STEPS` steps) and the convolutional branch (:data:`CONV_STEPS`);
* forecasts: the recurrent layers read the window relative to its last step, and the linear path
  is a ridge autoregression on the window;
* Adam at 1e-3 with gradient clipping (norm 1), halved on plateaus, early stopping restoring the
  best epoch (:func:`training_budget`: up to 300 epochs with patience 30 under
  :data:`SMALL_DATA` training steps, else 100 and 10), batch 64 and class-balanced sample
  weights; no recurrent dropout, which would rule out the fused cuDNN / TF Lite kernels.
"""

from __future__ import annotations

from tfseq.models.spec import HeadSpec, ModelSpec

#: Steps the recurrent layers read at most: longer sequences are averaged in groups first.
RECURRENT_STEPS = 128
#: Steps the convolutional branch reads at most.
CONV_STEPS = 512
#: Equal parts of a sequence in the summary branch (forecast windows: every step, up to this).
SEGMENTS = 32
FORECAST_SEGMENTS = 96
#: Random convolutional features of the linear path on small data sets (MiniRocket's kernels; its
#: authors use 10,000, about 3.7 biases per kernel and dilation): half on the steps and half on their
#: first differences (MultiRocket's second representation), at least three biases per kernel and
#: dilation (``RandomConvolutions(min_biases=3)``). Means of 3 seeds, against 2,000 at one bias each:
#: ArrowHead 0.832 -> 0.848, PickupGestureWiimoteZ 0.907 -> 0.933, ACSF1 0.907 -> 0.913, ACSF1x5
#: 0.810 -> 0.847 (84 s a seed, 65 before), Tecator RMSE 0.608 -> 0.540, JapaneseVowels 0.990 ->
#: 0.992, ItalyPowerDemand 0.962 -> 0.963, OSULeaf, GunPoint and BasicMotions the same,
#: CardanoSentiment 0.2975 -> 0.2976, Covid3Month 0.0411 -> 0.0414. 9,000 (MiniRocket's scale):
#: ArrowHead 0.859 but PickupGestureWiimoteZ 0.913, ACSF1 0.907, ACSF1x5 0.823 (106 s), OSULeaf
#: 0.986. 6,000 over more dilations at one bias each (the rule before): ArrowHead 0.838,
#: PickupGestureWiimoteZ 0.860.
RANDOM_FEATURES = 6000
#: Groups of 8 competing random kernels (Hydra) per dilation and representation beside the random
#: features in a small classification set's linear path (Hydra's 64 groups, half on the first
#: differences). Means of 3 seeds, against the random features alone: PickupGestureWiimoteZ 0.827 ->
#: 0.913, OSULeaf 0.952 -> 0.989, ACSF1 0.870 -> 0.907, GunPoint 0.984 -> 1.000, ItalyPowerDemand
#: 0.964 -> 0.962, ArrowHead 0.846 -> 0.832 (one seed's network 0.817). Not for regression: they
#: count which shape wins, for classes (not measured on the regression sets).
COMPETING_GROUPS = 32
#: A head beside a fitted linear path answers with the fit plus this share of its trained network's
#: part, an ensemble of the two: a regression or forecast head the mean of the fit alone and of the
#: fit plus the network, a classifier (whose parts add in logits) the normalised geometric mean of
#: their probabilities. Rolling-origin forecasts and CardanoSentiment (3 seeds, against the whole
#: part): sunspots MAE 14.23 -> 13.53, usmelec 8.64 -> 8.60, a10 1.210 -> 1.208, CardanoSentiment
#: RMSE 0.304 -> 0.297, co2 0.2686 -> 0.2690, taylor 146 -> 152, Covid3Month and Tecator unchanged;
#: validation chose the whole part every time it was offered the half (it also stopped the training).
#: Classifiers (the same seeds, against the whole part): ArrowHead 0.848 -> 0.859 (the seed that
#: keeps its network 0.834 -> 0.869), ItalyPowerDemand 0.963 -> 0.964, PickupGestureWiimoteZ 0.933
#: -> 0.940, JapaneseVowels 0.992 -> 0.990, ACSF1 0.913 -> 0.907 (one seed now keeps a network that
#: led by 1.14 standard errors, 0.92 -> 0.90), GunPoint, OSULeaf, BasicMotions and ACSF1x5 the same.
NETWORK_SHARE = 0.5
#: Tasks whose network, on a small data set (:func:`is_small`), trains again on the training and
#: validation sequences together for the epochs validation chose, beside the linear path refit on
#: them: forecasts, whose validation windows are the latest, which a network trained without them
#: has never seen (forecasting practice refits on everything before the origin). Rolling origins,
#: 3 each, against the network of the training windows alone: sunspots MAE 13.53 -> 13.22, usmelec
#: 8.60 -> 8.51, a10 1.208 -> 1.206, co2 0.2690 -> 0.2689; keeping the second training's last epoch
#: (not the one of its lowest training loss): sunspots 13.18, usmelec 8.49, a10 1.207, co2 0.2689. Not regression, whose validation is a
#: random fifth: Tecator RMSE 0.607 -> 0.663 (CardanoSentiment 0.2973 -> 0.2964, Covid3Month 0.0411
#: -> 0.0407); nor classifiers: ArrowHead (36 training sequences, 7 of them validation) 0.846 ->
#: 0.798, one seed 0.686, the epochs chosen on a handful of sequences not carrying over.
TRAINED_AGAIN = ("forecast",)
#: ``tfseq train`` keeps a trained network beside its linear path only when it lowers the
#: validation loss by more than this many standard errors of the sequences' loss differences from
#: the fit alone (at 0: by anything): early stopping chose the network's epoch on those same
#: sequences, so a smaller lead is as likely luck. Means of 3 seeds / rolling origins, against 0:
#: a10 MAE 1.2070 -> 1.2049, a tie with the ridge autoregression (its networks had led by 0.40 and
#: 0.65 standard errors, and lost on the held-out stretches by 0.5 % and 0.2 %);
#: PickupGestureWiimoteZ 0.913 -> 0.907 (one test sequence of 50, one seed); sunspots, co2, usmelec,
#: taylor, the three regression sets and the other seven classification sets unchanged: 8 more runs
#: kept the fit alone, with the same test scores; every kept network had led by 1.0 to 5.5.
NETWORK_EVIDENCE = 1.0


def default_spec(
    task: str,
    *,
    num_classes: int = 2,
    horizon: int = 1,
    steps: int | None = None,
    variable_length: bool = True,
    streaming: bool = False,
    sequences: int | None = None,
) -> ModelSpec:
    """The default :class:`ModelSpec` of ``tfseq train`` for ``task`` on data of ``steps`` steps.

    Args:
        task: ``binary``, ``multiclass``, ``regression`` or ``forecast``.
        num_classes: Classes of a multiclass task.
        horizon: Future values of a forecast.
        steps: Steps of the (padded) training sequences; long sequences are averaged in groups
            before the recurrent layers and the convolutional branch. None: unknown, no grouping.
        variable_length: Whether sequences are padded to a common length: only then is there
            padding to mask, and a sequence of one fixed length keeps every step as data.
        streaming: An answer after every step: a unidirectional LSTM without the branches that
            read the whole sequence (see :class:`ModelSpec`), masking the padding.
        sequences: Training sequences. On a small set (:func:`is_small` of the sequences and
            the steps the convolutional branch reads, at most :data:`CONV_STEPS`) the linear path
            also reads :data:`RANDOM_FEATURES` random convolutional features; None: unknown, none.
    """
    head = HeadSpec(kind=task, num_classes=num_classes if task == "multiclass" else 2, horizon=horizon)
    common = ModelSpec(cell="lstm", units=(64,), bidirectional=True, dropout=0.2, recurrent_dropout=0.0,
                       pooling="last", dense_units=32, learning_rate=1e-3, clipnorm=1.0, heads=(head,),
                       precision="auto")
    if streaming:
        return common.replace(bidirectional=False, masking=True, streaming=True)
    if task == "forecast":
        return common.replace(masking=False, relative=True, linear_skip=True, summary_statistics=False,
                              summary_segments=min(steps or FORECAST_SEGMENTS, FORECAST_SEGMENTS))
    conv_pool = -(-(steps or 1) // CONV_STEPS)
    read = -(-steps // conv_pool) if steps else 0  # the steps the convolutional branch reads
    small = sequences is not None and read > 0 and is_small(sequences, read)
    return common.replace(
        masking=variable_length,
        conv_filters=(32, 64, 32),
        summary_segments=SEGMENTS,
        linear_skip=True,
        random_features=RANDOM_FEATURES if small else 0,
        competing_groups=COMPETING_GROUPS if small and task in ("binary", "multiclass") else 0,
        recurrent_pool=-(-(steps or 1) // RECURRENT_STEPS),
        conv_pool=conv_pool,
    )


#: Training sets of fewer steps than this (sequences x steps) train longer: their epochs take
#: about a second, and the convolutional branch needs hundreds of them on a few dozen sequences.
#: 500 sequences of 1,460 steps are past it: 300 epochs took 234 s on 2 cores; with 100 and patience
#: 10 they stopped after 56 epochs, 58 s (benchmarks/realdata.py, ACSF1x5).
#: Under it as the convolutional branch reads them (long sequences averaged to at most
#: :data:`CONV_STEPS` steps), the linear path reads random convolutions too: ACSF1x5 (400 training
#: sequences read as 487 steps) scored 0.69 with them in 62 s, 0.31 without.
SMALL_DATA = 250_000


def is_small(train_sequences: int, steps: int = 1) -> bool:
    """Whether a training set is small: under :data:`SMALL_DATA` steps (sequences x steps)."""
    return train_sequences * steps < SMALL_DATA


def training_budget(train_sequences: int, steps: int = 1) -> tuple[int, int]:
    """``(maximum epochs, early-stopping patience)`` of ``tfseq train`` for this much data."""
    return (300, 30) if is_small(train_sequences, steps) else (100, 10)
