"""What ``pretrained=True`` may load for the models of this package, decided before timm loads it.

timm resolves the weights of a pretrained cfg (a registered tag, ``hf-hub:`` or ``local-dir:``) and loads them with
``build_model_with_cfg``; this module only checks that source first and names the file in every loading error:

* a tag without a model card has no weights: the error names the tags that have some;
* weights are read only from ``model.safetensors``, never from a pickle (``.bin``/``.pth``) or a URL;
* the state dict must fit the model (:func:`check_state_dict`), and a truncated or corrupt file is reported by name.
"""
import contextlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError
from safetensors import SafetensorError
from timm.models import resolve_pretrained_cfg
from torch import nn

from ._state_dict_check import check_state_dict
from ._weights import SAFETENSORS_FILE
from .zoo import ModelSpec, published_tags

__all__ = ['NoPretrainedWeightsError', 'guard_pretrained']


class NoPretrainedWeightsError(RuntimeError):
    """``pretrained=True`` on a tag that has no published weights."""


def _no_weights_message(architecture: str, tag: str) -> str:
    own = published_tags(architecture)
    if own:
        others = f'tags with weights: {", ".join(own)}'
    else:
        every = published_tags()
        others = f'no tag of {architecture} has weights; ' + (
            f'published: {", ".join(every)}' if every else 'no timm-ignore weights are published yet')
    return (f'{architecture}.{tag} has no pretrained weights (no model card in weights_cards/); {others}. '
            f'Use pretrained=False, or load a published folder with "local-dir:DIR" or "hf-hub:ORG/NAME".')


def _filter(state_dict: dict[str, torch.Tensor], model: nn.Module, location: str) -> dict[str, torch.Tensor]:
    cfg = model.pretrained_cfg
    first_conv = cfg.get('first_conv') or ()
    first_conv = (first_conv,) if isinstance(first_conv, str) else tuple(first_conv)
    claimed = cfg.get('num_classes') if (cfg.get('num_classes') or 0) > 0 else None  # train.py's -1: adapt the head
    check_state_dict(
        state_dict, model, location, new_head=claimed is None or model.num_classes != claimed, claimed_classes=claimed,
        unchecked_shapes=[f'{name}.weight' for name in first_conv])
    return state_dict


#: The weight sources a timm pretrained cfg can name.
_SOURCES = ('state_dict', 'file', 'hf_hub_id', 'url')


def _only(kwargs: dict[str, Any], keep: str, **fields: Any) -> None:
    """Leave ``keep`` the only weight source of the cfg timm will build (``pretrained_cfg_overlay``, timm's public
    override), so which source is read never depends on timm's order of preference among several."""
    cleared = {name: None for name in _SOURCES if name != keep}
    kwargs['pretrained_cfg_overlay'] = {**(kwargs.get('pretrained_cfg_overlay') or {}), **cleared, **fields}


def _locate(spec: ModelSpec, cfg: dict[str, Any], kwargs: dict[str, Any]) -> tuple[str, str]:
    """Choose the weight source of a pretrained cfg by this package's rules and make it the cfg's only one.

    A ``local-dir:`` folder, else weights the caller gave (``file``/``state_dict``, e.g. train.py's
    ``--pretrained-path``), else the Hub repository (its safetensors file only); a URL is refused.

    Returns:
        ``(location for messages, hf_hub_id or '')``.
    """
    if cfg.get('source') == 'local-dir':
        path = Path(cfg['file']) / SAFETENSORS_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f'{path}: missing; a published folder holds its weights in {SAFETENSORS_FILE} '
                f'(pickled .bin/.pth weights are not loaded).')
        _only(kwargs, 'file')
        return str(path), ''
    if cfg.get('source') != 'hf-hub' and (cfg.get('state_dict') is not None or cfg.get('file')):
        given = 'state_dict' if cfg.get('state_dict') is not None else 'file'
        _only(kwargs, given)
        return str(cfg.get('file') or 'the state_dict of the pretrained cfg'), ''
    if cfg.get('hf_hub_id'):
        filename = cfg.get('hf_hub_filename') or SAFETENSORS_FILE
        if not filename.endswith('.safetensors'):
            raise ValueError(f'hf-hub:{cfg["hf_hub_id"]}/{filename}: downloaded weights are loaded only from '
                             f'safetensors files, not pickles.')
        _only(kwargs, 'hf_hub_id', hf_hub_filename=filename)
        return f'hf-hub:{cfg["hf_hub_id"]}/{filename}', cfg['hf_hub_id']
    if cfg.get('url'):
        raise ValueError(f'{cfg["url"]}: weights from URLs are pickles; publish them as safetensors on the Hub.')
    raise NoPretrainedWeightsError(_no_weights_message(spec.name, cfg.get('tag') or ''))


@contextlib.contextmanager
def guard_pretrained(spec: ModelSpec, kwargs: dict[str, Any]) -> Iterator[None]:
    """Check the pretrained source of a model about to be built with ``pretrained=True``.

    Updates ``kwargs`` (the entrypoint's) so that timm reads the Hub's safetensors file and checks the state dict,
    and re-raises loading errors of the block it guards with the file named.

    Raises:
        NoPretrainedWeightsError: The tag has no published weights.
        FileNotFoundError: A ``local-dir:`` folder or a Hub repository (or offline cache) without the weights file.
        ValueError: A pickle or URL source, weights of another architecture or class count, a corrupt file.
    """
    cfg = resolve_pretrained_cfg(
        spec.name, kwargs.get('pretrained_cfg'), kwargs.get('pretrained_cfg_overlay')).to_dict()
    location, hf_hub_id = _locate(spec, cfg, kwargs)
    if 'pretrained_filter_fn' not in kwargs:
        kwargs['pretrained_filter_fn'] = partial(_filter, location=location)
    try:
        yield
    except SafetensorError as e:
        if hf_hub_id:
            cached = try_to_load_from_cache(hf_hub_id, SAFETENSORS_FILE, cache_dir=kwargs.get('cache_dir'))
            location = f'{location} (cached as {cached})' if isinstance(cached, str) else location
        raise ValueError(f'{location}: truncated or corrupt safetensors file ({e}).') from e
    except EntryNotFoundError as e:
        raise FileNotFoundError(f'{location}: not found on the Hub or in its offline cache ({e}).') from e
