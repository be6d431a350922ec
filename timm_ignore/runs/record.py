"""A run's record (``run.json``), written atomically and last, and the one definition of a finished run."""
import hashlib
import json
import os
import pathlib
from typing import Any, Optional

import torch
import yaml

from .layout import ARGS_FILE, BEST_CHECKPOINT, RECORD_FILE
from .summary import finished_epochs

__all__ = ['ENGINE_TRAINER', 'atomic_save', 'atomic_write_text', 'is_finished', 'read_record', 'run_digest',
           'write_record']

#: ``args.yaml``'s ``trainer`` of an engine run: such a run is finished only once it has written its record.
ENGINE_TRAINER = 'timm_ignore.engine'


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


def _args(run_dir: pathlib.Path) -> dict[str, Any]:
    try:
        args = yaml.safe_load((run_dir / ARGS_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return args if isinstance(args, dict) else {}


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
    args = _args(run_dir)
    epochs = epochs if epochs is not None else args.get('epochs')
    if args.get('trainer') == ENGINE_TRAINER or not args.get('model') or epochs is None:
        return False
    return (run_dir / BEST_CHECKPOINT).is_file() and finished_epochs(run_dir) >= int(epochs)
