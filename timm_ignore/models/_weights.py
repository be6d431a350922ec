"""The registry of published weights: one model card per checkpoint in ``weights_cards/``.

A card is a Markdown file named ``{model}.{tag}.md`` (the README of the checkpoint's Hub repository). Its YAML front
matter is the Hub metadata plus a ``timm_ignore`` section that says where the weights live::

    timm_ignore:
      model: cifar_resnet50_se_ign3
      tag: cifar100
      hf_hub_id: ORG/NAME
      num_classes: 100
      data_config: {input_size: [3, 32, 32], mean: [...], std: [...], crop_pct: 1.0, interpolation: bilinear}

Only the front matter is parsed (with libyaml when present), so reading the cards at import stays cheap. The folder
is ``timm_ignore/weights_cards`` (in a source checkout a link to the top-level ``weights_cards/``), or the folder named
by the ``TIMM_IGNORE_WEIGHTS_CARDS`` environment variable, read once when the package is imported.

Weights kept in the repository: a card may be a link to the ``README.md`` of a published folder (in a checkout
``weights/{model}.{tag}/``, see ``docs/weights.md``). When ``model.safetensors`` lies beside the file the card resolves
to, the tag loads that file (timm's ``file`` source) and needs no network; otherwise (a wheel, which ships the cards
without the weights) it downloads ``hf_hub_id``.
"""
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

__all__ = ['CARDS_DIR_ENV', 'WeightsCard', 'WeightsCardWarning', 'default_cards_dir', 'read_front_matter',
           'read_weights_cards']

#: Environment variable naming another cards folder (tests, private zoos).
CARDS_DIR_ENV = 'TIMM_IGNORE_WEIGHTS_CARDS'
#: Files in the cards folder that are not cards.
NOT_CARDS = ('README.md',)
#: The only weights file a published checkpoint has.
SAFETENSORS_FILE = 'model.safetensors'
_DATA_CONFIG_KEYS = ('input_size', 'mean', 'std', 'crop_pct', 'interpolation')
_Loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


@dataclass(frozen=True)
class WeightsCard:
    """Where the published weights of one ``model.tag`` live, as read from its card: the Hub repository, and the local
    weights file when the card sits (or links) beside one."""
    model: str
    tag: str
    hf_hub_id: str
    num_classes: int
    path: Path
    data_config: dict[str, Any] = field(default_factory=dict, compare=False)
    local_file: Optional[Path] = None

    @property
    def name(self) -> str:
        return f'{self.model}.{self.tag}'

    def pretrained_cfg(self) -> dict[str, Any]:
        """The weight fields of the tag's timm cfg: the Hub repository, its safetensors file, the local file when there
        is one (timm's ``file`` source, which ``models._pretrained`` then loads instead of the Hub) and the data
        config."""
        cfg = dict(hf_hub_id=self.hf_hub_id, hf_hub_filename=SAFETENSORS_FILE, num_classes=self.num_classes)
        if self.local_file is not None:
            cfg['file'] = str(self.local_file)
        for key, value in self.data_config.items():
            cfg[key] = tuple(value) if isinstance(value, list) else value
        return cfg


def default_cards_dir() -> Path:
    """The cards folder: ``$TIMM_IGNORE_WEIGHTS_CARDS`` if set, else the one shipped in the package."""
    override = os.environ.get(CARDS_DIR_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[1] / 'weights_cards'


def read_front_matter(path: Path) -> dict[str, Any]:
    """Parse the YAML front matter (between the first two ``---`` lines) of a Markdown file.

    Raises:
        ValueError: No front matter, an unclosed one, invalid YAML, or YAML that is not a mapping.
    """
    lines = path.read_text(encoding='utf-8').splitlines()
    if not lines or lines[0].rstrip() != '---':
        raise ValueError(f'{path}: a model card must start with YAML front matter opened by a "---" line.')
    end = next((i for i, line in enumerate(lines[1:], start=1) if line.rstrip() == '---'), None)
    if end is None:
        raise ValueError(f'{path}: the YAML front matter is not closed by a "---" line.')
    try:
        meta = yaml.load('\n'.join(lines[1:end]), Loader=_Loader)
    except yaml.YAMLError as e:
        raise ValueError(f'{path}: invalid YAML front matter: {e}') from e
    if not isinstance(meta, dict):
        raise ValueError(f'{path}: the YAML front matter is not a mapping.')
    return meta


def _parse_card(path: Path, expected_classes: Mapping[str, int]) -> WeightsCard:
    section = read_front_matter(path).get('timm_ignore')
    if not isinstance(section, dict):
        raise ValueError(f'{path}: the front matter has no "timm_ignore" section naming the weights.')
    missing = [k for k in ('model', 'tag', 'hf_hub_id', 'num_classes') if k not in section]
    if missing:
        raise ValueError(f'{path}: the "timm_ignore" section lacks {", ".join(missing)}.')
    data_config = section.get('data_config') or {}
    unknown = sorted(set(data_config) - set(_DATA_CONFIG_KEYS))
    if unknown:
        raise ValueError(f'{path}: unknown data_config keys {unknown}; allowed: {", ".join(_DATA_CONFIG_KEYS)}.')
    local_file = path.resolve().parent / SAFETENSORS_FILE
    card = WeightsCard(
        model=str(section['model']), tag=str(section['tag']), hf_hub_id=str(section['hf_hub_id']),
        num_classes=int(section['num_classes']), path=path, data_config=dict(data_config),
        local_file=local_file if local_file.is_file() else None)
    if path.name != f'{card.name}.md':
        raise ValueError(f'{path}: the card of {card.name} must be named {card.name}.md.')
    if card.name not in expected_classes:
        raise ValueError(f'{path}: {card.name} is not a pretrained tag of a registered model.')
    if card.num_classes != expected_classes[card.name]:
        raise ValueError(
            f'{path}: {card.name} has {expected_classes[card.name]} classes, the card says {card.num_classes}.')
    if card.hf_hub_id.count('/') != 1:
        raise ValueError(f'{path}: hf_hub_id must be "ORG/NAME", got {card.hf_hub_id!r}.')
    return card


class WeightsCardWarning(UserWarning):
    """A weights card (or the cards folder) that could not be read at import; its tag has no weights."""


def read_weights_cards(
        expected_classes: Mapping[str, int],
        directory: Optional[Path] = None,
        strict: bool = True,
) -> dict[str, WeightsCard]:
    """Read every card of a cards folder.

    Args:
        expected_classes: Class count of every pretrained tag (``model.tag``) a card may describe.
        directory: Cards folder; defaults to :func:`default_cards_dir`.
        strict: Raise on a missing folder or a bad card. Otherwise (the package import) warn with
            :class:`WeightsCardWarning` and leave the card out, so its tag has no weights and the import works.

    Returns:
        The cards by ``model.tag``, in file name order.

    Raises:
        FileNotFoundError: The folder does not exist (``strict``).
        ValueError: A malformed card, a card for an unknown tag or with another class count, naming the file
            (``strict``).
    """
    directory = default_cards_dir() if directory is None else Path(directory)
    if not directory.is_dir():
        message = f'Weights cards folder not found: {directory} (set {CARDS_DIR_ENV} or reinstall).'
        if strict:
            raise FileNotFoundError(message)
        warnings.warn(f'{message} No model has pretrained weights.', WeightsCardWarning, stacklevel=2)
        return {}
    cards = {}
    for path in sorted(p for p in directory.glob('*.md') if p.name not in NOT_CARDS):
        try:
            card = _parse_card(path, expected_classes)
        except (ValueError, TypeError, OSError) as e:  # UnicodeDecodeError is a ValueError
            if strict:
                raise
            warnings.warn(f'{e} This card is skipped: its tag has no weights.', WeightsCardWarning, stacklevel=2)
            continue
        cards[card.name] = card
    return cards
