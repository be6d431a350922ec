"""The model card (the Hub repository's README.md) of a published checkpoint.

The YAML front matter is the Hub metadata (``library_name: timm``, license, datasets, tags, ``model-index`` with the
measured metrics) plus the ``timm_ignore`` section that makes the card a registry entry once it is copied into
``weights_cards/`` (see ``timm_ignore.models._weights``). Every number in the card comes from the evaluation it is
given; nothing is typed by hand.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from ..evaluate import EvalResult
from ..models.zoo import PAPER_ID, ModelSpec
from .checkpoint import TrainingCheckpoint
from .paper import PaperResult

__all__ = ['CardInputs', 'render_card']

#: Hub dataset id and display name of each dataset tag.
HUB_DATASETS = {
    'cifar10': ('uoft-cs/cifar10', 'CIFAR-10'),
    'cifar100': ('uoft-cs/cifar100', 'CIFAR-100'),
    'in1k': ('ILSVRC/imagenet-1k', 'ImageNet-1k'),
}
#: Training args shown as the recipe, when the run recorded them.
RECIPE_ARGS = (
    'epochs', 'batch_size', 'opt', 'lr', 'momentum', 'weight_decay', 'sched', 'decay_milestones', 'decay_rate',
    'warmup_epochs', 'smoothing', 'mixup', 'hflip', 'model_ema', 'model_ema_decay', 'amp', 'model_kwargs')
#: Training args that say which data the run trained and selected on.
DATA_ARGS = ('data_dir', 'dataset', 'train_split', 'val_split', 'num_classes')
CITATION = """@inproceedings{laakom2021learning,
  title     = {Learning to ignore: rethinking attention in {CNNs}},
  author    = {Laakom, Firas and Chumachenko, Kateryna and Raitoharju, Jenni and Iosifidis, Alexandros and
               Gabbouj, Moncef},
  booktitle = {British Machine Vision Conference (BMVC)},
  year      = {2021},
  eprint    = {2111.05684},
  archivePrefix = {arXiv}
}"""
_METRICS = (('top1_err', 'top1_error', 'Top-1 error (%)'), ('top5_err', 'top5_error', 'Top-5 error (%)'))


@dataclass(frozen=True)
class CardInputs:
    """Everything a card states: the model, where it is published, how it was trained and what was measured."""
    spec: ModelSpec
    tag: str
    repo_id: str
    num_classes: int
    result: EvalResult
    paper: dict[str, PaperResult]
    checkpoint: TrainingCheckpoint
    code_version: str
    license: str = 'apache-2.0'


def _front_matter(c: CardInputs) -> dict[str, Any]:
    hub_dataset, dataset_name = HUB_DATASETS[c.tag]
    split = Path(c.result.split_dir).name
    metrics = [dict(type=hub_type, name=name, value=round(getattr(c.result, field), 4))
               for field, hub_type, name in _METRICS]
    metrics.append(dict(type='loss', name='Cross-entropy loss', value=round(c.result.loss, 6)))
    data_config = {k: list(v) if isinstance(v, tuple) else v for k, v in c.result.data_config.items()
                   if k in ('input_size', 'mean', 'std', 'crop_pct', 'interpolation')}
    return {
        'library_name': 'timm',
        'license': c.license,
        'pipeline_tag': 'image-classification',
        'datasets': [hub_dataset],
        'tags': ['image-classification', 'timm', 'timm-ignore', 'learning-to-ignore', PAPER_ID.lower()],
        'model-index': [{
            'name': f'{c.spec.name}.{c.tag}',
            'results': [{
                'task': {'type': 'image-classification', 'name': 'Image Classification'},
                'dataset': {'type': c.tag, 'name': dataset_name, 'split': split},
                'metrics': metrics,
            }],
        }],
        'timm_ignore': {
            'model': c.spec.name, 'tag': c.tag, 'hf_hub_id': c.repo_id, 'num_classes': c.num_classes,
            'data_config': data_config,
        },
    }


def _paper_cell(paper: Optional[PaperResult]) -> str:
    if paper is None:
        return 'not reported'
    std = f' ± {paper.std:.2f}' if paper.std is not None else ''
    return f'{paper.value:.2f}{std} (Table {paper.table})'


def _args_table(args: dict[str, Any], keys: tuple[str, ...]) -> str:
    rows = [f'| `{k}` | `{args[k]}` |' for k in keys if args.get(k) is not None]
    return '\n'.join(['| arg | value |', '|---|---|', *rows]) if rows else '_The run recorded none of these args._'


def render_card(c: CardInputs) -> str:
    """The card as Markdown with YAML front matter."""
    r, name, ckpt = c.result, f'{c.spec.name}.{c.tag}', c.checkpoint
    attention = 'no attention'
    if c.spec.attn is not None:
        attention = f'{c.spec.attn.upper()} attention, {c.spec.gate.name} gate'
    results = '\n'.join(
        f'| {label} | {getattr(r, field):.2f} | {_paper_cell(c.paper.get(field))} |' for field, _, label in _METRICS)
    which = 'EMA weights' if ckpt.ema else 'weights'
    epoch = f', epoch {ckpt.epoch}' if ckpt.epoch is not None else ''
    front = yaml.safe_dump(_front_matter(c), sort_keys=False, width=120)
    return f"""---
{front}---

# {name}

{c.spec.family.description}: {attention}, trained on {HUB_DATASETS[c.tag][1]}, from *Learning to ignore: rethinking
attention in CNNs* (BMVC 2021, {PAPER_ID}), as implemented by [timm-ignore](https://github.com/firasl/inverse_attention)
on timm.

## Usage

```python
import timm
import timm_ignore  # noqa: F401  (registers the models)

model = timm.create_model('hf-hub:{c.repo_id}', pretrained=True).eval()
# with this card in timm-ignore's weights_cards/: timm.create_model('{name}', pretrained=True)
data_config = timm.data.resolve_data_config(model=model)
transform = timm.data.create_transform(**data_config, is_training=False)
```

Fine-tune to another class count with `timm.create_model('hf-hub:{c.repo_id}', pretrained=True, num_classes=N)`.

## Results

Measured by `timm-ignore publish` on the `{Path(r.split_dir).name}` split ({r.num_images} images,
SHA-256 `{r.split_sha256}`), mean cross-entropy loss {r.loss:.4f}. The paper reports the mean (± std) of its runs.

| metric | this checkpoint | paper |
|---|---|---|
{results}

## Training

Checkpoint `{ckpt.path.name}` ({which}{epoch}); seed `{ckpt.args.get('seed', 'not recorded')}`. The run's full
arguments are in `args.yaml` beside this card.

Recipe:

{_args_table(ckpt.args, RECIPE_ARGS)}

Data:

{_args_table(ckpt.args, DATA_ARGS)}

## Provenance

- Code: {c.code_version}
- Evaluated on: {r.hardware}
- Data config: `{ {k: v for k, v in _front_matter(c)['timm_ignore']['data_config'].items()} }`

## Citation

```bibtex
{CITATION}
```
"""
