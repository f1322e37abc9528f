"""PNG charts of the analytics (people would rather look than read): matplotlib, no display."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _plt():  # noqa: ANN202 - matplotlib module
    import matplotlib  # heavy: matplotlib, only when a refresh draws charts

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib

    return plt


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def k_choice(ks: Sequence[int], inertia: Sequence[float], silhouette: Sequence[float], elbow: int, chosen: int,
             path: Path) -> Path:
    """Elbow (inertia) and silhouette against k, with the elbow and the chosen k marked."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ks, inertia, "o-")
    a.axvline(elbow, color="tab:orange", ls="--", label=f"elbow k={elbow}")
    a.set(xlabel="k", ylabel="inertia (within-cluster sum of squares)", title="Elbow")
    a.legend()
    b.plot(ks, silhouette, "o-", color="tab:green")
    b.axvline(chosen, color="tab:red", ls="--", label=f"chosen k={chosen}")
    b.set(xlabel="k", ylabel="silhouette", title="Silhouette")
    b.legend()
    return _save(fig, path)


def segments(names: Sequence[str], sizes: Sequence[int], values: Sequence[float], xy: np.ndarray,
             labels: np.ndarray, path: Path) -> Path:
    """Segment sizes, mean expected value and a 2-D projection of the customers."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    colors = plt.get_cmap("tab10")
    pos = np.arange(len(names))
    axes[0].barh(pos, sizes, color=[colors(i) for i in pos])
    axes[0].set_yticks(pos, names)
    axes[0].invert_yaxis()
    axes[0].set(xlabel="customers", title="Segment size")
    axes[1].barh(pos, values, color=[colors(i) for i in pos])
    axes[1].set_yticks(pos, [""] * len(names))
    axes[1].invert_yaxis()
    axes[1].set(xlabel="mean expected value, next 12 months ($)", title="Segment value")
    for i, name in enumerate(names):
        pts = xy[labels == i]
        axes[2].scatter(pts[:, 0], pts[:, 1], s=8, alpha=0.6, color=colors(i), label=name)
    axes[2].set(xlabel="PC 1", ylabel="PC 2", title="Customers (PCA of scaled features)")
    axes[2].legend(fontsize=7, loc="best")
    return _save(fig, path)


def calibration(prob: np.ndarray, y: np.ndarray, path: Path, title: str, bins: int = 10,
                extra: dict[str, np.ndarray] | None = None) -> Path:
    """Reliability diagram (predicted vs observed rate per probability bin) with counts."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot([0, 1], [0, 1], "k:", label="perfect")
    for name, p in {"model": prob, **(extra or {})}.items():
        edges = np.linspace(0, 1, bins + 1)
        idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
        xs, ys = [], []
        for k in range(bins):
            sel = idx == k
            if sel.sum() >= 5:
                xs.append(p[sel].mean())
                ys.append(y[sel].mean())
        a.plot(xs, ys, "o-", label=name)
    a.set(xlabel="predicted probability", ylabel="observed rate", title=title, xlim=(0, 1), ylim=(0, 1))
    a.legend()
    b.hist(prob, bins=20, range=(0, 1), color="tab:blue", alpha=0.7)
    b.set(xlabel="predicted probability", ylabel="customers", title="Predictions")
    return _save(fig, path)


def roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path, title: str) -> Path:
    """ROC curves: name -> (fpr, tpr, auc)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:")
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def bars(labels: Sequence[str], series: dict[str, Sequence[float]], path: Path, title: str, ylabel: str) -> Path:
    """Grouped bars: one group per label, one bar per series."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(labels)), 4))
    width = 0.8 / max(len(series), 1)
    pos = np.arange(len(labels))
    for i, (name, vals) in enumerate(series.items()):
        ax.bar(pos + i * width, vals, width, label=name)
    ax.set_xticks(pos + width * (len(series) - 1) / 2, labels)
    ax.set(title=title, ylabel=ylabel)
    ax.legend()
    return _save(fig, path)


def lines(x: Sequence, series: dict[str, Sequence[float]], path: Path, title: str, ylabel: str) -> Path:
    """One line per series over a shared x axis (dates or weeks)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    for name, ys in series.items():
        ax.plot(list(x), list(ys), label=name)
    ax.set(title=title, ylabel=ylabel)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)
