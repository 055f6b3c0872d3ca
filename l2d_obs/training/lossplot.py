"""The loss curve of a run as a PNG (matplotlib, headless)."""

from __future__ import annotations

import os
from pathlib import Path


def plot_losses(rows: list[dict], path: Path, title: str = "") -> None:
    """One panel per stage (their losses have different scales), raw loss and a moving average."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    stages: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        stages.setdefault(row["stage"], []).append((int(row["step"]), float(row["loss"])))
    if not stages:
        return
    fig, axes = plt.subplots(1, len(stages), figsize=(3.2 * len(stages), 2.8), squeeze=False)
    for ax, (name, points) in zip(axes[0], stages.items()):
        steps = np.array([p[0] for p in points])
        losses = np.array([p[1] for p in points])
        ax.plot(steps, losses, color="0.75", linewidth=0.8)
        window = max(1, len(losses) // 20)
        if window > 1:
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1 :], smooth, color="C0", linewidth=1.5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
