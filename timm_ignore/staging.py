"""Write a folder completely or not at all."""
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ['staged_directory']


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` that replaces ``target`` when the block succeeds.

    If the block raises, the staging folder is removed and ``target`` is left as it was. Whether an existing
    ``target`` folder may be replaced is the caller's decision, made before entering; a file is never replaced.
    The folder gets the permissions of any folder the user creates (``0o777`` less the umask), not ``mkdtemp``'s
    private ``0o700``.

    Args:
        target: The folder to write.

    Raises:
        FileExistsError: ``target`` is a file (or anything but a folder).
    """
    if target.exists() and not target.is_dir():
        raise FileExistsError(f'{target}: is a file, not a folder; it is never replaced, choose another output.')
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{target.name}.', dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
