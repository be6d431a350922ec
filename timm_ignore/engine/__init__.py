"""The in-memory training engine for small images: the dataset on the device, the authors' CIFAR recipe, queues.

Import from here; nothing of it is loaded by ``import timm_ignore``.
"""
from .augment import augment_batch, draw_augmentation, normalize
from .data import DataError, ImageData, SplitTensors, check_image_folder, load_image_folder
from .queue import QUEUE_FILE, QueueError, check_queue, run_queue
from .recipe import ENGINE_KEYS, EngineRecipe, RecipeError
from .run import RECORD_FILE, EpochReport, RunSpec, read_record, train_run
from .weight_decay import authors_param_groups

__all__ = [
    'augment_batch', 'draw_augmentation', 'normalize', 'DataError', 'ImageData', 'SplitTensors', 'check_image_folder',
    'load_image_folder', 'QUEUE_FILE', 'QueueError', 'check_queue', 'run_queue', 'ENGINE_KEYS', 'EngineRecipe',
    'RecipeError', 'RECORD_FILE', 'EpochReport', 'RunSpec', 'read_record', 'train_run', 'authors_param_groups',
]
