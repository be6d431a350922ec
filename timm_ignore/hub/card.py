"""The model card (the Hub repository's README.md) of a published checkpoint, written with huggingface_hub.

The front matter is huggingface_hub's :class:`~huggingface_hub.ModelCardData`: Hub metadata, ``model-index`` with
the measured metrics as :class:`~huggingface_hub.EvalResult` entries, and the ``timm_ignore`` section that makes
the card a registry entry once it is copied into ``weights_cards/`` (see ``timm_ignore.models._weights``). Every
number comes from the evaluation and the training record it is given; model and dataset names come from the zoo table.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from huggingface_hub import EvalResult as HubEvalResult
from huggingface_hub import ModelCard, ModelCardData

from ..evaluate import EvalResult
from ..models.zoo import AUTHORS_CODE_URL, DATASETS, PAPER_ID, DataCopySpec, ModelSpec
from ..paper import PaperResult
from ..version import PROJECT_URL
from .storage import MAX_ERROR_CHANGE, StoredCopyCheck

__all__ = ['CardInputs', 'TrainingRecord', 'build_card', 'card_test_errors']

#: Training args shown as the recipe, when the run recorded them.
RECIPE_ARGS = (
    'config', 'epochs', 'batch_size', 'opt', 'lr', 'lr_base', 'momentum', 'weight_decay', 'sched', 'decay_milestones',
    'decay_rate', 'warmup_epochs', 'smoothing', 'mixup', 'hflip', 'model_ema', 'model_ema_decay', 'amp',
    'model_kwargs', 'weight_decay_policy', 'input_norm', 'shift', 'shift_mode', 'zero_init_last', 'amp_dtype',
    'channels_last', 'torchcompile', 'trainer', 'sched_on_updates', 'warmup_prefix', 'warmup_lr', 'min_lr')
#: Schedule args that only the named schedules read: shown only for them (the others carry timm's defaults).
_SCHED_ONLY_ARGS = {'decay_milestones': ('multistep',), 'decay_epochs': ('step',)}
#: Training args that say which data the run trained and selected on.
DATA_ARGS = ('data_dir', 'dataset', 'train_split', 'val_split', 'num_classes')
#: The card's data config keys (those a registry card may carry).
DATA_CONFIG_KEYS = ('input_size', 'mean', 'std', 'crop_pct', 'interpolation')
CITATION = """@inproceedings{laakom2021learning,
  title     = {Learning to ignore: rethinking attention in {CNNs}},
  author    = {Laakom, Firas and Chumachenko, Kateryna and Raitoharju, Jenni and Iosifidis, Alexandros and
               Gabbouj, Moncef},
  booktitle = {British Machine Vision Conference (BMVC)},
  year      = {2021},
  eprint    = {2111.05684},
  archivePrefix = {arXiv}
}"""
#: EvalResult field -> (Hub metric type, display name).
_METRICS = {'top1_err': ('top1_error', 'Top-1 error (%)'), 'top5_err': ('top5_error', 'Top-5 error (%)')}
FLIP_LABEL = 'Top-1 error, flip TTA (%)'
#: The Hub metric type of the flip-TTA error, for :attr:`EvalResult.top1_err_flip`.
_FLIP_METRIC = 'top1_error_flip_tta'
#: The project in the card's words: a link once it has a public address, else a statement that it has none.
PROJECT = (f'[timm-ignore]({PROJECT_URL})' if PROJECT_URL else
           'timm-ignore (a timm plugin; the project has no public address yet, so this card links to none)')


@dataclass(frozen=True)
class TrainingRecord:
    """What the card states about the training run; None is shown as "not recorded".

    A run folder gives most of it (``args.yaml``, ``summary.csv``, the checkpoint); a run record (``publish
    --run-record``) gives the rest or overrides it, e.g. a zoo run's GPU and wall time.

    Attributes:
        checkpoint: File name of the published checkpoint.
        ema: Whether the published weights are the EMA weights.
        seed: Training seed.
        epochs: Epochs trained.
        recipe_epochs: Epochs the run's recipe trains (timm's count from ``args.yaml``: a warm-up prefix included).
        best_epoch: Epoch of the published checkpoint (train.py's 0-based numbering, as in summary.csv).
        val_top1_err: Validation top-1 error (%) of that epoch.
        test_top1_err: Test top-1 error (%) of that epoch as the run's record states it (``run.json``; measured as
            every tool measures a run, through timm's data config).
        test_top1_err_flip: The same with flip test-time augmentation (mean softmax of the image and its mirror).
        test_top1_err_pixel_mean: For a recipe that subtracts the per-pixel mean image: the test error with that
            exact normalisation, which timm's data config cannot express (the engine's own measurement).
        dataset: What the training data was, when it is not simply the tag's dataset (e.g. "CIFAR-10 (JPEG copy):
            ...").
        recipe: The recipe followed (e.g. "the authors' CIFAR recipe, train_scripts/cifar10.yaml").
        hardware: Where it trained (e.g. "1x NVIDIA H100").
        wall_time_s: Training wall time in seconds.
        code_version: The code that trained (the card's provenance also names the code that published).
        args: The run's arguments (train.py's), for the recipe and data tables.
    """
    checkpoint: str = ''
    ema: bool = False
    seed: Optional[int] = None
    epochs: Optional[int] = None
    recipe_epochs: Optional[int] = None
    best_epoch: Optional[int] = None
    val_top1_err: Optional[float] = None
    test_top1_err: Optional[float] = None
    test_top1_err_flip: Optional[float] = None
    test_top1_err_pixel_mean: Optional[float] = None
    dataset: Optional[str] = None
    recipe: Optional[str] = None
    hardware: Optional[str] = None
    wall_time_s: Optional[float] = None
    code_version: Optional[str] = None
    args: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class CardInputs:
    """Everything a card states: the model, where it is published, how it was trained and what was measured.

    ``data_copy`` is the copy of the dataset the evaluated split belongs to (None: the official files), ``storage``
    the check of a stored copy in another dtype than float32 (None: the checkpoint's float32 weights as they are),
    ``untrained`` why the run is not a trained model when it was published anyway (stated at the top), ``run_sha256``
    what identifies the run published (:func:`timm_ignore.runs.run_digest`; ``publish-zoo`` compares it), and
    ``recipe_file`` the recipe's path in this package's source tree when it is one of its recipes.
    """
    spec: ModelSpec
    tag: str
    repo_id: str
    num_classes: int
    result: EvalResult
    paper: dict[str, PaperResult]
    training: TrainingRecord
    code_version: str
    data_copy: Optional[DataCopySpec] = None
    storage: Optional[StoredCopyCheck] = None
    untrained: tuple[str, ...] = ()
    run_sha256: str = ''
    recipe_file: Optional[str] = None
    license: str = 'apache-2.0'


def _card_data(c: CardInputs) -> ModelCardData:
    dataset = DATASETS[c.tag]
    split = Path(c.result.split_dir).name
    common = dict(task_type='image-classification', task_name='Image Classification', dataset_type=dataset.hub_id,
                  dataset_name=c.data_copy.display_name if c.data_copy else dataset.display_name)
    results = [HubEvalResult(**common, dataset_split=split, metric_type=hub_type, metric_name=name,
                             metric_value=round(getattr(c.result, key), 4))
               for key, (hub_type, name) in _METRICS.items()]
    if c.result.top1_err_flip is not None:
        results.append(HubEvalResult(**common, dataset_split=split, metric_type=_FLIP_METRIC,
                                     metric_name=FLIP_LABEL, metric_value=round(c.result.top1_err_flip, 4)))
    results.append(HubEvalResult(**common, dataset_split=split, metric_type='loss', metric_name='Cross-entropy loss',
                                 metric_value=round(c.result.loss, 6)))
    if c.training.val_top1_err is not None:
        results.append(HubEvalResult(
            **common, dataset_split='validation', metric_type='top1_error', metric_name='Top-1 error (%)',
            metric_value=round(c.training.val_top1_err, 4)))
    data_config = {k: list(v) if isinstance(v, tuple) else v for k, v in (c.result.data_config or {}).items()
                   if k in DATA_CONFIG_KEYS}
    return ModelCardData(
        library_name='timm', license=c.license, pipeline_tag='image-classification', datasets=[dataset.hub_id],
        tags=['image-classification', 'timm', 'timm-ignore', 'learning-to-ignore', PAPER_ID.lower()],
        model_name=f'{c.spec.name}.{c.tag}', eval_results=results,
        timm_ignore={'model': c.spec.name, 'tag': c.tag, 'hf_hub_id': c.repo_id, 'num_classes': c.num_classes,
                     'data_config': data_config, **({'run_sha256': c.run_sha256} if c.run_sha256 else {})})


def _args_table(args: dict[str, Any], keys: tuple[str, ...]) -> str:
    def read(key: str) -> bool:
        if key == 'amp_dtype':  # a float32 run (amp off) computed in no other dtype, whatever this one says
            return bool(args.get('amp'))
        return key not in _SCHED_ONLY_ARGS or args.get('sched') in _SCHED_ONLY_ARGS[key]

    rows = [f'| `{k}` | `{args[k]}` |' for k in keys if args.get(k) is not None and read(k)]
    return '\n'.join(['| arg | value |', '|---|---|', *rows]) if rows else '_The run recorded none of these args._'


def _shown(value: Any, fmt: str = '{}') -> str:
    return 'not recorded' if value is None else fmt.format(value)


def _key_settings(args: dict[str, Any]) -> str:
    """The recipe's main settings in words, from the run's args (all of them: the table below and ``args.yaml``)."""
    warmup = args.get('warmup_epochs')
    parts = [
        f'{args["epochs"]} epochs' if args.get('epochs') is not None else '',
        f'{warmup} warm-up epoch(s){" ahead of them" if args.get("warmup_prefix") else ""}' if warmup else '',
        f'batch {args["batch_size"]}' if args.get('batch_size') else '',
        f'optimizer `{args["opt"]}` (momentum {args.get("momentum")})' if args.get('opt') else '',
        f'peak lr {args["lr"]}' if args.get('lr') is not None else '',
        f'`{args["sched"]}` schedule{" set every update" if args.get("sched_on_updates") else ""}'
        if args.get('sched') else '',
        f'weight decay {args["weight_decay"]}' + (f' (policy `{args["weight_decay_policy"]}`)'
                                                  if args.get('weight_decay_policy') else '')
        if args.get('weight_decay') is not None and args.get('weight_decay_policy') != 'authors' else '',
        f'label smoothing {args["smoothing"]}' if args.get('smoothing') else '',
    ]
    return ', '.join(p for p in parts if p)


def _recipe(t: TrainingRecord, recipe_file: Optional[str] = None) -> str:
    """The recipe's name (and its path in the source tree), its key settings from the run's args, and what it is when
    the args say (the engine's authors' recipe)."""
    is_file_name = t.recipe is not None and t.recipe.endswith(('.yaml', '.yml')) and ' ' not in t.recipe
    shown = f'`{t.recipe}`' if is_file_name else _shown(t.recipe)
    if recipe_file:
        shown += f' (`{recipe_file}` in the timm-ignore source)'
    if _key_settings(t.args):
        shown += f'; {_key_settings(t.args)}'
    if t.args.get('weight_decay_policy') == 'authors':
        shown += (f" — the authors' recipe as [their code]({AUTHORS_CODE_URL}) runs it (per-tensor L2 weight decay, "
                  f"inputs minus the per-pixel mean image, real-valued shifts), trained by timm-ignore's in-memory "
                  f"engine (`timm-ignore train-queue`)")
    return shown


def _preprocessing_note(t: TrainingRecord) -> str:
    if t.args.get('input_norm') != 'pixel_mean':
        return ''
    own = t.test_top1_err_pixel_mean if t.test_top1_err_pixel_mean is not None else t.test_top1_err
    return ('\n\nThe run subtracted the per-pixel mean image of its training split from every input. timm\'s data '
            'config has only a per-channel mean and std: this model\'s config uses the mean image\'s channel means and '
            'std 1. Every number above is measured that way, through timm\'s pipeline (what `timm-ignore validate` and '
            'timm\'s `validate.py` reproduce); with the exact per-pixel mean image, as the run trained, the test top-1 '
            f'error is {_shown(own, "{:.2f}%")}.')


def _storage(c: CardInputs) -> str:
    s = c.storage
    if s is None:
        return 'The weights are stored in float32, as the checkpoint holds them.'
    return (f'The weights are stored in {s.dtype} and loaded by timm into the float32 model. On the {s.num_images} '
            f'images above, the stored copy has top-1 error {s.stored_top1_err:.2f}% and the float32 checkpoint '
            f'{s.checkpoint_top1_err:.2f}% (publishing refuses a difference above {MAX_ERROR_CHANGE} points); the '
            f'largest absolute difference between their logits is {s.max_abs_logit_diff:.3g}.')


def build_card(c: CardInputs) -> ModelCard:
    """The card: huggingface_hub's metadata as front matter, and the Markdown body."""
    r, t, name = c.result, c.training, f'{c.spec.name}.{c.tag}'
    dataset = DATASETS[c.tag]
    data_name = c.data_copy.display_name if c.data_copy else dataset.display_name
    copy_note = ''
    if c.data_copy:  # what the copy means, stated once: under Training when the run's data line says it already
        said = c.data_copy.meaning in (t.dataset or '')
        copy_note = ' What that copy is: see Training.' if said else f'\n\n**{data_name}**: {c.data_copy.meaning}'
    split = Path(r.split_dir).name
    results = '\n'.join(
        f'| {label} | {getattr(r, key):.2f} | {c.paper[key] if key in c.paper else "not reported"} |'
        for key, (_, label) in _METRICS.items())
    if r.top1_err_flip is not None:
        results += f'\n| {FLIP_LABEL} | {r.top1_err_flip:.2f} | not reported |'
    flip = '' if r.top1_err_flip is None else (
        f'; with flip test-time augmentation (the mean softmax of each image and its mirror) {r.top1_err_flip:.2f}%')
    warning = '' if not c.untrained else (
        f'> **Not a trained model.** This run was published with `--allow-untrained`: {"; ".join(c.untrained)}. Its '
        f'numbers show the pipeline works, not what the architecture reaches.\n\n')
    epochs = _shown(t.epochs) + ('' if t.recipe_epochs is None or t.recipe_epochs == t.epochs
                                 else f' (its recipe: {t.recipe_epochs})')
    hours = None if t.wall_time_s is None else t.wall_time_s / 3600
    body = f"""
# {name}

{warning}{c.spec.family.description}: {c.spec.attention_label}, trained on {data_name}. A model of *Learning to
ignore: rethinking attention in CNNs* (Laakom et al., BMVC 2021, {PAPER_ID}), implemented on timm by
{PROJECT}. The paper's authors published their own code at
[{AUTHORS_CODE_URL.split('github.com/')[-1]}]({AUTHORS_CODE_URL}).

**Top-1 error {r.top1_err:.2f}%** on the `{split}` split of {data_name}, single view (the number `timm-ignore
validate` and timm's `validate.py` reproduce with these weights and timm's data config){flip}.

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

Measured by `timm-ignore publish` on the `{split}` split of {data_name} ({r.num_images} images, SHA-256
`{r.split_sha256}`), mean cross-entropy loss {r.loss:.4f}, with the published weights. The paper reports the mean
(± std) of its runs.{copy_note}

| metric | this checkpoint | paper |
|---|---|---|
{results}

{_storage(c)}{_preprocessing_note(t)}

## Training

- Data: {t.dataset or data_name}
- Recipe: {_recipe(t, c.recipe_file)}
- Seed: {_shown(t.seed)}; epochs: {epochs}
- Published checkpoint: `{t.checkpoint}` ({'EMA weights' if t.ema else 'weights'}), epoch {_shown(t.best_epoch)}
  (0-based, as in the run's summary.csv); validation top-1 error {_shown(t.val_top1_err, '{:.2f}%')}; the run's
  own test top-1 error {_shown(t.test_top1_err, '{:.2f}%')} (timm's data config; with flip test-time augmentation
  {_shown(t.test_top1_err_flip, '{:.2f}%')})
- Trained on: {_shown(t.hardware)}; wall time {_shown(hours, '{:.2f} h')}

The run's full arguments are in `args.yaml` beside this card.

Recipe args:

{_args_table(t.args, RECIPE_ARGS)}

Data args:

{_args_table(t.args, DATA_ARGS)}

## Provenance

- Trained with: {_shown(t.code_version)}
- Published with: {c.code_version}
- Evaluated on: {r.hardware}

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(f'---\n{_card_data(c).to_yaml()}\n---\n{body}')


def card_test_errors(card: ModelCard, split: str = 'test') -> dict[str, float]:
    """The errors (%) a card states for ``split``, read back from its ``model-index`` by the names of
    :class:`~timm_ignore.evaluate.EvalResult` (``top1_err``, ``top5_err``, ``top1_err_flip``); a card written by
    another tool may state none of them."""
    names = {hub_type: key for key, (hub_type, _) in _METRICS.items()} | {_FLIP_METRIC: 'top1_err_flip'}
    return {names[r.metric_type]: float(r.metric_value) for r in card.data.eval_results or ()
            if r.dataset_split == split and r.metric_type in names}
