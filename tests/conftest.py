"""Shared test setup: the models are registered once for the whole session."""
import logging
import pathlib

import pytest

import timm_ignore  # noqa: F401  (registers the models)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / 'shared' / 'data'


@pytest.fixture(scope='session')
def shared_data() -> pathlib.Path:
    """``../shared/data`` beside the repository (partial real CIFAR arrays); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f'shared data not found at {SHARED_DATA}')
    return SHARED_DATA


#: The root logger as the session started; commands that set up console logging (train, compare, prepare-cifar) change it.
_ROOT_LOGGING = (logging.getLogger().level, list(logging.getLogger().handlers))


def _reset_root_logging() -> None:
    root = logging.getLogger()
    root.setLevel(_ROOT_LOGGING[0])
    root.handlers[:] = _ROOT_LOGGING[1]


@pytest.fixture(autouse=True)
def isolated_logging():
    """Each test starts and ends with the session's root logger, so no command (run by an earlier test or by a
    module-scoped fixture) makes a later command print timm's INFO lines."""
    _reset_root_logging()
    yield
    _reset_root_logging()
