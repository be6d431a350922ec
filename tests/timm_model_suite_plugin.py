"""pytest plugin that runs timm's own model tests against timm-ignore's models only.

Loaded with ``-p timm_model_suite_plugin`` (``tests/`` on ``PYTHONPATH``) when running timm's ``tests/test_models.py``
from the timm sdist. Plugins load before test modules are imported, so the models are registered by the time timm's
parametrisation calls ``list_models()``; every test whose ``model_name`` is not one of ours (the zoo's models and the
Ign3 twins of timm's models) is deselected. So are timm's tests that download pretrained weights from the Hub
(``test_model_*_pretrained``, which only the twins have), unless ``TIMM_SUITE_HUB=1``: the machines running this
suite may be offline, and ``tests/test_attention_twins.py`` loads the twins' pretrained weights from an offline cache.
"""
import os

import pytest

import timm_ignore  # noqa: F401  (registers the models)
from timm_ignore.models.zoo import MODELS, TWINS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, 'callspec', None)
        model_name = callspec.params.get('model_name') if callspec else None
        ours = isinstance(model_name, str) and model_name.split('.', 1)[0] in {**MODELS, **TWINS}
        downloads = item.originalname.endswith('_pretrained') and os.environ.get('TIMM_SUITE_HUB') != '1'
        (keep if ours and not downloads else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep
