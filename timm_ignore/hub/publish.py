"""Turn a training checkpoint into a Hub model folder that timm loads with ``local-dir:`` and ``hf-hub:``.

The folder holds ``model.safetensors`` and timm's ``config.json`` (both written by ``timm.models.save_for_hf``), the
model card ``README.md`` with the metrics measured here, and the run's ``args.yaml``. It is written beside the
target and renamed into place when complete, so a failed run leaves no half-written folder.
"""
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from timm.models import save_for_hf

from ..evaluate import EvalResult, evaluate, find_split
from ..models.zoo import DATASETS, get_model_spec
from ..provenance import code_version
from ..staging import staged_directory
from .card import CardInputs, render_card
from .checkpoint import create_from_checkpoint, read_checkpoint
from .paper import paper_results

__all__ = ['PublishedFolder', 'code_version', 'publish_folder']


@dataclass(frozen=True)
class PublishedFolder:
    """A written model folder and the evaluation its card reports."""
    path: Path
    model_name: str
    result: EvalResult


def _split_tag(model_name: str, num_classes: Optional[int]) -> tuple[str, str]:
    """``(name, tag)`` of a ``name[.tag]``; without a tag, the tag with the run's class count, else the default."""
    spec = get_model_spec(model_name)
    name, _, tag = model_name.partition('.')
    matching = [t for t in spec.family.datasets if DATASETS[t].num_classes == num_classes]
    tag = tag or (matching[0] if len(matching) == 1 else spec.family.datasets[0])
    if tag not in spec.family.datasets:
        raise ValueError(f'{name} has no tag {tag!r}; its tags: {", ".join(spec.family.datasets)}.')
    return name, tag


def _jsonable(args: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(args, default=str))


def publish_folder(
        checkpoint_path: Union[str, Path],
        out_dir: Union[str, Path],
        *,
        data_root: Union[str, Path],
        repo_id: str,
        paper_tables: Union[str, Path],
        model_name: Optional[str] = None,
        split: str = 'test',
        which: str = 'best',
        ema: bool = False,
        model_kwargs: Optional[dict[str, Any]] = None,
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
        paper_tables: The paper's tables as CSV, for the paper's number of the same row.
        model_name: ``name.tag`` published (the tag gives the dataset); defaults to the run's model, default tag.
        split: Evaluation split folder.
        which: Run folder checkpoint, ``best`` or ``last``.
        ema: Publish the EMA weights.
        model_kwargs: Model args beyond the run's ``model_kwargs``.
        overwrite: Replace an existing ``out_dir``.
        batch_size: Evaluation batch size.
        workers: Evaluation data loader workers.
        device: Evaluation device.

    Raises:
        FileExistsError: ``out_dir`` exists and ``overwrite`` is not set.
        FileNotFoundError, ValueError: Bad checkpoint, data or tables (the message names the file).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f'{out_dir}: already exists; pass overwrite (--overwrite) to replace it.')
    if repo_id.count('/') != 1:
        raise ValueError(f'repo_id must be "ORG/NAME", got {repo_id!r}.')
    split_dir = find_split(data_root, split)
    checkpoint = read_checkpoint(checkpoint_path, which=which, ema=ema)
    if model_name is None and not checkpoint.arch:
        raise ValueError(f'{checkpoint.path}: records no architecture; name the model to publish.')
    name, tag = _split_tag(model_name or checkpoint.arch, checkpoint.num_classes)
    spec = get_model_spec(name)
    paper = paper_results(paper_tables, spec, tag)
    model = create_from_checkpoint(f'{name}.{tag}', checkpoint, model_kwargs=model_kwargs)
    result = evaluate(model, split_dir, batch_size=batch_size, workers=workers, device=device)

    with staged_directory(out_dir) as staging:
        save_for_hf(model.cpu(), str(staging), model_config={'label_names': list(result.class_names)},
                    safe_serialization=True)
        card = CardInputs(spec=spec, tag=tag, repo_id=repo_id, num_classes=model.num_classes, result=result,
                          paper=paper, checkpoint=checkpoint, code_version=code_version())
        (staging / 'README.md').write_text(render_card(card), encoding='utf-8')
        if checkpoint.args_file is not None:
            shutil.copyfile(checkpoint.args_file, staging / 'args.yaml')
        else:
            (staging / 'args.yaml').write_text(yaml.safe_dump(_jsonable(checkpoint.args), sort_keys=False))
    return PublishedFolder(path=out_dir, model_name=f'{name}.{tag}', result=result)
