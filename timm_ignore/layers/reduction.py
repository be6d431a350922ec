"""Hidden width of an attention block's bottleneck MLP, from timm's ``rd_ratio`` / ``rd_channels`` / ``rd_divisor``."""
from typing import Optional

from timm.layers import make_divisible

__all__ = ['PAPER_RD_RATIO', 'reduced_channels', 'validate_rd_ratio']

#: The paper's reduction, r = 8 (the authors' code), as timm's ``rd_ratio``.
PAPER_RD_RATIO = 1 / 8


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def validate_rd_ratio(rd_ratio: float) -> float:
    """Return ``rd_ratio`` if it is a positive number.

    Raises:
        ValueError: ``rd_ratio`` is not a positive number.
    """
    if isinstance(rd_ratio, bool) or not isinstance(rd_ratio, (int, float)) or not rd_ratio > 0:
        raise ValueError(f'rd_ratio must be a positive number (the paper uses 1/8), got {rd_ratio!r}.')
    return rd_ratio


def reduced_channels(
        channels: int,
        rd_ratio: float = PAPER_RD_RATIO,
        rd_channels: Optional[int] = None,
        rd_divisor: int = 1,
) -> int:
    """Return the hidden width of a block's MLP the way timm's ``SEModule`` / ``CbamModule`` compute it.

    ``rd_channels`` wins when given; otherwise ``channels * rd_ratio`` rounded to a multiple of ``rd_divisor`` with
    timm's ``make_divisible`` (at least ``rd_divisor``). With the defaults this is the paper's ``channels // 8`` for
    every channel count that is a multiple of 8, as in all of the paper's networks.

    Raises:
        ValueError: ``rd_ratio`` is not a positive number, or ``rd_channels`` / ``rd_divisor`` not a positive integer.
    """
    if rd_channels is not None:
        if not _is_positive_int(rd_channels):
            raise ValueError(f'rd_channels must be a positive integer, got {rd_channels!r}.')
        return rd_channels
    validate_rd_ratio(rd_ratio)
    if not _is_positive_int(rd_divisor):
        raise ValueError(f'rd_divisor must be a positive integer, got {rd_divisor!r}.')
    return make_divisible(channels * rd_ratio, rd_divisor)
