"""timm's train.py from the launch to the optimizer step, on CPU: what ``distributed_train.sh`` runs in a test.

timm's train.py wraps the model as ``DDP(model, device_ids=[device])``, which torch refuses for a CPU model, so the
CPU check of ``train_scripts/distributed_train.sh`` points ``TIMM_TRAIN_PY`` at this script. It takes the launch's
arguments (``--config RECIPE --batch-size PER_PROCESS_BATCH`` and train.py's ``--model``, ``--model-kwargs``,
``--num-classes``, ``--device``, ``--output``) and does what train.py does with them, through timm's own functions:
``init_distributed_device`` (torchrun's environment, gloo on CPU), the recipe's ``device_modules`` imported, a seed
per rank (``random_seed(seed, rank)``: the ranks build different weights until DDP broadcasts rank 0's), the model
from timm's registry, ``create_optimizer_v2`` with the recipe's optimizer, and ``ClassificationTask`` wrapped by
``prepare_distributed`` without ``device_ids``. Each rank trains ``--steps`` steps on its slice of one global batch
per step and saves its parameters and losses to ``OUTPUT/rank{RANK}.pt``; ``test_distributed.py`` compares them with
:func:`train_one_process`, the same steps in one process without ``torch.distributed``.
"""
import argparse
import importlib
import pathlib
from typing import Any, Optional

import timm
import torch
import yaml
from timm.optim import create_optimizer_v2
from timm.task import ClassificationTask
from timm.utils import ParseKwargs, init_distributed_device, random_seed

#: The learning rate of the steps (large, so that a wrong gradient shows in the parameters).
LR = 0.1


def build_model(recipe: dict[str, Any], name: str, num_classes: int, model_kwargs: dict[str, Any],
                rank: int) -> torch.nn.Module:
    """The model as train.py creates it: the recipe's device modules imported, the seed offset by the rank."""
    for module in recipe.get('device_modules') or ():
        importlib.import_module(module)
    random_seed(recipe['seed'], rank)
    return timm.create_model(name, num_classes=num_classes, **model_kwargs)


def build_optimizer(model: torch.nn.Module, recipe: dict[str, Any]) -> torch.optim.Optimizer:
    return create_optimizer_v2(model, opt=recipe['opt'], lr=LR, weight_decay=recipe['weight_decay'],
                               momentum=recipe['momentum'])


def global_batch(step: int, size: int, recipe: dict[str, Any], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Step ``step``'s batch of all ranks together (rank r trains on the r-th slice of ``size // world``)."""
    generator = torch.Generator().manual_seed(1000 + step)
    images = torch.randn(size, *recipe['input_size'], generator=generator)
    return images, torch.randint(0, num_classes, (size,), generator=generator)


def train_one_process(model: torch.nn.Module, recipe: dict[str, Any], num_classes: int, world_size: int,
                      batch_size: int, steps: int) -> list[list[float]]:
    """The ranks' steps in one process: each rank's slice through the model on its own (BatchNorm statistics per
    slice, as without SyncBatchNorm), the loss the mean of the slices' losses.

    Returns:
        Every step's loss of every slice.
    """
    task, optimizer = ClassificationTask(model, verbose=False), build_optimizer(model, recipe)
    losses = []
    for step in range(steps):
        images, targets = global_batch(step, world_size * batch_size, recipe, num_classes)
        slices = [task(x, y)['loss'] for x, y in zip(images.split(batch_size), targets.split(batch_size))]
        torch.stack(slices).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append([loss.item() for loss in slices])
    return losses


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--config', required=True)
    parser.add_argument('--batch-size', type=int, required=True)
    parser.add_argument('--model')
    parser.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs)
    parser.add_argument('--num-classes', type=int)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--output', required=True)
    parser.add_argument('--steps', type=int, default=3)
    args = parser.parse_args(argv)
    with open(args.config) as f:
        recipe = yaml.safe_load(f)
    name, num_classes = args.model or recipe['model'], args.num_classes or recipe['num_classes']
    torch.set_num_threads(1)
    device = init_distributed_device(args)
    assert args.distributed and device.type == 'cpu', 'a CPU launch of several processes'
    model = build_model(recipe, name, num_classes, args.model_kwargs, args.rank)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_optimizer(model, recipe)
    task = ClassificationTask(model, device=device, verbose=False).prepare_distributed(device_ids=None)
    losses = []
    for step in range(args.steps):
        images, targets = global_batch(step, args.world_size * args.batch_size, recipe, num_classes)
        rows = slice(args.rank * args.batch_size, (args.rank + 1) * args.batch_size)
        loss = task(images[rows], targets[rows])['loss']
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    torch.save({'rank': args.rank, 'world_size': args.world_size, 'batch_size': args.batch_size, 'losses': losses,
                'initial': initial, 'state_dict': model.state_dict()}, output / f'rank{args.rank}.pt')
    torch.distributed.destroy_process_group()


if __name__ == '__main__':
    main()
