"""``timm-ignore models``: list the registered models, or write the README's model table."""
import argparse
import fnmatch
import pathlib

from ..models.zoo import MODELS, TWINS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('pattern', nargs='?', default='*', help='shell-style filter on model names')
    parser.add_argument('--markdown', action='store_true', help='print the markdown table with params and GFLOPs')
    parser.add_argument('--update-readme', metavar='README', type=pathlib.Path,
                        help='rewrite the table between the model-table markers of this file')


def run(args: argparse.Namespace) -> int:
    if not (args.markdown or args.update_readme):
        for name, spec in MODELS.items():
            if fnmatch.fnmatch(name, args.pattern):
                print(f'{name:32s} {", ".join(spec.family.datasets)}')
        for twin, source in TWINS.items():
            if fnmatch.fnmatch(twin, args.pattern):
                print(f"{twin:32s} ign3 twin of timm's {source} (its tags, weights mapped exactly)")
        return 0
    from ..models.summary import markdown_table, model_rows, replace_marked_section
    table = markdown_table([r for r in model_rows() if fnmatch.fnmatch(r.name, args.pattern)])
    if args.update_readme:
        if args.pattern != '*':
            from .options import UsageError
            raise UsageError('--update-readme writes the whole table; drop the pattern.')
        args.update_readme.write_text(replace_marked_section(args.update_readme.read_text(), table))
        print(f'updated the model table in {args.update_readme}')
    else:
        print(table)
    return 0
