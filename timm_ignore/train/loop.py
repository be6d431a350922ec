"""One training epoch and one validation pass, returning the metrics timm's train.py writes to summary.csv."""
import contextlib
import logging
import time
from typing import Callable, ContextManager, Iterable, Optional

import torch
from timm.scheduler.scheduler import Scheduler
from timm.utils import AverageMeter, ModelEmaV3, NativeScaler, dispatch_clip_grad
from torch import nn

from ..evaluate import evaluate as measure
from ..runs import summary_metrics

__all__ = ['StepCallback', 'train_one_epoch', 'validate']

#: ``(step, steps, img/s so far, seconds so far)`` after every step of an epoch.
StepCallback = Callable[[int, int, float, float], None]

_logger = logging.getLogger(__name__)


def train_one_epoch(
        epoch: int,
        model: nn.Module,
        loader: Iterable,
        optimizer: torch.optim.Optimizer,
        loss_fn: nn.Module,
        device: torch.device,
        lr_scheduler: Optional[Scheduler] = None,
        amp_autocast: Callable[[], ContextManager] = contextlib.nullcontext,
        loss_scaler: Optional[NativeScaler] = None,
        model_ema: Optional[ModelEmaV3] = None,
        clip_grad: Optional[float] = None,
        clip_mode: str = 'norm',
        log_interval: int = 50,
        on_step: Optional[StepCallback] = None,
) -> dict[str, float]:
    """Train for one epoch; logs progress every ``log_interval`` steps and calls ``on_step`` after every step.

    ``lr_scheduler.step_update`` is called after every step, as train.py does (a no-op for per-epoch schedules).

    Returns:
        ``{'loss': mean training loss over the epoch's samples}``.
    """
    model.train()
    losses, batch_time = AverageMeter(), AverageMeter()
    num_steps = len(loader)
    num_updates = epoch * num_steps
    end = started = time.time()
    for step, (images, targets) in enumerate(loader):
        images, targets = images.to(device), targets.to(device)
        with amp_autocast():
            loss = loss_fn(model(images), targets)
        optimizer.zero_grad()
        if loss_scaler is not None:
            loss_scaler(loss, optimizer, clip_grad=clip_grad, clip_mode=clip_mode, parameters=model.parameters())
        else:
            loss.backward()
            if clip_grad is not None:
                dispatch_clip_grad(model.parameters(), value=clip_grad, mode=clip_mode)
            optimizer.step()
        num_updates += 1
        if model_ema is not None:
            model_ema.update(model, step=num_updates)
        if lr_scheduler is not None:
            lr_scheduler.step_update(num_updates=num_updates, metric=losses.avg)
        losses.update(loss.item(), images.size(0))
        batch_time.update(time.time() - end)
        end = time.time()
        if on_step is not None:
            on_step(step + 1, num_steps, losses.count / max(end - started, 1e-9), end - started)
        if step % log_interval == 0 or step == num_steps - 1:
            _logger.info(
                f'Train: {epoch} [{step + 1:>4d}/{num_steps}]  loss {losses.val:.4f} ({losses.avg:.4f})  '
                f'lr {optimizer.param_groups[0]["lr"]:.3e}  {images.size(0) / batch_time.val:.1f} img/s')
    return {'loss': losses.avg}


def validate(
        model: nn.Module,
        loader: Iterable,
        loss_fn: nn.Module,
        device: torch.device,
        amp_autocast: Callable[[], ContextManager] = contextlib.nullcontext,
        log_suffix: str = '',
) -> dict[str, float]:
    """One validation pass, as summary.csv records it: ``loss`` and top-1/top-5 *accuracy* (%), train.py's columns.

    The measurement is :func:`timm_ignore.evaluate.evaluate` (errors in %); only the report differs.
    """
    metrics = measure(model, loader, device, amp_autocast, loss_fn=loss_fn)
    _logger.info(f'Eval{log_suffix}: loss {metrics.loss:.4f}  top-1 err {metrics.top1_err:.2f}%  '
                 f'top-5 err {metrics.top5_err:.2f}%')
    return summary_metrics(metrics)
