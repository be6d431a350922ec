"""A run's record (``run.json``), written atomically and last, the one definition of a finished run, and the copy
of its record files that a repository keeps."""
import hashlib
import json
import os
import pathlib
import shutil
from typing import Any, Collection, Mapping, Optional

import torch
import yaml

from .layout import ARGS_FILE, BEST_CHECKPOINT, RECORD_FILE, SUMMARY_FILE
from .summary import finished_epochs

__all__ = ['ENGINE_TRAINER', 'RECORD_FILES', 'atomic_save', 'atomic_write_text', 'copy_run_records', 'is_finished',
           'read_record', 'read_run_args', 'run_digest', 'run_precision', 'write_record']

#: ``args.yaml``'s ``trainer`` of an engine run: such a run is finished only once it has written its record.
ENGINE_TRAINER = 'timm_ignore.engine'
#: What a repository keeps of a finished run, a few KB and no checkpoint: enough for ``compare --runs`` to report it.
RECORD_FILES = (RECORD_FILE, SUMMARY_FILE, ARGS_FILE)


def atomic_write_text(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` through a hidden temporary file renamed into place (never half-written)."""
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save(obj: Any, path: pathlib.Path) -> None:
    """``torch.save`` through a hidden temporary file renamed into place (a kill leaves the previous file)."""
    tmp = path.with_name(f'.{path.name}.tmp')
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_record(run_dir: pathlib.Path) -> Optional[dict[str, Any]]:
    """The record of a run that wrote one (a finished run of either trainer), else None."""
    path = pathlib.Path(run_dir) / RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def run_digest(run_dir: pathlib.Path, checkpoint: Optional[pathlib.Path] = None) -> str:
    """What identifies a finished run's result: the SHA-256 of its record (``run.json``), or, for a run without one
    (timm's train.py), of its published ``checkpoint`` (default: the best one). A retrained or another run differs."""
    run_dir = pathlib.Path(run_dir)
    path = run_dir / RECORD_FILE
    if not path.is_file():
        path = pathlib.Path(checkpoint) if checkpoint is not None else run_dir / BEST_CHECKPOINT
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def write_record(run_dir: pathlib.Path, record: dict[str, Any]) -> None:
    """Write the run's record atomically; written last, it marks the run finished."""
    atomic_write_text(pathlib.Path(run_dir) / RECORD_FILE, json.dumps(record, indent=2) + '\n')


def read_run_args(run_dir: pathlib.Path) -> dict[str, Any]:
    """A run folder's ``args.yaml`` as a mapping; ``{}`` when it has none or it is not one."""
    try:
        args = yaml.safe_load((run_dir / ARGS_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return args if isinstance(args, dict) else {}


def run_precision(args: Mapping[str, Any]) -> Optional[str]:
    """The dtype a run's autocast regions computed in, from its train.py ``args``: ``amp_dtype`` under ``amp``
    (train.py's default float16 when unnamed), else ``float32``; None when the args do not say (no ``amp`` key)."""
    if 'amp' not in args:
        return None
    return str(args.get('amp_dtype') or 'float16') if args['amp'] else 'float32'


def is_finished(run_dir: pathlib.Path, epochs: Optional[int] = None) -> bool:
    """Whether a run folder holds a finished run (of ``epochs`` epochs, when given), the one rule every tool applies.

    A run of this package's trainers is finished when it has written its record (``run.json``, written last) for at
    least ``epochs`` epochs. A folder of timm's own train.py (no record, and no engine ``trainer`` in ``args.yaml``)
    is finished when ``summary.csv`` has a row for each epoch (``epochs``, else ``args.yaml``'s) and the best
    checkpoint exists.
    """
    run_dir = pathlib.Path(run_dir)
    record = read_record(run_dir)
    if record is not None:
        return epochs is None or record.get('epochs') is None or int(record['epochs']) >= epochs
    args = read_run_args(run_dir)
    epochs = epochs if epochs is not None else args.get('epochs')
    if args.get('trainer') == ENGINE_TRAINER or not args.get('model') or epochs is None:
        return False
    return (run_dir / BEST_CHECKPOINT).is_file() and finished_epochs(run_dir) >= int(epochs)


def copy_run_records(
        source: pathlib.Path,
        destination: pathlib.Path,
        overwrite: bool = False,
        dry_run: bool = False,
        models: Optional[Collection[str]] = None,
) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    """Copy the :data:`RECORD_FILES` of every run in the matrix folder ``source`` that wrote a record into
    ``destination/{run}/``, so a clone can report the runs without their checkpoints.

    Runs without a record (still training, or timm's train.py, whose test error needs its checkpoint) are left out.

    Args:
        source: A matrix (queue) folder.
        destination: The records folder, e.g. ``results/zoo-cifar10``; created when needed.
        overwrite: Replace record files that differ from the run's (a retrained run).
        dry_run: Check and plan only; write nothing.
        models: Only the runs of these models (their records' ``model``); every run when None.

    Returns:
        ``(copied, unchanged)``: the destination run folders written (or to be written) and those already equal.

    Raises:
        FileNotFoundError: ``source`` is not a folder.
        FileExistsError: Record files in ``destination`` that differ from their run's, all named in one line, unless
            ``overwrite``; raised before anything is written.
    """
    source, destination = pathlib.Path(source), pathlib.Path(destination)
    if not source.is_dir():
        raise FileNotFoundError(f'{source}: no such folder of runs.')
    copied, unchanged, conflicts = [], [], []
    for run_dir in sorted(p for p in source.iterdir() if (p / RECORD_FILE).is_file()):
        if models is not None and json.loads((run_dir / RECORD_FILE).read_text()).get('model') not in models:
            continue
        target = destination / run_dir.name
        files = [name for name in RECORD_FILES if (run_dir / name).is_file()]
        existing = [name for name in files if (target / name).is_file()]
        differing = [name for name in existing if (target / name).read_bytes() != (run_dir / name).read_bytes()]
        if differing:
            conflicts.append(target)
        if len(existing) == len(files) and not differing:
            unchanged.append(target)
        else:
            copied.append(target)
    if conflicts and not overwrite:
        raise FileExistsError(
            f'{", ".join(map(str, conflicts))}: record files differ from their runs (retrained?); pass --overwrite to '
            'replace them.')
    if not dry_run:
        for target in copied:
            target.mkdir(parents=True, exist_ok=True)
            for name in RECORD_FILES:
                if (source / target.name / name).is_file():
                    shutil.copyfile(source / target.name / name, target / name)
    return copied, unchanged
