"""Hidden width of an attention block's bottleneck MLP."""

__all__ = ['reduced_channels', 'validate_reduction']


def validate_reduction(reduction: int) -> int:
    """Return ``reduction`` if it is a positive integer.

    Raises:
        ValueError: ``reduction`` is not a positive integer.
    """
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
        raise ValueError(f'reduction must be a positive integer, got {reduction!r}.')
    return reduction


def reduced_channels(channels: int, reduction: int) -> int:
    """Return ``channels // reduction``, the paper's hidden width, refusing widths the block cannot have.

    Args:
        channels: Input channels of the block.
        reduction: Reduction ratio r (the paper uses 8).

    Raises:
        ValueError: ``reduction`` is not a positive integer, or leaves no hidden channel.
    """
    hidden = channels // validate_reduction(reduction)
    if hidden < 1:
        raise ValueError(f'reduction {reduction} leaves no hidden channel for {channels} channels; '
                         f'use a reduction of at most {channels}.')
    return hidden
