"""The in-memory training engine for small images: the dataset on the device, the authors' CIFAR recipe, queues.

Import from here; nothing of it is loaded by ``import timm_ignore``. Run folders, records and the run matrix are
``timm_ignore.runs``'s (re-exported here where the engine's users have always found them).
"""
from ..runs import QUEUE_FILE, RECORD_FILE, EpochReport, RunSpec, read_record
from .augment import SHIFT_MODES, augment_batch, draw_augmentation, normalize, pad_and_crop
from .data import DataError, ImageData, SplitTensors, check_image_folder, load_image_folder
from .queue import EngineTrainer, QueueError, check_queue, run_queue
from .recipe import ENGINE_KEYS, EngineRecipe, RecipeError
from .run import measure_epoch_time, train_run
from .weight_decay import authors_param_groups

__all__ = [
    'SHIFT_MODES', 'augment_batch', 'draw_augmentation', 'normalize', 'pad_and_crop', 'DataError', 'ImageData',
    'SplitTensors', 'check_image_folder', 'load_image_folder', 'QUEUE_FILE', 'QueueError', 'EngineTrainer',
    'check_queue', 'run_queue', 'ENGINE_KEYS', 'EngineRecipe', 'RecipeError', 'RECORD_FILE', 'EpochReport', 'RunSpec',
    'read_record', 'measure_epoch_time', 'train_run', 'authors_param_groups',
]
