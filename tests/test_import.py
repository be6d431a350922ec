"""``import timm_ignore`` is cheap: it loads nothing timm has not loaded and adds under 100 ms to ``import timm``."""
import subprocess
import sys

PROBE = '''
import sys, time
import timm
before = set(sys.modules)
start = time.perf_counter()
import timm_ignore
elapsed = time.perf_counter() - start
new = sorted(m for m in set(sys.modules) - before if not m.startswith('timm_ignore'))
ours = sorted(m for m in sys.modules if m.startswith('timm_ignore.'))
print(elapsed)
print(','.join(new))
print(','.join(ours))
'''


def _probe() -> tuple[float, list[str], list[str]]:
    out = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True, check=True).stdout.splitlines()
    return float(out[0]), [m for m in out[1].split(',') if m], [m for m in out[2].split(',') if m]


def test_import_is_cheap_and_registers_only():
    runs = [_probe() for _ in range(3)]
    assert min(r[0] for r in runs) < 0.1, f'import timm_ignore took {[round(r[0], 3) for r in runs]} s'
    _, new_modules, ours = runs[0]
    assert not new_modules, f'import timm_ignore loads modules timm does not: {new_modules}'
    heavy = [m for m in ours if m.split('.')[1] in ('train', 'hub', 'data', 'figures', 'cli', 'evaluate', 'checkpoint',
                                                  'paper', 'convert')]
    assert not heavy, f'import timm_ignore must not load the tools: {heavy}'
