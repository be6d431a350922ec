"""Short engine queues on a slice of the real CIFAR-10 (JPEG copy), for the zoo's publish and report tests."""
import pathlib
from typing import Sequence

import torch

from _engine_fixtures import write_cifar10_slice
from timm_ignore.engine import EngineRecipe, RunSpec, run_queue

AUTHORS_RECIPE = pathlib.Path(__file__).resolve().parents[1] / 'train_scripts' / 'cifar10_authors.yaml'
#: The authors' recipe shortened: 3 epochs of 4 steps of a depth-8 CIFAR network, float32 on the CPU.
SHORT = {'epochs': 3, 'batch_size': 64, 'validation_batch_size': 64, 'model_kwargs': {'depth': 8},
         'decay_milestones': [2], 'amp': False, 'channels_last': False}


def cifar10_slice(shared_data: pathlib.Path, root: pathlib.Path) -> pathlib.Path:
    """256 training, 128 validation and 128 test images of the JPEG copy, with its ``cifar_split.json``."""
    return write_cifar10_slice(shared_data, root, 256, 128, 128)


def train_short_queue(data_dir: pathlib.Path, output: pathlib.Path, runs: Sequence[tuple[str, int]]) -> pathlib.Path:
    """Train ``(model, seed)`` runs with the shortened authors' recipe into the queue folder ``output``."""
    recipe = EngineRecipe.from_yaml(AUTHORS_RECIPE, SHORT)
    run_queue([RunSpec(m, s) for m, s in runs], recipe, data_dir, output, torch.device('cpu'),
              recipe_name=AUTHORS_RECIPE.name, log=lambda line: None)
    return output
