"""Ridge regression in closed form, its penalty chosen by leave-one-out error: the linear path of
a model (``ModelSpec.linear_skip``) starts at, and keeps, the best linear fit of its features."""

from __future__ import annotations

import numpy as np

#: Penalties tried, on standardised features (scikit-learn's ``RidgeCV`` range, widened for
#: more features than sequences).
ALPHAS = np.logspace(-3, 5, 17)


def fit_ridge(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fits ``targets ~ features @ W + b``; returns ``(W, b, held_out)``, ``held_out`` being each
    sequence's leave-one-out prediction.

    ``features`` ``[n, k]``, ``targets`` ``[n, m]``. The features are standardised for the fit
    (so one penalty suits every feature) and ``W``, ``b`` are returned in their raw units. The
    penalty minimises the exact leave-one-out squared error (one SVD for all penalties).
    """
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64).reshape(len(f), -1)
    centre, scale = f.mean(axis=0), f.std(axis=0)
    scale[scale < 1e-12] = 1.0
    z = (f - centre) / scale
    y_mean = y.mean(axis=0)
    yc = y - y_mean
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    uty = u.T @ yc
    best: tuple[float, float, np.ndarray] | None = None
    for alpha in ALPHAS:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (uty * shrink[:, None])
        leverage = np.minimum((u**2) @ shrink + 1.0 / len(f), 1.0 - 1e-9)  # the intercept's share too
        residual = (yc - fitted) / (1.0 - leverage)[:, None]
        error = float(np.mean(residual**2))
        if best is None or error < best[0]:
            best = (error, float(alpha), y - residual)
    assert best is not None
    _, alpha, held_out = best
    w = vt.T @ (uty * (s / (s**2 + alpha))[:, None]) / scale[:, None]
    b = y_mean - centre @ w
    return w, b, held_out
