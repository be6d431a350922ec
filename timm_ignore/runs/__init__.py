"""A training run and a matrix of runs, owned in one place: the layer under both trainers and above the tools.

- :mod:`.layout`: every file name of a run folder and a matrix folder, the run folder name ``{model}-seed{seed}``;
- :mod:`.record`: the record ``run.json`` (atomic), the one definition of a finished run, the record files a
  repository keeps;
- :mod:`.summary`: ``summary.csv`` rows; :mod:`.epoch_times`: each epoch's times, for a record over a run's
  pieces, measured on :mod:`.active_time`'s clock (a paused process is not training); :mod:`.data`: what a data
  folder says it is;
- :mod:`.readiness`: whether a run can become a model card (its recipe's epochs, above chance level);
- :mod:`.scoring`: the one test of a run (the evaluator and data path of the engine's record, ``compare --runs``,
  ``publish`` and ``validate``); :mod:`.report`: the report over finished runs;
- :mod:`.matrix`: plan, check, hold, train and resume a (model x seed) matrix with either trainer, with one
  :mod:`.progress` reporter and :mod:`.budget`'s time limit.

Both trainers (``timm_ignore.train``, ``timm_ignore.engine``) write through this package and import neither each
other nor ``hub``; ``hub`` reads runs through it. It imports no trainer.
"""
from .active_time import active_time
from .budget import UNKNOWN_MACHINE, SpeedBook, TimeBudget, TimeLimitError, parse_duration
from .data import check_class_count, described_copy, read_data_description
from .epoch_times import add_epoch_time, run_times
from .layout import (
    ARGS_FILE, BEST_CHECKPOINT, EPOCH_TIMES_FILE, LAST_CHECKPOINT, LOCK_FILE, QUEUE_FILE, RECORD_FILE, SPEED_FILE,
    SUMMARY_FILE, RunSpec, run_name)
from .matrix import (
    MatrixError, MatrixResult, PlannedRun, Trainer, check_matrix_folder, hold_folder, left_line, matrix_records,
    plan_matrix, probe_unmeasured, queued_runs, recipe_difference, run_matrix, split_run_stopped_line,
    write_queue_file)
from .progress import EpochReport, Progress, format_time
from .readiness import CHANCE_MARGIN, chance_error, schedule_epochs, untrained_problems
from .record import (
    ENGINE_TRAINER, RECORD_FILES, atomic_save, atomic_write_text, copy_run_records, is_finished, read_record,
    read_run_args, run_digest, run_precision, write_record)
from .report import (
    ResultRow, RunRecord, collect_finished_runs, figure1_panels, format_runs, format_table, run_record_of, summarize,
    write_results)
from .scoring import score_run, test_run
from .summary import finished_epochs, read_summary, summary_metrics, summary_val_error, trim_summary

__all__ = [
    'active_time', 'UNKNOWN_MACHINE', 'SpeedBook', 'TimeBudget', 'TimeLimitError', 'parse_duration',
    'check_class_count', 'described_copy', 'read_data_description', 'add_epoch_time', 'run_times', 'ARGS_FILE',
    'BEST_CHECKPOINT', 'EPOCH_TIMES_FILE', 'LAST_CHECKPOINT', 'LOCK_FILE', 'QUEUE_FILE', 'RECORD_FILE', 'SPEED_FILE',
    'SUMMARY_FILE', 'RunSpec', 'run_name', 'MatrixError', 'MatrixResult', 'PlannedRun', 'Trainer',
    'check_matrix_folder', 'hold_folder', 'left_line', 'matrix_records', 'plan_matrix', 'probe_unmeasured',
    'queued_runs', 'recipe_difference', 'run_matrix', 'split_run_stopped_line', 'write_queue_file', 'EpochReport',
    'Progress', 'format_time', 'CHANCE_MARGIN', 'chance_error', 'schedule_epochs', 'untrained_problems',
    'ENGINE_TRAINER', 'RECORD_FILES', 'atomic_save', 'atomic_write_text', 'copy_run_records', 'is_finished',
    'read_record', 'read_run_args', 'run_digest', 'run_precision', 'write_record', 'ResultRow', 'RunRecord',
    'collect_finished_runs', 'figure1_panels', 'format_runs', 'format_table', 'run_record_of', 'summarize',
    'write_results', 'score_run', 'test_run', 'finished_epochs', 'read_summary', 'summary_metrics', 'summary_val_error',
    'trim_summary',
]
