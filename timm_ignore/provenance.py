"""Where a result came from: the code version and the machine, for run records, cards and benchmarks."""
import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Optional

import timm
import torch

from .version import __version__

__all__ = ['code_version', 'device_name', 'machine_info', 'machine_key']


@functools.cache
def code_version() -> str:
    """timm-ignore's version, with the git commit of its source checkout when there is one.

    Taken once per process, at the first call: a process keeps running the code it imported, whatever is committed
    while it runs, so callers that train call it when their first run starts, not when a run ends.
    """
    source = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ['git', '-C', str(source), 'rev-parse', 'HEAD'], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ['git', '-C', str(source), 'status', '--porcelain', '--', 'timm_ignore'],
            capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = '', ''
    git = f', git {commit}{" (with uncommitted changes)" if dirty else ""}' if commit else ''
    return f'timm-ignore {__version__}{git}, timm {timm.__version__}'


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            return next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), '')
    except OSError:
        return platform.processor() or platform.machine()


def _cpu_generation() -> str:
    """``family F model M`` of /proc/cpuinfo's first CPU (empty where there is none)."""
    ids = {}
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() in ('cpu family', 'model') and key.strip() not in ids:
                    ids[key.strip()] = value.strip()
                if not line.strip() and ids:
                    break
    except OSError:
        return ''
    return f'family {ids["cpu family"]} model {ids["model"]}' if len(ids) == 2 else ''


def machine_key(device: Optional[torch.device] = None) -> str:
    """What tells two machines' speeds apart: :func:`device_name`, and for a CPU its family and model numbers too
    (one model name, such as "AMD EPYC", covers generations that differ in their vector units several-fold)."""
    generation = '' if device is not None and torch.device(device).type == 'cuda' else _cpu_generation()
    return device_name(device) + (f', {generation}' if generation else '')


def device_name(device: Optional[torch.device] = None) -> str:
    """The GPU's name for a CUDA device, else the CPU's model and core count."""
    if device is not None and torch.device(device).type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{_cpu_model() or "CPU"} ({os.cpu_count()} cores)'


def machine_info() -> dict[str, str]:
    """Platform, processor, library versions and (when present) the GPU of this machine."""
    info = {
        'platform': platform.platform(), 'processor': platform.processor() or platform.machine(),
        'cpu_model': _cpu_model(), 'cpu_count': str(os.cpu_count()), 'torch': torch.__version__,
        'timm': timm.__version__, 'torch_threads': str(torch.get_num_threads()), 'python': platform.python_version(),
    }
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
    return info
