"""The paper's Figure 1: validation loss per epoch, one curve per model, from ``summary.csv`` files.

Reads the summary.csv of ``timm-ignore train`` and of timm's train.py alike. Several runs under one label (seeds)
are drawn as their mean with a band spanning their minimum and maximum. Epochs are numbered as in summary.csv and
the training log (from 0). Curves that coincide stay visible: each label has its own line style and marker, drawn
narrower the later it comes, and the legend sits outside the axes.
"""
import csv
import os
import pathlib
from typing import Mapping, Sequence, Union

import numpy as np

from ..runs.layout import SUMMARY_FILE

__all__ = ['read_curve', 'plot_loss_curves']

PathLike = Union[str, os.PathLike]


def read_curve(summary: PathLike, metric: str = 'eval_loss') -> tuple[list[int], list[float]]:
    """Epochs and ``metric`` values of one summary.csv (a run folder is accepted for its summary.csv).

    Raises:
        ValueError: The file has no ``metric`` column (the message lists the columns it has).
    """
    path = pathlib.Path(summary)
    path = path / SUMMARY_FILE if path.is_dir() else path
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    if not rows or metric not in rows[0]:
        columns = ', '.join(rows[0]) if rows else 'none (empty file)'
        raise ValueError(f'{path} has no {metric!r} column; its columns: {columns}.')
    return [int(r['epoch']) for r in rows], [float(r[metric]) for r in rows]


def plot_loss_curves(
        runs: Mapping[str, Sequence[PathLike]],
        output: PathLike,
        metric: str = 'eval_loss',
        title: str = 'Validation loss',
) -> pathlib.Path:
    """Plot ``metric`` per epoch for each label's runs and save a PNG.

    Args:
        runs: Label -> summary.csv files (or run folders) of that label's runs.
        output: PNG path to write.
        metric: summary.csv column to plot.
        title: Plot title.

    Returns:
        ``output``.
    """
    import matplotlib  # optional dependency (the figures extra): loaded when a figure is drawn
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # optional dependency, imported after choosing the file-only backend

    figure, axes = plt.subplots(figsize=(8, 4), dpi=150)
    styles = ('-', '--', '-.', ':')
    markers = ('o', 's', '^', 'D', 'v', 'x')
    for index, (label, summaries) in enumerate(runs.items()):
        curves = [read_curve(s, metric) for s in summaries]
        length = min(len(epochs) for epochs, _ in curves)
        epochs = np.asarray(curves[0][0][:length])  # as numbered in summary.csv and the training log
        values = np.asarray([v[:length] for _, v in curves])
        line, = axes.plot(
            epochs, values.mean(axis=0), label=f'{label} (n={len(curves)})' if len(curves) > 1 else label,
            linestyle=styles[index % len(styles)], marker=markers[index % len(markers)], markersize=4,
            linewidth=max(2.5 - 0.5 * index, 1.0), markevery=max(length // 10, 1), zorder=2 + index)
        if len(curves) > 1:
            axes.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.15)
    axes.set_xlabel('epoch (as in summary.csv)')
    axes.set_ylabel(metric.replace('_', ' '))
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), borderaxespad=0., fontsize=8)  # beside the data
    figure.tight_layout()
    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)
    plt.close(figure)
    return output
