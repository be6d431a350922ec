"""Attention layers with the ignore flip."""
from .cbam import IgnoreCbam
from .ignore_gate import GATE_NAMES, IGN2_EPS, IgnoreGate, ignore_gate, resolve_gate
from .mmtm import IgnoreMmtm
from .squeeze_excite import IgnoreSqueezeExcite

__all__ = [
    'GATE_NAMES', 'IGN2_EPS', 'IgnoreCbam', 'IgnoreGate', 'IgnoreMmtm', 'IgnoreSqueezeExcite', 'ignore_gate',
    'resolve_gate',
]
