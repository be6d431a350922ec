"""Shared test setup: the models are registered once for the whole session."""
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
