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

__all__ = ['CARDS_DIR', 'CARD_FILE', 'WEIGHTS_DIR', 'card_link', 'is_registered', 'register_card']

#: The repository's folders, relative to its root (where the commands are run).
WEIGHTS_DIR = Path('weights')
CARDS_DIR = Path('weights_cards')
#: A published folder's card (the Hub README).
CARD_FILE = 'README.md'


def card_link(cards_dir: Union[str, Path], name: str) -> Path:
    """The registry entry of ``model.tag`` in ``cards_dir``."""
    return Path(cards_dir) / f'{name}.md'


def _link_target(folder: Path, cards_dir: Path) -> Path:
    """The relative path from ``cards_dir`` to the folder's card, as the registry link holds it."""
    return Path(os.path.relpath((folder / CARD_FILE).resolve(), cards_dir.resolve()))


def is_registered(folder: Union[str, Path], cards_dir: Union[str, Path]) -> bool:
    """Whether ``cards_dir`` holds the link to this published folder's card (as :func:`register_card` writes it)."""
    folder, cards_dir = Path(folder), Path(cards_dir)
    link = card_link(cards_dir, folder.name)
    return link.is_symlink() and Path(os.readlink(link)) == _link_target(folder, cards_dir)


def register_card(folder: Union[str, Path], cards_dir: Union[str, Path], overwrite: bool = False) -> Path:
    """Register a published folder named ``{model}.{tag}``: link ``cards_dir/{model}.{tag}.md`` to its card.

    Returns:
        The link.

    Raises:
        FileNotFoundError: The folder has no card.
        FileExistsError: The entry exists (and is not already this link) and ``overwrite`` is not set.
    """
    folder, cards_dir = Path(folder), Path(cards_dir)
    card = folder / CARD_FILE
    if not card.is_file():
        raise FileNotFoundError(f'{card}: missing; register a folder written by `timm-ignore publish`.')
    link = card_link(cards_dir, folder.name)
    if is_registered(folder, cards_dir):
        return link
    if link.exists() or link.is_symlink():
        if not overwrite:
            raise FileExistsError(f'{link}: already registers weights; pass --overwrite to replace it.')
        link.unlink()
    cards_dir.mkdir(parents=True, exist_ok=True)
    link.symlink_to(_link_target(folder, cards_dir))
    return link
