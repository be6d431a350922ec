"""One training run of the engine: data and augmentation on the training device, resumable from any epoch.

A run folder has timm train.py's layout (``args.yaml``, ``summary.csv``, ``last.pth.tar``, ``model_best.pth.tar``), so
``compare``, ``publish``, ``validate``, ``plot-loss`` and ``grad-cam`` read it as any train.py run, plus ``run.json``,
the run's record, written last: a folder with ``run.json`` is finished and is never trained again.

Resuming: ``last.pth.tar`` is written after every epoch (atomically) with the model, optimizer and loss scaler
states and every random state the run draws from (its data generator, torch's CPU and CUDA generators). A run
killed at any point restarts from its last finished epoch and ends with the result of an uninterrupted run: bit for
bit on the CPU, up to cuDNN's nondeterminism on a GPU.
"""
import datetime
import functools
import logging
import math
import pathlib
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import timm
import torch
import yaml
from timm.models import create_model
from timm.optim import create_optimizer_v2, optimizer_kwargs
from timm.scheduler import create_scheduler_v2, scheduler_kwargs
from timm.utils import update_summary
from torch import nn
from torch.nn import functional as F

from ..evaluate import evaluate
from ..host_memory import keep_freed_memory
from ..provenance import code_version, device_name
from ..runs import (
    ARGS_FILE, BEST_CHECKPOINT, ENGINE_TRAINER, LAST_CHECKPOINT, SUMMARY_FILE, EpochReport, RunSpec, active_time,
    atomic_save, read_record, score_run, summary_metrics, trim_summary, write_record)
from .augment import augment_batch, draw_augmentation, normalize, pad_and_crop
from .data import ImageData, SplitTensors
from .recipe import EngineRecipe
from .weight_decay import authors_param_groups

__all__ = ['StepCallback', 'measure_epoch_time', 'train_run']

_logger = logging.getLogger(__name__)

#: Offset between a run's seed and its data generator's seed, so model init and data order are separate streams.
_DATA_SEED_OFFSET = 0x5EED
#: ``(run, epoch, step, steps, img/s so far, seconds into the epoch)``, called after every step of an epoch.
StepCallback = Callable[[RunSpec, int, int, int, float, float], None]


class _Inputs:
    """Normalisation and augmentation of one dataset on its device, per the recipe."""

    def __init__(self, data: ImageData, recipe: EngineRecipe) -> None:
        self.recipe = recipe
        device = data.mean_image.device
        if recipe.input_norm == 'pixel_mean':
            self.offset, self.scale = data.mean_image, None
        else:
            self.offset = torch.tensor(recipe.mean, device=device).view(-1, 1, 1)
            self.scale = torch.tensor(recipe.std, device=device).view(-1, 1, 1)
        self.memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format

    def eval_batches(self, split: SplitTensors) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        size = self.recipe.validation_batch_size
        for start in range(0, len(split), size):
            images = normalize(split.images[start:start + size], self.offset, self.scale)
            yield images.contiguous(memory_format=self.memory_format), split.labels[start:start + size]

    def train_batch(self, images: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        if self.recipe.shift_mode == 'pad_crop':
            x = normalize(pad_and_crop(images, shifts, flips), self.offset, self.scale)
        else:
            x = augment_batch(normalize(images, self.offset, self.scale), shifts, flips)
        return x.contiguous(memory_format=self.memory_format)


def _build_optimizer(model: nn.Module, recipe: EngineRecipe) -> torch.optim.Optimizer:
    kwargs = optimizer_kwargs(recipe.to_namespace())
    if recipe.weight_decay_policy == 'authors':
        return create_optimizer_v2(model, param_group_fn=authors_param_groups, **kwargs)
    return create_optimizer_v2(model, filter_bias_and_bn=recipe.weight_decay_policy == 'timm', **kwargs)


@dataclass
class _Training:
    """Everything one run trains with, built from timm's factories as the recipe says (seeded by the run's seed)."""
    model: nn.Module
    train_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    autocast: Callable[[], Any]
    inputs: _Inputs
    steps: int
    num_epochs: int

    @classmethod
    def build(cls, spec: RunSpec, recipe: EngineRecipe, data: ImageData) -> '_Training':
        device = data.mean_image.device
        if device.type == 'cpu':  # a CPU step's large buffers are reused instead of faulted in anew every step
            keep_freed_memory()
        torch.manual_seed(spec.seed)
        model = create_model(spec.model, num_classes=recipe.num_classes, **recipe.model_kwargs)
        if recipe.zero_init_last:
            for module in model.modules():
                if hasattr(module, 'zero_init_last'):  # timm's BasicBlock/Bottleneck: zero their last BN's scale
                    module.zero_init_last()
        model.to(device=device, memory_format=torch.channels_last if recipe.channels_last else torch.contiguous_format)
        optimizer = _build_optimizer(model, recipe)
        steps = len(data.train) // recipe.batch_size
        scheduler, num_epochs = create_scheduler_v2(
            optimizer, **scheduler_kwargs(recipe.to_namespace(), decreasing_metric=recipe.eval_metric == 'loss'),
            updates_per_epoch=steps)
        amp_dtype = getattr(torch, recipe.amp_dtype)
        autocast = functools.partial(torch.autocast, device.type, dtype=amp_dtype, enabled=recipe.amp)
        scaler = torch.amp.GradScaler(device.type, enabled=recipe.amp and amp_dtype == torch.float16)
        train_model = model
        if recipe.torchcompile:
            train_model = torch.compile(model, backend=recipe.torchcompile, mode=recipe.compile_mode)
        return cls(model, train_model, optimizer, scheduler, scaler, autocast, _Inputs(data, recipe), steps, num_epochs)


def measure_epoch_time(
        spec: RunSpec,
        recipe: EngineRecipe,
        data: ImageData,
        steps: int = 8,
        warmup_steps: int = 3,
) -> Optional[float]:
    """Seconds one epoch of ``spec`` takes on ``data``'s device: a few timed training steps and one validation batch.

    The steps are the run's own (same model, optimizer, augmentation and precision), on a throwaway copy, so the
    estimate includes everything an epoch does except its checkpoint writes. Each step is timed on its own and the
    median is taken, and the validation batch is timed twice and the faster kept, so one slow step (the process paused
    or preempted for a while) does not multiply into the estimate. It is still a lower bound on a machine whose speed
    varies for minutes (other work, thermal limits); callers planning a time budget should add a margin.

    Args:
        spec: Model and seed.
        recipe: Training settings.
        data: The dataset on the training device.
        steps: Timed training steps.
        warmup_steps: Untimed steps first (allocator, oneDNN/cuDNN kernel choice).

    An epoch shorter than ``warmup_steps + steps`` gives fewer of both (at least one of each); one of a single step
    has no step to time after a warm-up, and gives None (no estimate).
    """
    t = _Training.build(spec, recipe, data)
    if t.steps < 2:
        return None
    steps = min(steps, t.steps - 1)
    warmup_steps = max(1, min(warmup_steps, t.steps - steps))
    on_cuda = data.mean_image.device.type == 'cuda'
    marks = []

    def on_step(step: int, *_: Any) -> None:
        if warmup_steps <= step <= warmup_steps + steps:
            if on_cuda:
                torch.cuda.synchronize()
            marks.append(active_time())

    _train_epoch(t.train_model, t.optimizer, t.scheduler, t.scaler, t.autocast, t.inputs, data.train,
                 torch.Generator().manual_seed(spec.seed), 0, warmup_steps + steps, recipe, on_step)
    step_s = statistics.median(after - before for before, after in zip(marks, marks[1:]))
    sample = min(len(data.validation), recipe.validation_batch_size)
    head = SplitTensors(data.validation.images[:sample], data.validation.labels[:sample])
    batch_s = []
    for _ in range(2):
        started = active_time()
        evaluate(t.train_model, t.inputs.eval_batches(head), data.mean_image.device, t.autocast, nn.CrossEntropyLoss())
        batch_s.append(active_time() - started)
    return t.steps * step_s + min(batch_s) * len(data.validation) / sample


def _random_states(data_rng: torch.Generator) -> dict[str, Any]:
    return dict(
        data_rng=data_rng.get_state(), torch_rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


def _restore_random_states(states: dict[str, Any], data_rng: torch.Generator) -> None:
    data_rng.set_state(states['data_rng'])
    torch.set_rng_state(states['torch_rng'])
    if states.get('cuda_rng') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda_rng'])


def _train_py_args(spec: RunSpec, recipe: EngineRecipe, data: ImageData) -> dict[str, Any]:
    """The run's settings as train.py's ``args.yaml`` keys, for the tools that read run folders.

    timm's data config has only per-channel ``mean``/``std``: for ``input_norm: pixel_mean`` they are the channel means
    of the mean image and 1, the nearest the config can say (the engine's own evaluation subtracts the mean image).
    """
    mean, std = recipe.mean, recipe.std
    if recipe.input_norm == 'pixel_mean':
        mean, std = data.mean_image.mean((1, 2)).tolist(), [1.0] * data.mean_image.shape[0]
    return dict(
        recipe.to_dict(), model=spec.model, seed=spec.seed, data_dir=data.source, dataset='', mean=mean, std=std,
        input_size=list(data.mean_image.shape), crop_pct=1.0, interpolation='bilinear', class_names=list(data.classes),
        trainer=ENGINE_TRAINER)


def train_run(
        spec: RunSpec,
        recipe: EngineRecipe,
        data: ImageData,
        run_dir: pathlib.Path,
        recipe_name: str = '',
        on_epoch: Optional[Callable[[EpochReport], None]] = None,
        on_step: Optional[StepCallback] = None,
        on_resume: Optional[Callable[[RunSpec, int, int], None]] = None,
        keep_going: Optional[Callable[[], bool]] = None,
) -> Optional[dict[str, Any]]:
    """Train one (model, seed) run to the end, resuming from ``run_dir/last.pth.tar`` if it exists.

    Args:
        spec: Model and seed.
        recipe: Training settings.
        data: The dataset, already on the training device (its tensors' device is the run's device).
        run_dir: The run's folder (created if missing).
        recipe_name: How the record names the recipe (its file name).
        on_epoch: Called after every finished epoch.
        on_step: Called after every step (progress within an epoch; the callee throttles its lines).
        on_resume: Called with ``(spec, first epoch to train, epochs)`` when the run resumes from its checkpoint.
        keep_going: Asked before every epoch after the first one this call trains; False stops the run there, its
            last checkpoint kept for a later call (a time limit's split run).

    Returns:
        The run's record (also written to ``run_dir/run.json``): best epoch, validation and test errors in %
        (the test through :func:`timm_ignore.runs.score_run`, as every tool measures a run), wall time, images/s,
        device, code version; None when ``keep_going`` stopped it before its last epoch.
    """
    finished = read_record(run_dir)
    if finished is not None:
        return finished
    run_dir.mkdir(parents=True, exist_ok=True)
    device = data.mean_image.device
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once (nondeterministic)
    data_rng = torch.Generator().manual_seed(spec.seed + _DATA_SEED_OFFSET)
    t = _Training.build(spec, recipe, data)
    model, train_model, optimizer, scheduler, scaler, autocast, inputs = (
        t.model, t.train_model, t.optimizer, t.scheduler, t.scaler, t.autocast, t.inputs)
    batch, steps, num_epochs = recipe.batch_size, t.steps, t.num_epochs

    args = _train_py_args(spec, recipe, data)
    state = dict(epoch=-1, best_metric=None, best_epoch=None, best_val=None, train_time_s=0.0, wall_time_s=0.0,
                 train_images=0)
    last = run_dir / LAST_CHECKPOINT
    if last.is_file():
        checkpoint = torch.load(last, map_location='cpu', weights_only=True)
        model.load_state_dict(checkpoint['state_dict'])
        optimizer.load_state_dict(checkpoint['optimizer'])
        scaler.load_state_dict(checkpoint['scaler'])
        state = checkpoint['engine']
        _restore_random_states(checkpoint['random_states'], data_rng)
        if on_resume is not None:
            on_resume(spec, state['epoch'] + 1, num_epochs)
    else:
        (run_dir / ARGS_FILE).write_text(yaml.safe_dump(args, sort_keys=False))
    versions = state.setdefault('code_versions', [])  # every version that trained a piece of the run, in order
    if code_version() not in versions:
        versions.append(code_version())
    start_epoch = state['epoch'] + 1
    trim_summary(run_dir, start_epoch)
    scheduler.step(start_epoch)

    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(start_epoch, num_epochs):
        if epoch > start_epoch and keep_going is not None and not keep_going():
            return None
        start = active_time()  # a pause of the process (kill -STOP) is not training time
        step_report = None if on_step is None else functools.partial(on_step, spec, epoch)
        train_loss = _train_epoch(train_model, optimizer, scheduler, scaler, autocast, inputs, data.train, data_rng,
                                  epoch, steps, recipe, step_report)
        train_time = active_time() - start
        val = summary_metrics(evaluate(train_model, inputs.eval_batches(data.validation), device, autocast, loss_fn))
        epoch_time = active_time() - start
        lr = optimizer.param_groups[0]['lr']
        update_summary(epoch, {'loss': train_loss}, val, str(run_dir / SUMMARY_FILE), lr=lr)
        metric = val[recipe.eval_metric]
        best = state['best_metric']
        if best is None or (metric < best if recipe.eval_metric == 'loss' else metric > best):
            state.update(best_metric=metric, best_epoch=epoch, best_val=val)
            atomic_save(dict(epoch=epoch, arch=spec.model, state_dict=model.state_dict(), metric=metric,
                             args=args, version=2), run_dir / BEST_CHECKPOINT)
        state.update(epoch=epoch, train_time_s=state['train_time_s'] + train_time,
                     wall_time_s=state['wall_time_s'] + epoch_time, train_images=state['train_images'] + steps * batch)
        scheduler.step(epoch + 1, metric)
        atomic_save(dict(
            epoch=epoch, arch=spec.model, state_dict=model.state_dict(), optimizer=optimizer.state_dict(),
            scaler=scaler.state_dict(), args=args, version=2, engine=state,
            random_states=_random_states(data_rng)), last)
        if on_epoch is not None:
            on_epoch(EpochReport(spec, epoch, num_epochs, train_loss, val['loss'], 100.0 - val['top1'], lr,
                                 steps * batch / train_time, epoch_time, steps * batch))

    record = _finish(spec, recipe, recipe_name, data, inputs, model, run_dir, state, num_epochs, autocast)
    write_record(run_dir, record)
    return record


def _train_epoch(
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: torch.amp.GradScaler,
        autocast: Callable[[], Any],
        inputs: _Inputs,
        train: SplitTensors,
        data_rng: torch.Generator,
        epoch: int,
        steps: int,
        recipe: EngineRecipe,
        on_step: Optional[Callable[[int, int, float, float], None]] = None,
) -> float:
    """One epoch of ``steps`` full batches in a fresh random order; returns the mean training loss.

    All random numbers of the epoch are drawn up front on the CPU; the only host-device synchronisation is the loss
    read at the end. ``on_step(step, steps, img/s so far, seconds so far)`` is called after every step (the time
    it sees on a GPU is that of the launches, which run ahead of the device by at most a few steps).
    """
    batch = recipe.batch_size
    count = steps * batch
    order = torch.randperm(len(train), generator=data_rng)[:count]
    shifts, flips = draw_augmentation(
        data_rng, count, recipe.shift, recipe.hflip, whole_pixels=recipe.shift_mode == 'pad_crop')
    device = train.images.device
    order, shifts, flips = (t.to(device, non_blocking=True) for t in (order, shifts, flips))
    model.train()
    loss_sum = torch.zeros((), device=device)
    num_updates = epoch * steps
    started = active_time()
    for step in range(steps):
        idx = order[step * batch:(step + 1) * batch]
        images = inputs.train_batch(train.images[idx], shifts[step * batch:(step + 1) * batch],
                                    flips[step * batch:(step + 1) * batch])
        with autocast():
            output = model(images)
        loss = F.cross_entropy(output.float(), train.labels[idx], label_smoothing=recipe.smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        num_updates += 1
        scheduler.step_update(num_updates=num_updates)
        loss_sum += loss.detach()
        if on_step is not None:
            elapsed = active_time() - started
            on_step(step + 1, steps, (step + 1) * batch / max(elapsed, 1e-9), elapsed)
    mean_loss = loss_sum.item() / steps
    if not math.isfinite(mean_loss):
        raise FloatingPointError(f'training loss is {mean_loss} in epoch {epoch}; the run diverged.')
    return mean_loss


def _finish(
        spec: RunSpec,
        recipe: EngineRecipe,
        recipe_name: str,
        data: ImageData,
        inputs: _Inputs,
        model: nn.Module,
        run_dir: pathlib.Path,
        state: dict[str, Any],
        num_epochs: int,
        autocast: Callable[[], Any],
) -> dict[str, Any]:
    """Test the best checkpoint and build the run's record.

    The test is :func:`timm_ignore.runs.score_run` (timm's data pipeline with the run's ``args.yaml`` data config,
    single view and flip TTA), the number ``validate``, ``publish`` and ``compare --runs`` measure. A recipe with
    ``input_norm: pixel_mean`` is also tested as it trained, minus the exact mean image (``test_top1_err_pixel_mean``).
    """
    device = data.mean_image.device
    test: dict[str, Any] = dict(test_top1_err=None, test_top5_err=None, test_loss=None, test_top1_err_flip=None)
    if data.test is not None:
        scored = score_run(run_dir, 'test', data_dir=data.source, device=device)
        test = {k: scored[k] for k in test}
        if recipe.input_norm == 'pixel_mean':
            best = torch.load(run_dir / BEST_CHECKPOINT, map_location='cpu', weights_only=True)
            model.load_state_dict(best['state_dict'])
            own = evaluate(model, inputs.eval_batches(data.test), device, autocast)
            test['test_top1_err_pixel_mean'] = round(own.top1_err, 4)
    best_val = state['best_val']
    return dict(
        model=spec.model, seed=spec.seed, recipe=recipe_name, recipe_fingerprint=recipe.fingerprint(),
        epochs=num_epochs, best_epoch=state['best_epoch'],
        val_top1_err=round(100.0 - best_val['top1'], 4), val_loss=round(best_val['loss'], 6), **test,
        wall_time_s=round(state['wall_time_s'], 1), train_time_s=round(state['train_time_s'], 1),
        train_images_per_s=round(state['train_images'] / max(state['train_time_s'], 1e-9), 1),
        device=device_name(device), amp=recipe.amp and recipe.amp_dtype, channels_last=recipe.channels_last,
        torchcompile=recipe.torchcompile, torch=torch.__version__, timm=timm.__version__,
        code_version='; then '.join(state['code_versions']),
        data_dir=data.source, dataset=data.description,
        images=dict(train=len(data.train), validation=len(data.validation),
                    test=None if data.test is None else len(data.test)),
        finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    )
