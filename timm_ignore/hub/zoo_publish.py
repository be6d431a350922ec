"""Publish the zoo from a queue, incrementally: per model, the seed with the best validation error, into the repository.

Every model of the queue folder with a finished run gets one published folder ``WEIGHTS_DIR/{model}.{tag}/``
(written by :func:`~timm_ignore.hub.publish.publish_folder`, float16 by default) and its registry link in
``CARDS_DIR`` (see :mod:`timm_ignore.hub.registry`). The campaign lands one finished run at a time, so running it
again is the normal case:

- a model already published from the very run that is still its best (the card's ``run_sha256``, the digest of the
  run's record, is the same) is kept as it is;
- a model whose best run changed (another seed finished with a lower validation error, or the run was retrained)
  would replace published weights: refused, naming it, unless ``overwrite``;
- a model with no finished run yet (queued in ``queue.json``, or a run folder still training) is listed as waiting.

A best run that is not a trained model (:func:`timm_ignore.runs.untrained_problems`) is refused unless
``allow_untrained``. Everything is decided before the first evaluation.
"""
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from ..checkpoint import read_checkpoint
from ..dataset_tags import tag_for_classes
from ..models._weights import read_front_matter
from ..models.zoo import get_model_spec
from ..runs import RunRecord, collect_finished_runs, queued_runs, run_digest, untrained_problems
from .publish import PublishedFolder, UntrainedRunError, publish_folder
from .registry import CARD_FILE, card_link, is_registered, register_card

__all__ = ['ZooEntry', 'ZooPlan', 'plan_zoo', 'publish_zoo']


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo: the run chosen (best validation error over its finished seeds), what identifies it
    (:func:`timm_ignore.runs.run_digest`), why it is not a trained model if it is not, and where it is published."""
    name: str
    run: RunRecord
    seeds: tuple[int, ...]
    folder: Path
    card: Path
    repo_id: str
    run_sha256: str
    untrained: tuple[str, ...] = ()


@dataclass(frozen=True)
class ZooPlan:
    """What a ``publish-zoo`` does: models to publish, models kept (published from the same run), models waiting for
    a finished run."""
    publish: list[ZooEntry] = field(default_factory=list)
    kept: list[ZooEntry] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


def _published_digest(folder: Path) -> Optional[str]:
    """The ``run_sha256`` of a published folder's card; None without a folder, a card or the field."""
    card = folder / CARD_FILE
    if not card.is_file():
        return None
    try:
        section = read_front_matter(card).get('timm_ignore')
    except ValueError:
        return None
    return section.get('run_sha256') if isinstance(section, dict) else None


def _entry(model: str, own: Sequence[RunRecord], weights_dir: Path, cards_dir: Path, hub_org: str) -> ZooEntry:
    best = min(own, key=lambda r: (math.inf if r.val_top1_err is None else r.val_top1_err, r.seed))
    checkpoint = read_checkpoint(best.run_dir)
    tag = tag_for_classes(model, checkpoint.num_classes)
    if tag is None:
        raise ValueError(f'{best.run_dir}: a {checkpoint.num_classes}-class {model} is no tag of the zoo '
                         f'({", ".join(get_model_spec(model).family.datasets)}).')
    name = f'{model}.{tag}'
    return ZooEntry(
        name=name, run=best, seeds=tuple(r.seed for r in own), folder=weights_dir / name,
        card=card_link(cards_dir, name), repo_id=f'{hub_org}/{name}',
        run_sha256=run_digest(best.run_dir, checkpoint.path),
        untrained=tuple(untrained_problems(best.run_dir, checkpoint.args, checkpoint.num_classes)))


def _waiting(queue: Path, finished: set[str], unfinished: Sequence[Path], models: Optional[Sequence[str]]) -> list[str]:
    """Models queued (``queue.json``) or with a run folder still training, and no finished run."""
    names = [s.model for s in queued_runs(queue)] + [p.name.rsplit('-seed', 1)[0] for p in unfinished]
    return [m for m in dict.fromkeys(names) if m not in finished and (not models or m in models)]


def plan_zoo(
        queue: Union[str, Path],
        data_root: Union[str, Path],
        weights_dir: Union[str, Path],
        cards_dir: Union[str, Path],
        hub_org: str,
        models: Optional[Sequence[str]] = None,
        overwrite: bool = False,
        device: str = 'cpu',
        allow_untrained: bool = False,
) -> ZooPlan:
    """Choose, for every model of ``queue`` (or of ``models``) with a finished run, its run with the lowest validation
    error, and sort the models into published anew, kept and waiting.

    A train.py-style run (no ``run.json``) is tested on ``data_root``'s test split on the way, as the report does.

    Raises:
        FileNotFoundError, ValueError: No finished runs, a model asked for without any, a bad ``hub_org``.
        FileExistsError: A model whose published weights or registry entry come from another run (its best seed
            changed, or it was retrained, or an entry was written by hand) and ``overwrite`` is not set (all named).
        UntrainedRunError: A model's best run is not a trained model and ``allow_untrained`` is not set (all named).
    """
    if not hub_org or '/' in hub_org:
        raise ValueError(f'--hub-org must be a Hub user or organisation name (no "/"), got {hub_org!r}.')
    weights_dir, cards_dir = Path(weights_dir), Path(cards_dir)
    records, unfinished = collect_finished_runs(queue, data_dir=data_root, device=device)
    if models:
        missing = sorted(set(models) - {r.model for r in records})
        if missing:
            raise ValueError(f'{queue}: no finished run of {", ".join(missing)} (--models).')
        records = [r for r in records if r.model in models]
    finished = list(dict.fromkeys(r.model for r in records))
    plan = ZooPlan(waiting=_waiting(Path(queue), set(finished), unfinished, models))
    for model in finished:
        entry = _entry(model, [r for r in records if r.model == model], weights_dir, cards_dir, hub_org)
        same_run = entry.folder.is_dir() and _published_digest(entry.folder) == entry.run_sha256
        (plan.kept if same_run else plan.publish).append(entry)
    replaced = [str(p) for e in plan.publish for p in (e.folder, e.card) if p.exists() or p.is_symlink()]
    replaced += [str(e.card) for e in plan.kept
                 if (e.card.exists() or e.card.is_symlink()) and not is_registered(e.folder, cards_dir)]
    if replaced and not overwrite:
        raise FileExistsError(f'already published from another run (its best seed changed, it was retrained, or the '
                              f'entry was written by hand): {", ".join(replaced)}; pass --overwrite to replace them.')
    untrained = [f'{e.name} (seed {e.run.seed}: {"; ".join(e.untrained)})' for e in plan.publish if e.untrained]
    if untrained and not allow_untrained:
        raise UntrainedRunError(f'not trained models, no card for them: {", ".join(untrained)}; pass '
                                f'--allow-untrained to publish them anyway, marked as such.')
    return plan


def publish_zoo(
        plan: ZooPlan,
        data_root: Union[str, Path],
        cards_dir: Union[str, Path],
        dtype: str = 'float16',
        overwrite: bool = False,
        device: str = 'cpu',
        batch_size: int = 128,
        workers: int = 0,
        allow_untrained: bool = False,
        log: Callable[[str], None] = print,
) -> list[PublishedFolder]:
    """Publish and register every new entry of :func:`plan_zoo`, one after another; say which are kept and waiting.

    Returns:
        The folders written (kept ones are not).
    """
    for entry in plan.kept:
        register_card(entry.folder, cards_dir, overwrite=overwrite)  # the link again, if it went missing
        log(f'{entry.name}: already published from seed {entry.run.seed} (the same run record), kept')
    published = []
    for entry in plan.publish:
        folder = publish_folder(
            entry.run.run_dir, entry.folder, data_root=data_root, repo_id=entry.repo_id, dtype=dtype,
            overwrite=overwrite, device=device, batch_size=batch_size, workers=workers,
            allow_untrained=allow_untrained)
        register_card(folder.path, cards_dir, overwrite=overwrite)
        r, s = folder.result, folder.storage
        stored = '' if s is None else f' ({s.dtype}; float32 {s.checkpoint_top1_err:.2f}%, largest logit ' \
                                      f'difference {s.max_abs_logit_diff:.3g})'
        val = 'not recorded' if entry.run.val_top1_err is None else f'{entry.run.val_top1_err:.2f}%'
        log(f'{entry.name}: seed {entry.run.seed} of {list(entry.seeds)} (val err {val}), '
            f'test err {r.top1_err:.2f}%{stored} -> {folder.path}')
        published.append(folder)
    if plan.waiting:
        log(f'waiting for a finished run: {", ".join(plan.waiting)}')
    return published
