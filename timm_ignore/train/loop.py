"""One training epoch and one evaluation pass, returning the metrics timm's train.py writes to summary.csv."""
import contextlib
import logging
import time
from typing import Callable, ContextManager, Iterable, Optional

import torch
from timm.scheduler.scheduler import Scheduler
from timm.utils import AverageMeter, ModelEmaV3, NativeScaler, accuracy, dispatch_clip_grad
from torch import nn

__all__ = ['train_one_epoch', 'evaluate']

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
) -> dict[str, float]:
    """Train for one epoch; logs progress every ``log_interval`` steps.

    ``lr_scheduler.step_update`` is called after every step, as train.py does (a no-op for per-epoch schedules).

    Returns:
        ``{'loss': mean training loss over the epoch's samples}``.
    """
    model.train()
    losses, batch_time = AverageMeter(), AverageMeter()
    num_steps = len(loader)
    num_updates = epoch * num_steps
    end = time.time()
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
        if step % log_interval == 0 or step == num_steps - 1:
            _logger.info(
                f'Train: {epoch} [{step + 1:>4d}/{num_steps}]  loss {losses.val:.4f} ({losses.avg:.4f})  '
                f'lr {optimizer.param_groups[0]["lr"]:.3e}  {images.size(0) / batch_time.val:.1f} img/s')
    return {'loss': losses.avg}


@torch.no_grad()
def evaluate(
        model: nn.Module,
        loader: Iterable,
        loss_fn: nn.Module,
        device: torch.device,
        amp_autocast: Callable[[], ContextManager] = contextlib.nullcontext,
        log_suffix: str = '',
) -> dict[str, float]:
    """Loss and top-1/top-5 accuracy (in %) of ``model`` over ``loader``.

    top-5 is capped at top-k = number of classes, so it is defined for models with fewer than five classes.
    """
    model.eval()
    losses, top1, top5 = AverageMeter(), AverageMeter(), AverageMeter()
    for images, targets in loader:
        images, targets = images.to(device), targets.to(device)
        with amp_autocast():
            output = model(images)
        loss = loss_fn(output.float(), targets)
        acc1, acc5 = accuracy(output, targets, topk=(1, min(5, output.shape[-1])))
        losses.update(loss.item(), images.size(0))
        top1.update(acc1.item(), images.size(0))
        top5.update(acc5.item(), images.size(0))
    _logger.info(f'Eval{log_suffix}: loss {losses.avg:.4f}  top1 {top1.avg:.2f}  top5 {top5.avg:.2f}')
    return {'loss': losses.avg, 'top1': top1.avg, 'top5': top5.avg}
