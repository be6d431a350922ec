"""Publish the zoo from a finished queue: per model, the seed with the best validation error, into the repository.

Every model of the queue folder gets one published folder ``WEIGHTS_DIR/{model}.{tag}/`` (written by
:func:`~timm_ignore.hub.publish.publish_folder`, float16 by default) and its registry link in ``CARDS_DIR`` (see
:mod:`timm_ignore.hub.registry`). Everything that would be replaced is checked before the first evaluation.
"""
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from ..checkpoint import read_checkpoint
from ..dataset_tags import tag_for_classes
from ..models.zoo import get_model_spec
from ..runs import RunRecord, collect_finished_runs
from .publish import PublishedFolder, publish_folder
from .registry import card_link, register_card

__all__ = ['ZooEntry', 'plan_zoo', 'publish_zoo']


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo: the run chosen (best validation error over its seeds) and where it is published."""
    name: str
    run: RunRecord
    seeds: tuple[int, ...]
    folder: Path
    card: Path
    repo_id: str


def _tag(run: RunRecord) -> str:
    classes = read_checkpoint(run.run_dir).num_classes
    tag = tag_for_classes(run.model, classes)
    if tag is None:
        raise ValueError(f'{run.run_dir}: a {classes}-class {run.model} is no tag of the zoo '
                         f'({", ".join(get_model_spec(run.model).family.datasets)}).')
    return tag


def plan_zoo(
        queue: Union[str, Path],
        data_root: Union[str, Path],
        weights_dir: Union[str, Path],
        cards_dir: Union[str, Path],
        hub_org: str,
        models: Optional[Sequence[str]] = None,
        overwrite: bool = False,
        device: str = 'cpu',
) -> list[ZooEntry]:
    """Choose, for every model of ``queue`` (or of ``models``), its run with the lowest validation error.

    A train.py-style run (no ``run.json``) is tested on ``data_root``'s test split on the way, as the report does.

    Raises:
        FileNotFoundError, ValueError: No finished runs, a model asked for without any, a bad ``hub_org``.
        FileExistsError: Published weights or registry entries exist and ``overwrite`` is not set (all named).
    """
    if not hub_org or '/' in hub_org:
        raise ValueError(f'--hub-org must be a Hub user or organisation name (no "/"), got {hub_org!r}.')
    records, _ = collect_finished_runs(queue, data_dir=data_root, device=device)
    if models:
        missing = sorted(set(models) - {r.model for r in records})
        if missing:
            raise ValueError(f'{queue}: no finished run of {", ".join(missing)} (--models).')
        records = [r for r in records if r.model in models]
    plan = []
    for model in dict.fromkeys(r.model for r in records):
        own = [r for r in records if r.model == model]
        best = min(own, key=lambda r: (math.inf if r.val_top1_err is None else r.val_top1_err, r.seed))
        name = f'{model}.{_tag(best)}'
        plan.append(ZooEntry(name=name, run=best, seeds=tuple(r.seed for r in own), folder=Path(weights_dir) / name,
                             card=card_link(cards_dir, name), repo_id=f'{hub_org}/{name}'))
    existing = [str(p) for e in plan for p in (e.folder, e.card) if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise FileExistsError(f'already published: {", ".join(existing)}; pass --overwrite to replace them.')
    return plan


def publish_zoo(
        plan: Sequence[ZooEntry],
        data_root: Union[str, Path],
        cards_dir: Union[str, Path],
        dtype: str = 'float16',
        overwrite: bool = False,
        device: str = 'cpu',
        batch_size: int = 128,
        workers: int = 0,
        log: Callable[[str], None] = print,
) -> list[PublishedFolder]:
    """Publish and register every entry of :func:`plan_zoo`, one after another."""
    published = []
    for entry in plan:
        folder = publish_folder(
            entry.run.run_dir, entry.folder, data_root=data_root, repo_id=entry.repo_id, dtype=dtype,
            overwrite=overwrite, device=device, batch_size=batch_size, workers=workers)
        register_card(folder.path, cards_dir, overwrite=overwrite)
        r, s = folder.result, folder.storage
        stored = '' if s is None else f' ({s.dtype}; float32 {s.checkpoint_top1_err:.2f}%, largest logit ' \
                                      f'difference {s.max_abs_logit_diff:.3g})'
        val = 'not recorded' if entry.run.val_top1_err is None else f'{entry.run.val_top1_err:.2f}%'
        log(f'{entry.name}: seed {entry.run.seed} of {list(entry.seeds)} (val err {val}), '
            f'test err {r.top1_err:.2f}%{stored} -> {folder.path}')
        published.append(folder)
    return published
