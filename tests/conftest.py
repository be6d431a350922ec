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


@pytest.fixture(autouse=True)
def isolated_logging():
    """Each test starts with the root logger as the session had it: commands that set up console logging (train,
    compare, prepare-cifar) must not make later tests' commands print timm's INFO lines."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
