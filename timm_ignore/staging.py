"""Write a folder completely or not at all."""
import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ['staged_directory']


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _give_normal_permissions(folder: Path, umask: int) -> None:
    """Give ``folder``, every folder and every file in it the mode ``mkdir`` and ``open`` give under ``umask``.

    Writers that go through a private temporary file (safetensors writes ``0o600`` files) would otherwise leave
    some files of the folder unreadable to the group and others. Files with an execute bit stay executable; links
    are left alone.
    """
    folder.chmod(0o777 & ~umask)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode) or (stat.S_ISREG(mode) and mode & 0o111):
                os.chmod(path, 0o777 & ~umask)
            elif stat.S_ISREG(mode):
                os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` that replaces ``target`` when the block succeeds.

    If the block raises, the staging folder is removed and ``target`` is left as it was. Whether an existing
    ``target`` folder may be replaced is the caller's decision, made before entering; a file is never replaced.
    The folder and everything written in it get the permissions of what the user creates (``0o777`` for folders,
    ``0o666`` for files, less the umask), not ``mkdtemp``'s private ``0o700`` or a writer's private ``0o600``.

    Args:
        target: The folder to write.

    Raises:
        FileExistsError: ``target`` is a file (or anything but a folder).
    """
    if target.exists() and not target.is_dir():
        raise FileExistsError(f'{target}: is a file, not a folder; it is never replaced, choose another output.')
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{target.name}.', dir=target.parent))
    try:
        yield staging
        _give_normal_permissions(staging, _current_umask())
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
