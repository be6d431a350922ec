"""Upload a published model folder to the Hugging Face Hub with huggingface_hub.

The token comes from the environment (``HF_TOKEN``) or the ``hf auth login`` store; it is handed to huggingface_hub
and never printed or written anywhere. An existing ``model.safetensors`` in the target revision is not replaced unless
asked, so a published checkpoint (and the card that registers it) cannot be changed by accident.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import RevisionNotFoundError

from ..models._weights import SAFETENSORS_FILE

__all__ = ['PushPlan', 'plan_push', 'push_folder', 'require_token']


@dataclass(frozen=True)
class PushPlan:
    """What an upload would send: the folder's files and where to."""
    folder: Path
    repo_id: str
    revision: Optional[str]
    files: tuple[str, ...]


def plan_push(folder: Union[str, Path], repo_id: str, revision: Optional[str] = None) -> PushPlan:
    """List what :func:`push_folder` would upload, without any network access.

    Raises:
        FileNotFoundError: The folder lacks ``model.safetensors``, ``config.json`` or ``README.md``.
    """
    folder = Path(folder)
    missing = [n for n in (SAFETENSORS_FILE, 'config.json', 'README.md') if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f'{folder}: not a published model folder, it lacks {", ".join(missing)}.')
    files = tuple(sorted(p.relative_to(folder).as_posix() for p in folder.rglob('*') if p.is_file()))
    return PushPlan(folder=folder, repo_id=repo_id, revision=revision, files=files)


def require_token() -> str:
    """The Hugging Face token of the environment or the login store, checked before any work.

    Raises:
        PermissionError: There is none.
    """
    token = get_token()
    if not token:
        raise PermissionError('No Hugging Face token for --push: set HF_TOKEN or run `hf auth login`; nothing was '
                              'uploaded.')
    return token


def push_folder(plan: PushPlan, private: bool = False, overwrite: bool = False) -> str:
    """Create the repository if needed and upload the folder in one commit.

    Returns:
        The URL of the commit.

    Raises:
        PermissionError: No token in the environment or the login store.
        FileExistsError: The revision already holds ``model.safetensors`` and ``overwrite`` is not set.
    """
    api = HfApi(token=require_token())
    api.create_repo(plan.repo_id, private=private, exist_ok=True)
    try:
        existing = api.list_repo_files(plan.repo_id, revision=plan.revision)
    except RevisionNotFoundError:
        api.create_branch(plan.repo_id, branch=plan.revision)
        existing = []
    if SAFETENSORS_FILE in existing and not overwrite:
        raise FileExistsError(
            f'hf-hub:{plan.repo_id}@{plan.revision or "main"} already holds {SAFETENSORS_FILE}; '
            f'pass --overwrite to replace it, or push to another --revision.')
    commit = api.upload_folder(
        repo_id=plan.repo_id, folder_path=plan.folder, revision=plan.revision,
        commit_message=f'Publish {plan.repo_id} with timm-ignore')
    return commit.commit_url
