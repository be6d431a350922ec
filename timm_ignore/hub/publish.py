"""Turn a training checkpoint into a Hub model folder that timm loads with ``local-dir:`` and ``hf-hub:``.

The folder holds ``model.safetensors`` and timm's ``config.json`` (both written by ``timm.models.save_for_hf``), the
model card ``README.md`` with the metrics measured here, and the run's ``args.yaml``. It is written beside the
target and renamed into place when complete, so a failed run leaves no half-written folder. Weights stored in
float16 (``dtype``) are loaded back through timm and measured against the float32 checkpoint before the folder is
kept (see :mod:`timm_ignore.hub.storage`). A run that did not train its recipe's epochs or is at chance level is
refused before any evaluation unless asked for (see :mod:`timm_ignore.runs.readiness`).
"""
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional, Union

import timm
import yaml
from timm.models import save_for_hf

from ..checkpoint import TrainingCheckpoint, load_model, read_checkpoint
from ..evaluate import EvalResult, evaluate_split, find_split
from ..models.zoo import DATASETS, data_copy, get_model_spec
from ..paper import read_paper_tables
from ..provenance import code_version
from ..runs import (
    read_data_description, read_record, run_digest, schedule_epochs, summary_val_error, untrained_problems)
from ..staging import staged_directory
from .card import CardInputs, TrainingRecord, build_card
from .storage import MAX_ERROR_CHANGE, STORAGE_DTYPES, StoredCopyCheck, check_stored_copy, storage_copy

__all__ = ['PublishedFolder', 'UntrainedRunError', 'publish_folder', 'read_run_record', 'training_record']

#: The recipes in this package's source tree (a checkout; a wheel has none), named on cards by their path there.
RECIPES_DIR = Path(__file__).resolve().parents[2] / 'train_scripts'


@dataclass(frozen=True)
class PublishedFolder:
    """A written model folder, the evaluation its card reports (of the stored weights) and the check of a copy
    stored in another dtype than float32."""
    path: Path
    model_name: str
    result: EvalResult
    storage: Optional[StoredCopyCheck] = None


class UntrainedRunError(ValueError):
    """A run that did not finish its recipe's epochs or is at chance level: no card unless ``allow_untrained``."""


#: Run record keys (``run.json``, of either trainer) that are card fields under another name.
RECORD_ALIASES = {'device': 'hardware'}
#: Card fields a run record may set.
RECORD_FIELDS = tuple(f.name for f in fields(TrainingRecord)
                      if f.name not in ('checkpoint', 'ema', 'args', 'recipe_epochs'))


def _dataset_line(description: Mapping[str, Any]) -> str:
    """One line from a data folder's description (its ``cifar_split.json``, as the engine records it): a known copy of
    a dataset by the zoo's name and meaning for it, else the description's own source."""
    counts = description.get('counts') or {  # prepare-cifar's counts, else make_imagefolder.py's num_*
        split: description[f'num_{split}'] for split in ('train', 'validation', 'test')
        if f'num_{split}' in description}
    sizes = ', '.join(f'{split} {count}' for split, count in counts.items())
    copy = data_copy(description)
    what = f'{copy.display_name}: {copy.meaning}' if copy else (
        description.get('source') or description.get('dataset') or 'data')
    return f'{what} ({sizes})' if sizes else str(what)


def _record_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The card fields of a run record (the engine's ``run.json`` holds more facts than a card states)."""
    renamed = {RECORD_ALIASES.get(k, k): v for k, v in record.items()}
    fields_ = {k: v for k, v in renamed.items() if k in RECORD_FIELDS and v is not None}
    if isinstance(fields_.get('dataset'), Mapping):
        fields_['dataset'] = _dataset_line(fields_['dataset'])
    return fields_


def training_record(checkpoint: TrainingCheckpoint, overrides: Optional[Mapping[str, Any]] = None) -> TrainingRecord:
    """What a run folder says about its training: ``args.yaml``, ``summary.csv`` and the checkpoint, then the run's
    record (``run.json``) when there is one, then ``overrides`` (``publish --run-record``)."""
    args = checkpoint.args
    derived = dict(
        checkpoint=checkpoint.path.name, ema=checkpoint.ema, seed=args.get('seed'), epochs=args.get('epochs'),
        best_epoch=checkpoint.epoch, val_top1_err=summary_val_error(checkpoint.run_dir, checkpoint.epoch),
        recipe=args.get('config') or None, recipe_epochs=schedule_epochs(args), args=args)
    engine = _record_fields(read_record(checkpoint.run_dir) or {})
    if engine.get('best_epoch') not in (None, checkpoint.epoch):  # the record describes another checkpoint
        engine = {k: v for k, v in engine.items()
                  if k not in ('best_epoch', 'val_top1_err', 'test_top1_err', 'test_top1_err_pixel_mean')}
    return TrainingRecord(**{**derived, **engine, **_record_fields(overrides or {})})


def read_run_record(path: Union[str, Path]) -> dict[str, Any]:
    """A run record: a YAML or JSON mapping holding :class:`~timm_ignore.hub.card.TrainingRecord` fields (others,
    such as the engine's throughput, are kept in the file and not stated on the card).

    Raises:
        FileNotFoundError, ValueError: No such file, or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such run record (--run-record).')
    try:
        record = yaml.safe_load(path.read_text(encoding='utf-8'))
    except yaml.YAMLError as e:
        raise ValueError(f'{path}: invalid YAML/JSON (--run-record): {e}') from None
    if not isinstance(record, dict):
        raise ValueError(f'{path}: a run record is a mapping of card fields (--run-record).')
    return record


def _recipe_file(recipe: Optional[str]) -> Optional[str]:
    """``train_scripts/NAME`` when the recipe is a file of this package's source tree, else None."""
    name = Path(recipe).name if recipe else ''
    return f'{RECIPES_DIR.name}/{name}' if name and (RECIPES_DIR / name).is_file() else None


def publish_folder(
        checkpoint_path: Union[str, Path],
        out_dir: Union[str, Path],
        *,
        data_root: Union[str, Path],
        repo_id: str,
        paper_tables: Union[str, Path, None] = None,
        model_name: Optional[str] = None,
        split: str = 'test',
        which: str = 'best',
        ema: Optional[bool] = None,
        model_kwargs: Optional[dict[str, Any]] = None,
        num_classes: Optional[int] = None,
        run_record: Optional[Mapping[str, Any]] = None,
        dtype: str = 'float32',
        max_error_change: float = MAX_ERROR_CHANGE,
        allow_untrained: bool = False,
        overwrite: bool = False,
        batch_size: int = 128,
        workers: int = 0,
        device: str = 'cpu',
) -> PublishedFolder:
    """Evaluate a checkpoint and write its Hub model folder.

    Args:
        checkpoint_path: Run folder or checkpoint file.
        out_dir: Folder to create.
        data_root: ImageFolder tree with the evaluation ``split`` (``<root>/<split>/<class>/...``).
        repo_id: Hub repository (``ORG/NAME``) the folder is for; the card and its usage name it.
        paper_tables: The paper's tables as CSV; default the copy shipped in the package.
        model_name: ``name.tag`` published (the tag gives the dataset); defaults to the run's model and class count.
        split: Evaluation split folder.
        which: Run folder checkpoint, ``best`` or ``last``.
        ema: EMA weights: None when the checkpoint has them (see ``timm_ignore.checkpoint``).
        model_kwargs: Model args beyond the run's ``model_kwargs``.
        num_classes: Class count, when neither the tag nor the run gives it.
        run_record: Card fields the run folder does not hold (see :func:`training_record`).
        dtype: Storage dtype of ``model.safetensors`` (``float32`` or ``float16``; see ``hub.storage``).
        max_error_change: For a dtype other than float32: the largest change of the test top-1 error (points) the
            stored copy may make.
        allow_untrained: Publish a run that did not train its recipe's epochs or is at chance level (a smoke run);
            its card then says so at the top. Without it such a run is refused before any evaluation.
        overwrite: Replace an existing ``out_dir`` (a folder; a file is never replaced).
        batch_size: Evaluation batch size.
        workers: Evaluation data loader workers.
        device: Evaluation device.

    Raises:
        FileExistsError: ``out_dir`` exists and ``overwrite`` is not set, or it is a file.
        FileNotFoundError, ValueError: Bad checkpoint, data, tables or run record (the message names the file).
        UntrainedRunError: The run is not a trained model (see :func:`timm_ignore.runs.untrained_problems`) and
            ``allow_untrained`` is not set.
        StorageError: The stored copy's test error differs from the checkpoint's by more than ``max_error_change``,
            or the weights do not fit ``dtype``; nothing is written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not overwrite or not out_dir.is_dir()):
        what = 'is a file, not a model folder; choose another --out' if out_dir.exists() and not out_dir.is_dir() \
            else 'already exists; pass --overwrite to replace it'
        raise FileExistsError(f'{out_dir}: {what}.')
    if repo_id.count('/') != 1 or not all(repo_id.split('/')):
        raise ValueError(f'--repo-id must be "ORG/NAME", got {repo_id!r}.')
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f'--dtype must be one of {", ".join(STORAGE_DTYPES)}, got {dtype!r}.')
    split_dir = find_split(data_root, split)
    tables = read_paper_tables(paper_tables)
    checkpoint = read_checkpoint(checkpoint_path, which=which, ema=ema)
    record = training_record(checkpoint, run_record)
    model, checkpoint = load_model(checkpoint, model_name, model_kwargs=model_kwargs, num_classes=num_classes)
    name, tag = model.pretrained_cfg['architecture'], model.pretrained_cfg.get('tag')
    spec = get_model_spec(name)
    if not tag:
        raise ValueError(f'{checkpoint.path}: a {model.num_classes}-class {name} is no tag of the zoo; publish '
                         f'{" or ".join(f"{name}.{t}" for t in spec.family.datasets)} (--model).')
    untrained = tuple(untrained_problems(checkpoint.run_dir, checkpoint.args, model.num_classes))
    if untrained and not allow_untrained:
        raise UntrainedRunError(f'{checkpoint.run_dir}: not a trained model: {"; ".join(untrained)}; a smoke run '
                                f'cannot become a card (pass --allow-untrained to publish it anyway, marked as such).')
    paper = tables.for_model(spec, DATASETS[tag].paper_dataset)
    stored_model = storage_copy(model, dtype)  # a value out of the dtype's range is refused before any evaluation
    evaluate = dict(batch_size=batch_size, workers=workers, device=device)
    reference_logits: list = []
    unrecorded = split == 'test' and record.test_top1_err_flip is None  # a train.py run, or an older record
    result = evaluate_split(model, split_dir, **evaluate, on_logits=reference_logits.append,
                            flip_tta=dtype == 'float32' or unrecorded)
    if unrecorded:  # the run's test at its published checkpoint, measured here as runs.scoring measures a run
        record = replace(record, test_top1_err_flip=result.top1_err_flip, test_top1_err=(
            result.top1_err if record.test_top1_err is None else record.test_top1_err))

    storage = None
    with staged_directory(out_dir) as staging:
        save_for_hf(stored_model.cpu(), str(staging), model_config={'label_names': list(result.class_names)},
                    safe_serialization=True)
        if dtype != 'float32':  # measure the copy as timm loads it: from the written folder into a float32 model
            stored_logits: list = []
            loaded = timm.create_model(f'local-dir:{staging}', pretrained=True)
            stored = evaluate_split(loaded, split_dir, **evaluate, data_config=result.data_config,
                                    on_logits=stored_logits.append, flip_tta=True)
            storage = check_stored_copy(dtype, result.top1_err, reference_logits, stored.top1_err, stored_logits,
                                        max_error_change)
            result = stored
        card = CardInputs(spec=spec, tag=tag, repo_id=repo_id, num_classes=model.num_classes, result=result,
                          paper=paper, training=record, code_version=code_version(),
                          data_copy=data_copy(read_data_description(data_root)), storage=storage,
                          untrained=untrained, run_sha256=run_digest(checkpoint.run_dir, checkpoint.path),
                          recipe_file=_recipe_file(record.recipe))
        build_card(card).save(staging / 'README.md')
        if checkpoint.args_file is not None:
            shutil.copyfile(checkpoint.args_file, staging / 'args.yaml')
        else:
            (staging / 'args.yaml').write_text(
                yaml.safe_dump(json.loads(json.dumps(checkpoint.args, default=str)), sort_keys=False))
    return PublishedFolder(path=out_dir, model_name=f'{name}.{tag}', result=result, storage=storage)
