"""Attention layers with the ignore flip."""
from .cbam import IgnoreCbam
from .ignore_gate import (
    GATE_FUNCTIONS, GATE_NAMES, IGN2_EPS, FlippedGate, IgnoreGate, flip_gate, ignore_gate, resolve_gate,
    resolve_gate_function,
)
from .mmtm import IgnoreMmtm
from .squeeze_excite import IgnoreSqueezeExcite

__all__ = [
    'GATE_FUNCTIONS', 'GATE_NAMES', 'IGN2_EPS', 'FlippedGate', 'IgnoreCbam', 'IgnoreGate', 'IgnoreMmtm',
    'IgnoreSqueezeExcite', 'flip_gate', 'ignore_gate', 'resolve_gate', 'resolve_gate_function',
]
