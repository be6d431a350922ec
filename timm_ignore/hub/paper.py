"""The paper's numbers for a model's row, from its tables as CSV (``table,dataset,backbone,method,metric,value,std``).

The tables are not shipped in the package; the project keeps them beside the repository (``shared/reference``).
"""
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ..models.zoo import DATASETS, ModelSpec

__all__ = ['PaperResult', 'paper_results']

_COLUMNS = ('table', 'dataset', 'backbone', 'method', 'metric', 'value', 'std')


@dataclass(frozen=True)
class PaperResult:
    """One reported number (error in %, mean of the paper's runs) and its standard deviation if given."""
    table: str
    metric: str
    value: float
    std: Optional[float]


def paper_results(tables_csv: Union[str, Path], spec: ModelSpec, tag: str) -> dict[str, PaperResult]:
    """The paper's numbers for ``spec`` trained on the dataset of ``tag``, by metric (``top1_err``, ``top5_err``).

    Returns:
        An empty dict when the paper does not report the row.

    Raises:
        FileNotFoundError: No tables file.
        ValueError: A file without the expected columns, or two different numbers for one metric of the row.
    """
    tables_csv = Path(tables_csv)
    if not tables_csv.is_file():
        raise FileNotFoundError(f'{tables_csv}: paper tables CSV not found.')
    row = (DATASETS[tag].paper_dataset, spec.family.paper_backbone, spec.paper_method)
    results: dict[str, PaperResult] = {}
    with tables_csv.open(newline='') as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != _COLUMNS:
            raise ValueError(f'{tables_csv}: expected the columns {",".join(_COLUMNS)}, got {reader.fieldnames}.')
        for line in reader:
            if (line['dataset'], line['backbone'], line['method']) != row:
                continue
            result = PaperResult(
                line['table'], line['metric'], float(line['value']), float(line['std']) if line['std'] else None)
            known = results.setdefault(result.metric, result)
            if (known.value, known.std) != (result.value, result.std):
                raise ValueError(f'{tables_csv}: two different {result.metric} numbers for {"/".join(row)}.')
    return results
