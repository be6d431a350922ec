"""``timm-ignore plot-loss``: the paper's Figure 1 (validation loss per epoch) from runs' summary.csv files."""
import argparse
import pathlib


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('runs', nargs='+', metavar='RUN',
                        help='LABEL=PATH or PATH; PATH is a run folder or its summary.csv (timm-ignore train or '
                             "timm's train.py); repeating a LABEL averages its runs")
    parser.add_argument('-o', '--output', default='val_loss.png', help='PNG to write')
    parser.add_argument('--metric', default='eval_loss', help='summary.csv column to plot')
    parser.add_argument('--title', default='Validation loss')


def run(args: argparse.Namespace) -> int:
    from ..figures.loss_curves import plot_loss_curves  # loaded when the command runs: --help stays fast

    runs: dict[str, list[str]] = {}
    for item in args.runs:
        label, sep, path = item.partition('=')
        if not sep:
            label, path = pathlib.Path(item).name.removesuffix('.csv'), item
        runs.setdefault(label, []).append(path)
    print(plot_loss_curves(runs, args.output, metric=args.metric, title=args.title))
    return 0
