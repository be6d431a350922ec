"""pytest plugin that runs timm's own model tests against timm-ignore's models only.

Loaded with ``-p timm_model_suite_plugin`` (``tests/`` on ``PYTHONPATH``) when running timm's ``tests/test_models.py``
from the timm sdist. Plugins load before test modules are imported, so the models are registered by the time timm's
parametrisation calls ``list_models()``; every test whose ``model_name`` is not one of ours is deselected.
"""
import pytest

import timm_ignore  # noqa: F401  (registers the models)
from timm_ignore.models.zoo import MODELS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, 'callspec', None)
        model_name = callspec.params.get('model_name') if callspec else None
        ours = isinstance(model_name, str) and model_name.split('.', 1)[0] in MODELS
        (keep if ours else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep
