"""Write a folder completely or not at all."""
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ['staged_directory']


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` that replaces ``target`` when the block succeeds.

    If the block raises, the staging folder is removed and ``target`` is left as it was. Whether an existing
    ``target`` may be replaced is the caller's decision, made before entering.

    Args:
        target: The folder to write.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{target.name}.', dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
