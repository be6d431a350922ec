"""``import timm_ignore`` is cheap: it loads nothing timm has not loaded and none of the tools.

Its time is measured by ``benchmarks/import_time.py``, not asserted here (no wall-clock checks in unit tests).
"""
import subprocess
import sys

PROBE = '''
import sys
import timm
before = set(sys.modules)
import timm_ignore
new = sorted(m for m in set(sys.modules) - before if not m.startswith('timm_ignore'))
ours = sorted(m for m in sys.modules if m.startswith('timm_ignore.'))
print(','.join(new))
print(','.join(ours))
'''


def _probe() -> tuple[list[str], list[str]]:
    out = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True, check=True).stdout.splitlines()
    return [m for m in out[0].split(',') if m], [m for m in out[1].split(',') if m]


def test_import_is_cheap_and_registers_only():
    new_modules, ours = _probe()
    assert not new_modules, f'import timm_ignore loads modules timm does not: {new_modules}'
    tools = ('train', 'engine', 'hub', 'data', 'figures', 'cli', 'evaluate', 'checkpoint', 'paper', 'convert',
             'provenance', 'settings')
    heavy = [m for m in ours if m.split('.')[1] in tools or m == 'timm_ignore.models._fused_dense_block']
    assert not heavy, f'import timm_ignore must not load the tools: {heavy}'
