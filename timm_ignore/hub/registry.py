"""Weights kept in the repository: one published folder per tag, registered by a link from the cards folder.

The layout (``docs/weights.md``)::

    weights/{model}.{tag}/model.safetensors, config.json, README.md (the card), args.yaml
    weights_cards/{model}.{tag}.md -> ../weights/{model}.{tag}/README.md

The card has one home, the published folder (which is what ``publish --push`` uploads); the registry entry is a
relative link to it, so ``timm_ignore.models._weights`` finds the card and, beside the file it resolves to, the
weights. A wheel ships the cards (the links' contents) without the weights, so its tags download from the Hub.
"""
import os
from pathlib import Path
from typing import Union

__all__ = ['CARDS_DIR', 'WEIGHTS_DIR', 'card_link', 'register_card']

#: The repository's folders, relative to its root (where the commands are run).
WEIGHTS_DIR = Path('weights')
CARDS_DIR = Path('weights_cards')
_CARD = 'README.md'


def card_link(cards_dir: Union[str, Path], name: str) -> Path:
    """The registry entry of ``model.tag`` in ``cards_dir``."""
    return Path(cards_dir) / f'{name}.md'


def register_card(folder: Union[str, Path], cards_dir: Union[str, Path], overwrite: bool = False) -> Path:
    """Register a published folder named ``{model}.{tag}``: link ``cards_dir/{model}.{tag}.md`` to its card.

    Returns:
        The link.

    Raises:
        FileNotFoundError: The folder has no card.
        FileExistsError: The entry exists (and is not already this link) and ``overwrite`` is not set.
    """
    folder, cards_dir = Path(folder), Path(cards_dir)
    card = folder / _CARD
    if not card.is_file():
        raise FileNotFoundError(f'{card}: missing; register a folder written by `timm-ignore publish`.')
    link = card_link(cards_dir, folder.name)
    target = Path(os.path.relpath(card.resolve(), cards_dir.resolve()))
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return link
    if link.exists() or link.is_symlink():
        if not overwrite:
            raise FileExistsError(f'{link}: already registers weights; pass --overwrite to replace it.')
        link.unlink()
    cards_dir.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link
