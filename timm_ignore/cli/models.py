"""``timm-ignore models``: list the registered models, or write the README's model table."""
import argparse
import fnmatch
import pathlib

from ..models.zoo import MODELS, TWINS
from .options import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('pattern', nargs='?', default='*', help='shell-style filter on model names')
    parser.add_argument('--markdown', action='store_true', help='print the markdown table with params and GFLOPs')
    parser.add_argument('--update-readme', metavar='README', type=pathlib.Path,
                        help='rewrite the table between the model-table markers of this file')


def _matching(names: list[str], pattern: str, what: str) -> list[str]:
    """The names ``pattern`` matches; a pattern that matches none is a usage error."""
    matched = [n for n in names if fnmatch.fnmatch(n, pattern)]
    if not matched:
        raise UsageError(f"no {what} matches '{pattern}' (a shell-style pattern such as 'densenet_se*'); "
                         "'timm-ignore models' lists them all")
    return matched


def run(args: argparse.Namespace) -> int:
    if not (args.markdown or args.update_readme):
        for name in _matching([*MODELS, *TWINS], args.pattern, 'model'):
            if name in MODELS:
                print(f'{name:32s} {", ".join(MODELS[name].family.datasets)}')
            else:
                print(f"{name:32s} ign3 twin of timm's {TWINS[name]} (its tags, weights mapped exactly)")
        return 0
    if args.update_readme and args.pattern != '*':
        raise UsageError('--update-readme writes the whole table; drop the pattern.')
    names = set(_matching(list(MODELS), args.pattern, 'model of the table (ign3 twins are not in it)'))
    # import time: only the table needs the FLOP counter
    from ..models.summary import markdown_table, model_rows, replace_marked_section
    table = markdown_table([r for r in model_rows() if r.name in names])
    if args.update_readme:
        args.update_readme.write_text(replace_marked_section(args.update_readme.read_text(), table))
        print(f'updated the model table in {args.update_readme}')
    else:
        print(table)
    return 0
