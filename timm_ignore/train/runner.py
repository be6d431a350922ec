"""``timm-ignore train``: run a recipe on one device with timm's library, writing train.py's output layout.

The output folder holds ``args.yaml``, ``summary.csv`` (``epoch, train_loss, eval_loss, eval_top1, eval_top5, lr``),
``last.pth.tar``, ``model_best.pth.tar`` and ``checkpoint-{epoch}.pth.tar``, as timm's train.py writes them, so the
tools downstream (``compare``, ``plot-loss``, timm's validate.py) read runs of either trainer alike.
"""
import contextlib
import functools
import importlib
import logging
import pathlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Callable, ContextManager, Optional

import torch
import yaml
from timm.data import create_dataset, create_loader, resolve_data_config
from timm.loss import LabelSmoothingCrossEntropy
from timm.models import create_model, load_checkpoint, resume_checkpoint, safe_model_name
from timm.optim import create_optimizer_v2, optimizer_kwargs
from timm.scheduler import create_scheduler_v2, scheduler_kwargs
from timm.utils import CheckpointSaver, ModelEmaV3, NativeScaler, get_outdir, random_seed, update_summary
from torch import nn

from ..autocast_speed import check_autocast_speed
from ..checkpoint import check_model_name, read_checkpoint
from ..devices import resolve_device
from ..evaluate import find_split
from ..host_memory import keep_freed_memory
from ..models._state_dict_check import check_state_dict
from ..runs import ARGS_FILE, LAST_CHECKPOINT, SUMMARY_FILE, EpochReport, RunSpec, active_time, trim_summary
from .config import ConfigError, TrainConfig
from .loop import StepCallback, train_one_epoch, validate

__all__ = ['TrainResult', 'build_model', 'build_loader', 'check_inputs', 'train']

_logger = logging.getLogger(__name__)
#: Metrics :func:`~timm_ignore.train.loop.validate` reports, any of which can pick the best checkpoint.
_EVAL_METRICS = ('top1', 'top5', 'loss')


@dataclass(frozen=True)
class TrainResult:
    """Where a run wrote its outputs, its best validation metric and epoch (None without validation), and whether it
    trained its last epoch (False when ``keep_going`` stopped it)."""
    output_dir: pathlib.Path
    best_metric: Optional[float]
    best_epoch: Optional[int]
    finished: bool = True


def build_model(config: TrainConfig) -> nn.Module:
    """Import ``device_modules`` (registering their models) and create the recipe's model.

    Raises:
        ValueError: Unknown model, or model args it does not take or accept (e.g. an alpha for a gate without one).
    """
    for module in config.device_modules or ():
        importlib.import_module(module)
    check_model_name(config.model)
    try:
        return create_model(
            config.model, pretrained=config.pretrained, num_classes=config.num_classes, drop_rate=config.drop,
            drop_path_rate=config.drop_path, **config.model_kwargs)
    except (TypeError, ValueError) as e:  # an argument the model does not take, or a value it refuses
        raise ConfigError(f'{config.model} with --model-kwargs {config.model_kwargs}: {e}') from None


def _run_dir(config: TrainConfig, input_size: Optional[int] = None) -> Optional[pathlib.Path]:
    """train.py's run folder; None while its default name (which needs the input size) is unknown."""
    if not config.experiment and input_size is None:
        return None
    name = config.experiment or '-'.join(
        [datetime.now().strftime('%Y%m%d-%H%M%S'), safe_model_name(config.model), str(input_size)])
    return pathlib.Path(config.output or './output/train') / name


def check_inputs(config: TrainConfig) -> None:
    """Check what a run needs before any work: the settings, the model name, the data folders, the run folder and
    the checkpoint to resume (readable with weights only). Building the model then checks the model args.

    Raises:
        ConfigError: Settings the runner cannot follow (naming the command-line option where there is one).
        FileNotFoundError: No data folder or split folder, no checkpoint to resume.
        FileExistsError: The run folder holds another run.
        ValueError: An unknown model, or a checkpoint to resume that is not a readable checkpoint.
    """
    if config.epochs < 1:
        raise ConfigError(f'--epochs must be at least 1, got {config.epochs}.')
    if config.start_epoch is not None and not config.resume:
        raise ConfigError('start_epoch only applies when resuming; give --resume as well.')
    if config.eval_metric not in _EVAL_METRICS:
        raise ConfigError(f'eval_metric must be one of {", ".join(_EVAL_METRICS)}, got {config.eval_metric!r}.')
    resolve_device(config.device)
    for module in config.device_modules or ():
        importlib.import_module(module)
    check_model_name(config.model)
    if not config.dataset:  # an ImageFolder tree: timm would fall back to the root for a missing split folder
        if not config.data_dir:
            raise ConfigError('no data: give --data-dir, the folder holding the split folders.')
        for split in (config.train_split, config.val_split):
            if split:
                find_split(config.data_dir, split, flag='--data-dir')
    if config.resume:
        try:
            read_checkpoint(config.resume, ema=False)
        except (FileNotFoundError, ValueError) as e:
            raise type(e)(f'--resume: {e}') from None
    path = _run_dir(config)
    resuming_here = path is not None and config.resume and \
        pathlib.Path(config.resume).resolve().parent == path.resolve()
    if path is not None and path.is_dir() and any(path.iterdir()) and not (resuming_here or config.overwrite):
        raise FileExistsError(
            f'{path} already holds a run; continue it with --resume {path / LAST_CHECKPOINT}, choose another '
            f'--experiment, or pass --overwrite to write over it.')
    if path is not None and path.exists() and not path.is_dir():
        raise FileExistsError(f'{path}: is a file, not a run folder; choose another --experiment or --output.')


def build_loader(
        config: TrainConfig,
        data_config: dict[str, Any],
        split: str,
        is_training: bool,
        device: torch.device,
) -> torch.utils.data.DataLoader:
    """timm dataset and loader of one split, with the recipe's augmentation when ``is_training``."""
    dataset = create_dataset(
        config.dataset, root=config.data_dir, split=split, is_training=is_training, class_map=config.class_map,
        download=config.dataset_download, batch_size=config.batch_size, seed=config.seed)
    common = dict(
        input_size=data_config['input_size'], mean=data_config['mean'], std=data_config['std'],
        num_workers=config.workers, pin_memory=config.pin_mem, device=device, use_prefetcher=False)
    if not is_training:
        return create_loader(
            dataset, batch_size=config.validation_batch_size or config.batch_size, is_training=False,
            interpolation=data_config['interpolation'], crop_pct=data_config['crop_pct'], **common)
    return create_loader(
        dataset, batch_size=config.batch_size, is_training=True, no_aug=config.no_aug,
        train_crop_mode=config.train_crop_mode, scale=config.scale, ratio=config.ratio, hflip=config.hflip,
        vflip=config.vflip, color_jitter=config.color_jitter, auto_augment=config.aa, re_prob=config.reprob,
        re_mode=config.remode, re_count=config.recount,
        interpolation=data_config['interpolation'] if config.no_aug else config.train_interpolation, **common)


def _device(config: TrainConfig) -> torch.device:
    device = resolve_device(config.device)
    if not config.device:
        _logger.info(f'No device given: training on {device}.')
    return device


def _amp(config: TrainConfig, device: torch.device) -> tuple[Callable[[], ContextManager], Optional[NativeScaler]]:
    if not config.amp:
        return contextlib.nullcontext, None
    if config.amp_dtype not in ('float16', 'bfloat16'):
        raise ConfigError(f'amp_dtype must be float16 or bfloat16, got {config.amp_dtype!r}.')
    dtype = getattr(torch, config.amp_dtype)
    try:
        check_autocast_speed(device, dtype)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    scaler = NativeScaler(device=device.type) if dtype == torch.float16 and device.type == 'cuda' else None
    return functools.partial(torch.autocast, device_type=device.type, dtype=dtype), scaler


def _output_dir(config: TrainConfig, input_size: int) -> pathlib.Path:
    """Create train.py's run folder (checked by :func:`check_inputs`)."""
    path = _run_dir(config, input_size)
    return pathlib.Path(get_outdir(str(path.parent), path.name))


def train(
        config: TrainConfig,
        on_epoch: Optional[Callable[[EpochReport], None]] = None,
        on_step: Optional[Callable[[RunSpec, int, int, int, float, float], None]] = None,
        on_resume: Optional[Callable[[RunSpec, int, int], None]] = None,
        keep_going: Optional[Callable[[], bool]] = None,
) -> TrainResult:
    """Train as timm's train.py would with the same settings, on one device.

    Args:
        config: The settings.
        on_epoch: Called after each epoch with its report (validation loss and error when there is a validation
            split), e.g. for progress.
        on_step: Called after every step with ``(run, epoch, step, steps, img/s so far, seconds so far)``.
        on_resume: Called with ``(run, first epoch to train, epochs)`` when the run continues from a checkpoint.
        keep_going: Asked before every epoch after the first one this call trains; False stops the run there (its
            checkpoints kept, ``finished`` False in the result).

    Raises:
        ConfigError, FileNotFoundError, FileExistsError, ValueError: See :func:`check_inputs`; a checkpoint to
            resume of another architecture.
    """
    check_inputs(config)
    random_seed(config.seed)
    device = _device(config)
    if device.type == 'cpu':  # a CPU step's large buffers are reused instead of faulted in anew every step
        keep_freed_memory()
    model = build_model(config).to(device)
    if config.resume:  # weights of this model? (timm's resume_checkpoint would fail with torch's key listing)
        check_state_dict(read_checkpoint(config.resume, ema=False).state_dict, model, f'{config.resume} (--resume)')
    args = config.to_namespace()
    data_config = resolve_data_config(vars(args), model=model, verbose=True)
    amp_autocast, loss_scaler = _amp(config, device)

    loader_train = build_loader(config, data_config, config.train_split, True, device)
    loader_eval = build_loader(config, data_config, config.val_split, False, device) if config.val_split else None
    args.lr = config.resolve_lr()
    _logger.info(f'Learning rate {args.lr:g} (global batch {config.batch_size}).')
    optimizer = create_optimizer_v2(model, **optimizer_kwargs(args))

    resume_epoch = None
    if config.resume:
        resume_epoch = resume_checkpoint(
            model, config.resume, optimizer=None if config.no_resume_opt else optimizer, loss_scaler=loss_scaler)
    model_ema = None
    if config.model_ema:
        model_ema = ModelEmaV3(model, decay=config.model_ema_decay, use_warmup=config.model_ema_warmup)
        if config.resume:
            load_checkpoint(model_ema.module, config.resume, use_ema=True)

    output_dir = _output_dir(config, data_config['input_size'][-1])
    eval_metric = config.eval_metric if loader_eval is not None else 'loss'
    saver = CheckpointSaver(
        model=model, optimizer=optimizer, args=args, model_ema=model_ema, amp_scaler=loss_scaler,
        checkpoint_dir=str(output_dir), recovery_dir=str(output_dir), decreasing=eval_metric == 'loss',
        max_history=config.checkpoint_hist)
    (output_dir / ARGS_FILE).write_text(yaml.safe_dump(asdict(config), default_flow_style=False))

    lr_scheduler, num_epochs = create_scheduler_v2(
        optimizer, **scheduler_kwargs(args, decreasing_metric=eval_metric == 'loss'),
        updates_per_epoch=len(loader_train))
    start_epoch = config.start_epoch if config.start_epoch is not None else (resume_epoch or 0)
    if start_epoch > 0:
        if pathlib.Path(config.resume).resolve().parent == output_dir.resolve():
            saver.load_state_dict_from_checkpoint(config.resume)
        trim_summary(output_dir, start_epoch)
        lr_scheduler.step(start_epoch)
        if on_resume is not None:
            on_resume(RunSpec(config.model, config.seed), start_epoch, num_epochs)
    _logger.info(f'Training {config.model} for epochs {start_epoch}..{num_epochs - 1}; output in {output_dir}')

    train_loss_fn = LabelSmoothingCrossEntropy(config.smoothing) if config.smoothing else nn.CrossEntropyLoss()
    eval_loss_fn = nn.CrossEntropyLoss()
    best_metric, best_epoch = None, None
    spec = RunSpec(config.model, config.seed)
    for epoch in range(start_epoch, num_epochs):
        if epoch > start_epoch and keep_going is not None and not keep_going():
            return TrainResult(output_dir, best_metric, best_epoch, finished=False)
        start = active_time()  # a pause of the process (kill -STOP) is not training time
        step_report: Optional[StepCallback] = None if on_step is None else functools.partial(on_step, spec, epoch)
        train_metrics = train_one_epoch(
            epoch, model, loader_train, optimizer, train_loss_fn.to(device), device, lr_scheduler=lr_scheduler,
            amp_autocast=amp_autocast, loss_scaler=loss_scaler, model_ema=model_ema, clip_grad=config.clip_grad,
            clip_mode=config.clip_mode, log_interval=config.log_interval, on_step=step_report)
        train_time = active_time() - start
        eval_metrics = None
        if loader_eval is not None:
            eval_model = model_ema.module if model_ema is not None else model
            eval_metrics = validate(eval_model, loader_eval, eval_loss_fn, device, amp_autocast)
        lrs = [group['lr'] for group in optimizer.param_groups]
        update_summary(epoch, train_metrics, eval_metrics, str(output_dir / SUMMARY_FILE), lr=sum(lrs) / len(lrs))
        metric = (eval_metrics or train_metrics)[eval_metric]
        best_metric, best_epoch = saver.save_checkpoint(epoch, metric=metric)
        lr_scheduler.step(epoch + 1, metric)
        if on_epoch is not None:
            images = len(loader_train.dataset)
            on_epoch(EpochReport(
                spec, epoch, num_epochs, train_metrics['loss'], eval_metrics and eval_metrics['loss'],
                eval_metrics and 100. - eval_metrics['top1'], lrs[0], images / max(train_time, 1e-9),
                active_time() - start, images))
    if best_metric is not None:
        _logger.info(f'Best {eval_metric}: {best_metric:.4f} (epoch {best_epoch})')
    return TrainResult(output_dir, best_metric, best_epoch)
