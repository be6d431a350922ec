"""timm's own model test-suite (``tests/test_models.py`` of the timm sdist) run against every model of this package.

The sdist of the installed timm version is fetched with pip into pytest's cache on first use (or taken from
``TIMM_TESTS_DIR``, a folder holding timm's ``tests/``), and its model tests run in a subprocess with
``timm_model_suite_plugin`` loaded, which registers our models and deselects timm's.
"""
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest
import timm

TESTS_DIR = pathlib.Path(__file__).resolve().parent


def _timm_tests(cache_dir: pathlib.Path) -> pathlib.Path:
    """The ``tests/`` folder of the installed timm's sdist, downloaded and extracted once."""
    if os.environ.get('TIMM_TESTS_DIR'):
        return pathlib.Path(os.environ['TIMM_TESTS_DIR'])
    root = cache_dir / f'timm-{timm.__version__}'
    if not (root / 'tests' / 'test_models.py').is_file():
        download = subprocess.run(
            [sys.executable, '-m', 'pip', 'download', f'timm=={timm.__version__}', '--no-binary', ':all:',
             '--no-deps', '-d', str(cache_dir)],
            capture_output=True, text=True)
        archive = cache_dir / f'timm-{timm.__version__}.tar.gz'
        if download.returncode or not archive.is_file():
            pytest.skip(f'could not fetch the timm {timm.__version__} sdist with pip: {download.stderr[-300:]}')
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(f'timm-{timm.__version__}/tests/')]
            tar.extractall(cache_dir, members=members, filter='data')
    return root / 'tests'


@pytest.mark.slow  # minutes: every model through timm's whole suite
def test_timm_model_suite(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = getattr(pytestconfig, 'cache', None)  # absent under -p no:cacheprovider
    tests = _timm_tests(cache.mkdir('timm-sdist') if cache else tmp_path_factory.mktemp('timm-sdist'))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get('PYTHONPATH')])))
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', str(tests / 'test_models.py'), '-p', 'timm_model_suite_plugin',
         '-p', 'no:cacheprovider', '-q', '-W', 'ignore', '--tb=short', f'--rootdir={tests.parent}'],
        cwd=tests.parent, env=env, capture_output=True, text=True)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ''
    output = f'{result.stdout[-6000:]}\n{result.stderr[-2000:]}'
    assert result.returncode == 0, f'timm model suite failed: {summary}\n{output}'
    assert ' passed' in summary and 'deselected' in summary, summary
