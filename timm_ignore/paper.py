"""The paper's reported numbers (Tables 1-4), shipped with the package as ``paper_tables.csv``, and their one reader.

The CSV has one line per reported number: ``table,dataset,backbone,method,metric,value,std``. ``dataset`` and
``backbone`` use the paper's names (``cifar10``, ``imagenet1k``, ``resnet50``), ``method`` is the zoo's
``ModelSpec.paper_method`` (``standard``, ``se_ign3``, ...), ``metric`` is ``top1_err``/``top5_err``/``top1_acc`` in %.
Another file in this format can replace the shipped one (``--paper-tables``), e.g. to compare with a re-run.
"""
import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .models.zoo import ModelSpec

__all__ = ['PAPER_EPOCHS', 'PAPER_TABLES_CSV', 'PaperResult', 'PaperTables', 'read_paper_tables']

#: The paper's tables as shipped in the package.
PAPER_TABLES_CSV = Path(__file__).with_name('paper_tables.csv')
#: Epochs behind the paper's numbers, per dataset (spec section 6): a run of other length is not their like.
PAPER_EPOCHS = {'cifar10': 200, 'cifar100': 200, 'imagenet1k': 90}
COLUMNS = ('table', 'dataset', 'backbone', 'method', 'metric', 'value', 'std')
_METRIC = re.compile(r'top[15]_(err|acc)')


@dataclass(frozen=True)
class PaperResult:
    """One reported number (in %, mean of the paper's runs), its standard deviation if given, and its table."""
    table: str
    metric: str
    value: float
    std: Optional[float]

    def __str__(self) -> str:
        std = f' ± {self.std:.2f}' if self.std is not None else ''
        return f'{self.value:.2f}{std} (Table {self.table})'


class PaperTables:
    """The numbers of one tables file, looked up by the paper's row (dataset, backbone, method)."""

    def __init__(self, results: dict[tuple[str, str, str], dict[str, PaperResult]], source: Path):
        self._results = results
        self.source = source

    def row(self, paper_dataset: str, backbone: str, method: str) -> dict[str, PaperResult]:
        """Reported numbers of one row by metric (``top1_err``, ...); empty when the paper has no such row."""
        return dict(self._results.get((paper_dataset, backbone, method), {}))

    def for_model(self, spec: ModelSpec, paper_dataset: str) -> dict[str, PaperResult]:
        """Reported numbers of a zoo model trained on ``paper_dataset`` (``DatasetSpec.paper_dataset``)."""
        return self.row(paper_dataset, spec.family.paper_backbone, spec.paper_method)

    def __len__(self) -> int:
        return sum(len(metrics) for metrics in self._results.values())


def _number(text: str, what: str, where: str, optional: bool = False) -> Optional[float]:
    if optional and not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f'{where}: {what} must be a number, got {text!r}.') from None
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise ValueError(f'{where}: {what} must be a percentage in 0..100, got {text!r}.')
    return value


def read_paper_tables(path: Union[str, Path, None] = None) -> PaperTables:
    """Read and check a paper tables CSV (default: the one shipped in the package).

    Raises:
        FileNotFoundError: No such file.
        ValueError: Other columns, a value or std that is not a percentage, an unknown metric, or one row and metric
            reported twice with different numbers (the message names the file and line).
    """
    path = PAPER_TABLES_CSV if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: paper tables file not found (--paper-tables).')
    results: dict[tuple[str, str, str], dict[str, PaperResult]] = {}
    with path.open(newline='', encoding='utf-8') as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            found = ','.join(reader.fieldnames or [])
            raise ValueError(f'{path}: expected the columns {",".join(COLUMNS)}, got {found or "none"}.')
        for line in reader:
            where = f'{path}:{reader.line_num}'
            if not _METRIC.fullmatch(line['metric'] or ''):
                raise ValueError(f'{where}: unknown metric {line["metric"]!r}; expected top1_err, top5_err, top1_acc.')
            result = PaperResult(
                line['table'], line['metric'], _number(line['value'], 'value', where),
                _number(line['std'] or '', 'std', where, optional=True))
            row = results.setdefault((line['dataset'], line['backbone'], line['method']), {})
            known = row.setdefault(result.metric, result)
            if (known.value, known.std) != (result.value, result.std):
                raise ValueError(f'{where}: {result.metric} of {line["dataset"]}/{line["backbone"]}/{line["method"]} '
                                 f'is {known.value} in Table {known.table} but {result.value} here.')
    if not results:
        raise ValueError(f'{path}: no numbers in the paper tables file.')
    return PaperTables(results, path)
