"""The model zoo table: the one source of truth for model names, attention gates, alphas and default cfgs.

Every registered model, its pretrained tags and data config, the README table and the model cards come from the
tuples below. A model name is ``{family}[_{attn}[{gate suffix}]]``; for example ``densenet_cbam_ign1_a08`` is the
CIFAR DenseNet with CBAM whose gates use Ign1 with alpha 0.8.
"""
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Optional

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ._weights import WeightsCard, read_weights_cards

__all__ = [
    'AUTHORS_CODE_URL', 'PAPER_ID', 'DATA_COPIES', 'DataCopySpec', 'DatasetSpec', 'FamilySpec', 'GateSpec',
    'ModelSpec', 'DATASETS', 'FAMILIES', 'GATES', 'ATTENTIONS', 'MODELS', 'PUBLISHED_WEIGHTS', 'TWIN_GATE', 'TWINS',
    'data_copy', 'family_models', 'get_model_spec', 'pretrained_cfgs', 'published_tags',
]

PAPER_ID = 'arXiv:2111.05684'
#: The authors' code (Laakom et al.); this package is an independent implementation on timm.
AUTHORS_CODE_URL = 'https://github.com/firasl/inverse_attention'
#: Attention block types, by name suffix.
ATTENTIONS = ('se', 'cbam')


@dataclass(frozen=True)
class GateSpec:
    """A flip as it appears in model names: ``suffix`` is appended after the attention type, ``name`` is the
    block's ``gate`` argument (one of ``timm_ignore.GATE_NAMES``)."""
    suffix: str
    name: str
    alpha: Optional[float] = None  # None: the gate's default (1.0 for ign1)

    @property
    def label(self) -> str:
        """The flip as docs and cards name it: ``ign1 (alpha=0.8)``; the gate's name alone at its default alpha."""
        return self.name + (f' (alpha={self.alpha})' if self.alpha is not None else '')


#: The gates the paper reports, in its table order. alpha = 1 has no ``_aXX`` suffix.
GATES = (
    GateSpec('', 'explicit'),
    GateSpec('_ign1', 'ign1'),
    GateSpec('_ign1_a08', 'ign1', 0.8),
    GateSpec('_ign1_a05', 'ign1', 0.5),
    GateSpec('_ign2', 'ign2'),
    GateSpec('_ign3', 'ign3'),
)


@dataclass(frozen=True)
class DatasetSpec:
    """A pretrained tag's dataset: its names (paper tables, Hub, display) and data config."""
    tag: str
    paper_dataset: str
    hub_id: str
    display_name: str
    num_classes: int
    input_size: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float
    interpolation: str = 'bilinear'


DATASETS = {d.tag: d for d in (
    # CIFAR statistics of the official training sets; images are used at full size (crop_pct 1).
    DatasetSpec('cifar10', 'cifar10', 'uoft-cs/cifar10', 'CIFAR-10', 10, (3, 32, 32),
                (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 1.0),
    DatasetSpec('cifar100', 'cifar100', 'uoft-cs/cifar100', 'CIFAR-100', 100, (3, 32, 32),
                (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 1.0),
    DatasetSpec('in1k', 'imagenet1k', 'ILSVRC/imagenet-1k', 'ImageNet-1k', 1000, (3, 224, 224),
                IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, 0.875),
)}


@dataclass(frozen=True)
class DataCopySpec:
    """A copy of a dataset that is not its official files: the name and meaning of every number measured on it.

    Attributes:
        source: How the data folder's description (its ``cifar_split.json``) names the copy: the start of its
            ``source`` field.
        tag: The dataset tag it copies.
        display_name: The dataset's name wherever a number measured on the copy is reported.
        meaning: What differs from the official files, and what follows for the numbers.
    """
    source: str
    tag: str
    display_name: str
    meaning: str


DATA_COPIES = {c.source: c for c in (
    DataCopySpec(
        'cifar10-jpeg', 'cifar10', 'CIFAR-10 (JPEG copy)',
        'the 60 000 CIFAR-10 images from a public copy stored as JPEG, put back in the official order: labels, order '
        "and the paper's 40k / 10k / test split are exact, the pixels are JPEG-compressed (mean absolute difference "
        '5.8/255 from the official images). Errors on it are comparable among models trained and tested on this '
        "copy, not digit-for-digit with the paper's (expect them slightly higher)."),
)}


def data_copy(description: Optional[Mapping[str, Any]]) -> Optional[DataCopySpec]:
    """The copy a data folder's description (``cifar_split.json``) names, or None for the official files."""
    source = str((description or {}).get('source') or '')
    return next((c for key, c in DATA_COPIES.items() if source.startswith(key)), None)


@dataclass(frozen=True)
class FamilySpec:
    """A backbone family of the paper.

    Attributes:
        name: Name prefix of the family's models.
        module: Module (under ``timm_ignore.models``) that builds it; timm lists the models under this module name.
        datasets: Pretrained tags, the default first.
        paper_backbone: The backbone's name in the paper's tables.
        registers_plain: Whether the plain network (no attention) is registered here; ``resnet50`` is timm's own.
        pool_size: Unpooled feature map size at the default input size.
        first_conv: Name of the first convolution (for ``in_chans`` adaptation).
        classifier: Name of the classifier.
        description: One line for docs.
    """
    name: str
    module: str
    datasets: tuple[str, ...]
    paper_backbone: str
    registers_plain: bool
    pool_size: tuple[int, int]
    first_conv: str
    classifier: str
    description: str


FAMILIES = (
    FamilySpec(
        'resnet50', 'resnet', ('in1k',), 'resnet50', False, (7, 7), 'conv1', 'fc',
        "ImageNet ResNet-50 (timm's ResNet), attention on every bottleneck's residual branch"),
    FamilySpec(
        'cifar_resnet50', 'cifar_resnet', ('cifar100', 'cifar10'), 'resnet50', True, (8, 8), 'conv1', 'fc',
        'CIFAR ResNet v1, depth 50 (3 stages of 8 basic blocks, 16-32-64 wide)'),
    FamilySpec(
        'densenet', 'cifar_densenet', ('cifar100', 'cifar10'), 'densenet', True, (8, 8), 'stem', 'fc',
        'CIFAR DenseNet-40 (k=12, bottleneck, no compression), attention after each dense block and transition'),
)


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: a family with optional attention and gate."""
    family: FamilySpec
    attn: Optional[str] = None
    gate: Optional[GateSpec] = None

    @property
    def name(self) -> str:
        if self.attn is None:
            return self.family.name
        return f'{self.family.name}_{self.attn}{self.gate.suffix}'

    @property
    def attention_label(self) -> str:
        """The attention as docs and cards name it: ``SE attention, ign1 (alpha=0.8) gate`` or ``no attention``."""
        return 'no attention' if self.attn is None else f'{self.attn.upper()} attention, {self.gate.label} gate'

    @property
    def paper_method(self) -> str:
        """The row name of this model in the paper's tables (``standard``, ``se``, ``cbam_ign1_a08``, ...)."""
        return 'standard' if self.attn is None else f'{self.attn}{self.gate.suffix}'

    @property
    def twin(self) -> Optional['ModelSpec']:
        """The explicit-attention twin of an ignore model, the plain network of an explicit one, else None."""
        if self.attn is None:
            return None
        if self.gate.name != 'explicit':
            return ModelSpec(self.family, self.attn, GATES[0])
        return ModelSpec(self.family)


def _build_models() -> dict[str, ModelSpec]:
    specs = []
    for family in FAMILIES:
        if family.registers_plain:
            specs.append(ModelSpec(family))
        specs += [ModelSpec(family, attn, gate) for attn in ATTENTIONS for gate in GATES]
    return {s.name: s for s in specs}


#: Every model this package registers, by name, in table order.
MODELS: dict[str, ModelSpec] = _build_models()


#: The flip of the registered twins of timm's attention models: the only one with an exact map of their weights.
TWIN_GATE = next(g for g in GATES if g.name == 'ign3' and g.alpha is None)
#: Twins of timm's pretrained attention models: ``{timm model}_ign3`` is the timm model with its attention gates flipped
#: to Ign3 and its logits layers negated (``timm_ignore.convert_gates(..., map_weights=True)``), so its pretrained tags
#: are the timm model's, with the same outputs. Twin name -> timm model name.
TWINS: dict[str, str] = {f'{name}{TWIN_GATE.suffix}': name for name in (
    'seresnet50', 'seresnext50_32x4d', 'ecaresnet50d', 'efficientnet_b0', 'mobilenetv3_large_100', 'regnety_016')}


#: Published weights by ``model.tag``: exactly the model cards in ``weights_cards/`` (see ``_weights``).
PUBLISHED_WEIGHTS: dict[str, WeightsCard] = read_weights_cards(
    {f'{name}.{tag}': DATASETS[tag].num_classes for name, spec in MODELS.items() for tag in spec.family.datasets},
    strict=False)  # a bad card warns and has no weights; it never breaks the import


def published_tags(name: Optional[str] = None) -> list[str]:
    """The ``model.tag`` names that have published weights, of one model (a ``.tag`` suffix is ignored) or all."""
    model = None if name is None else name.split('.', 1)[0]
    return [tag for tag, card in PUBLISHED_WEIGHTS.items() if model is None or card.model == model]


def get_model_spec(name: str) -> ModelSpec:
    """Look up a registered model by name (a ``.tag`` suffix is ignored).

    Raises:
        ValueError: The name is not a model of this package.
    """
    spec = MODELS.get(name.split('.', 1)[0])
    if spec is None:
        raise ValueError(f'Unknown timm-ignore model {name!r}; registered models: {", ".join(MODELS)}.')
    return spec


def family_models(family: str) -> list[ModelSpec]:
    """All models of one family, in table order."""
    return [s for s in MODELS.values() if s.family.name == family]


def pretrained_cfgs(spec: ModelSpec) -> dict[str, dict[str, Any]]:
    """Default cfgs of a model, one per dataset tag, in timm's ``generate_default_cfgs`` format.

    A tag carries weights (``hf_hub_id``, its safetensors file and the data config they were evaluated with)
    exactly when its model card is in ``weights_cards/`` (:data:`PUBLISHED_WEIGHTS`). The family's first tag is
    marked default with timm's ``*`` suffix, so it stays the default when only another tag has weights, and
    ``num_classes`` of an untagged name never depends on which cards exist. It comes last: timm 1.0.31's
    ``generate_default_cfgs`` lets a later tag with weights go before an earlier ``*`` tag, against its docstring.
    """
    family = spec.family
    cfgs = {}
    for tag in (*family.datasets[1:], family.datasets[0]):
        data = DATASETS[tag]
        key = f'{spec.name}.{tag}' + ('*' if tag == family.datasets[0] else '')
        cfgs[key] = dict(
            num_classes=data.num_classes, input_size=data.input_size, pool_size=family.pool_size,
            crop_pct=data.crop_pct, interpolation=data.interpolation, mean=data.mean, std=data.std,
            first_conv=family.first_conv, classifier=family.classifier,
            paper_ids=PAPER_ID, paper_name='Learning to ignore: rethinking attention in CNNs',
            license='apache-2.0', origin_url=AUTHORS_CODE_URL,
        )
        card = PUBLISHED_WEIGHTS.get(f'{spec.name}.{tag}')
        if card is not None:
            cfgs[key].update(card.pretrained_cfg())
    return cfgs
