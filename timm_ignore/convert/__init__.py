"""Learning to ignore in any timm model: flip the gates of timm's attention blocks (``convert_gates``).

Not imported by ``import timm_ignore``; ``timm_ignore.convert_gates`` loads it on first use.
"""
from .convert import ConversionReport, GateChange, NoAttentionError, Unflipped, convert_gates

__all__ = ['ConversionReport', 'GateChange', 'NoAttentionError', 'Unflipped', 'convert_gates']
