"""``compare``'s trainer: timm's library (:func:`~timm_ignore.train.runner.train`) as the run matrix's trainer.

:func:`plan_runs` checks every run's settings before any training and gives a :class:`TimmTrainer` for
:func:`timm_ignore.runs.run_matrix`, which keeps finished runs, resumes cut-off ones and reports progress. Each run is
tested at its best validation epoch by :func:`timm_ignore.runs.score_run` and recorded in its ``run.json``.
"""
import os
import pathlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from ..devices import resolve_device
from ..evaluate import find_split
from ..provenance import code_version, device_name, machine_key
from ..runs import (
    LAST_CHECKPOINT, EpochReport, Progress, RunSpec, active_time, add_epoch_time, check_class_count, is_finished,
    read_summary, run_precision, run_times, score_run, write_record)
from .config import TrainConfig
from .runner import build_model, check_inputs, train

__all__ = ['TimmTrainer', 'plan_runs']


@dataclass
class TimmTrainer:
    """The runner as the matrix's trainer (:class:`timm_ignore.runs.Trainer`): one checked config per run."""
    configs: dict[RunSpec, TrainConfig]
    test_split: str = 'test'
    recipe_name: str = ''

    @property
    def specs(self) -> list[RunSpec]:
        return list(self.configs)

    def epochs(self, spec: RunSpec) -> int:
        return self.configs[spec].epochs

    @property
    def speed_key(self) -> str:
        """This machine (:func:`~timm_ignore.provenance.machine_key`) and the precision of the first run's config."""
        config = next(iter(self.configs.values()), TrainConfig())
        precision = run_precision({'amp': config.amp, 'amp_dtype': config.amp_dtype})
        return f'{machine_key(resolve_device(config.device or None))}, {precision}'

    def measure_epoch_time(self, spec: RunSpec) -> Optional[float]:
        """None: timm's loaders have no cheap probe (worker start-up and decoding dominate a few steps)."""
        return None

    def train(self, spec: RunSpec, run_dir: pathlib.Path, progress: Progress,
              keep_going: Optional[Callable[[], bool]] = None) -> Optional[dict[str, Any]]:
        config = self.configs[spec]
        version = code_version()  # the code this process imported, taken before the run trains

        def on_epoch(report: EpochReport) -> None:  # kept in the run folder: the record covers every piece
            add_epoch_time(run_dir, report.epoch, report.epoch_time_s, report.images / report.images_per_s,
                           report.images)
            progress.epoch(report)

        start = active_time()
        result = train(config, on_epoch=on_epoch, on_step=progress.step, on_resume=progress.resumed,
                       keep_going=keep_going)
        if not result.finished:
            return None
        times = run_times(run_dir, len(read_summary(run_dir)))
        if times is None:  # pieces trained by a version that kept no epoch times: this piece's time, as before
            times = dict(wall_time_s=round(active_time() - start, 1))
        device = resolve_device(config.device or None)
        record = dict(score_run(run_dir, self.test_split, device=device), recipe=self.recipe_name,
                      trainer='timm_ignore.train', **times, device=device_name(device), code_version=version,
                      data_dir=config.data_dir)
        write_record(run_dir, record)
        return record


def plan_runs(
        models: Sequence[str],
        seeds: Sequence[int],
        recipe: Union[str, os.PathLike, None],
        overrides: Mapping[str, Any],
        output: Union[str, os.PathLike],
        test_split: str = 'test',
        recipe_name: Optional[str] = None,
) -> TimmTrainer:
    """The settings of every run, checked before any training.

    A finished run folder ``output/{model}-seed{seed}`` is kept as it is; one cut off is continued from its
    ``last.pth.tar``; one without a checkpoint starts again.

    Raises:
        ConfigError, FileNotFoundError, FileExistsError, ValueError: A bad recipe, model, model args, data folder
            (the training, validation or ``test_split`` folder, a class count that is not the recipe's) or run folder.
    """
    output = pathlib.Path(output)
    configs = {}
    for model in models:
        for seed in seeds:
            spec = RunSpec(model, seed)
            run_dir = spec.folder(output)
            config = TrainConfig.from_recipe(recipe, {
                **overrides, 'model': model, 'seed': seed, 'output': str(output), 'experiment': run_dir.name})
            if (run_dir / LAST_CHECKPOINT).is_file():
                config.resume = str(run_dir / LAST_CHECKPOINT)  # continued, or (finished) kept and only checked
            elif not is_finished(run_dir, config.epochs):
                config.overwrite = True  # a run cut off before its first checkpoint: nothing to keep
            check_inputs(config)
            if seed == seeds[0]:
                build_model(config)  # the model args (e.g. an alpha for a gate that has none), once per model
            configs[spec] = config
    first = next(iter(configs.values()))
    if not first.dataset:
        check_class_count(first.data_dir, first.num_classes)
    find_split(first.data_dir, test_split, flag='--data-dir')
    name = recipe_name if recipe_name is not None else (pathlib.Path(recipe).name if recipe else '')
    return TimmTrainer(configs, test_split, name)
