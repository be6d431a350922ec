"""The paper's Figure 2: Grad-CAM class-activation maps of several models side by side, one row per image.

Grad-CAM (``pytorch_grad_cam``) weighs a layer's activations by the mean gradient of one class score and keeps the
positive part. Each model sees an image through its own data config (``timm.data.resolve_data_config``): a CIFAR model
a 32x32 image, an ImageNet model a 224x224 centre crop, and its map is drawn on exactly that input.

pytorch_grad_cam min-max scales every map to [0, 1], so a figure compares *where* models look, not how strongly:
absolute map values mean nothing across models or images, and a map that is zero everywhere stays zero.
"""
import os
import pathlib
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from timm.data import ImageDataset, create_transform, resolve_data_config
from torch import nn

__all__ = [
    'CELL_INCHES', 'DPI', 'ClassActivationMap', 'class_activation_maps', 'folder_class_names', 'load_images',
    'plot_grad_cam', 'resolve_target_layer',
]

PathLike = Union[str, os.PathLike]
#: Width and height of one grid cell (image and its title) in inches, and the resolution of the PNG.
CELL_INCHES = (2.0, 2.4)
DPI = 100


@dataclass(frozen=True)
class ClassActivationMap:
    """The Grad-CAM of one model for one image.

    Attributes:
        image: (H, W, 3) float32 in [0, 1], the model's input before normalization.
        cam: (H, W) float32 in [0, 1], min-max scaled; H and W are those of ``image``.
        predicted_class: The model's top class for the image.
        target_class: The class the map explains.
    """
    image: 'np.ndarray'
    cam: 'np.ndarray'
    predicted_class: int
    target_class: int


def folder_class_names(split: PathLike) -> list[str]:
    """Class folder names of an ImageFolder split, in the label order timm's datasets give them."""
    class_to_index = ImageDataset(str(split)).reader.class_to_idx
    return sorted(class_to_index, key=class_to_index.get)


def load_images(sources: Sequence[PathLike], max_images: int = 8) -> list[tuple[str, 'Image.Image']]:
    """Open image files, and up to ``max_images`` images spread evenly over each ImageFolder split given.

    Returns:
        (caption, RGB image) pairs; the caption is the file name, preceded by its class folder for split images.

    Raises:
        FileNotFoundError: A source does not exist, or a folder holds no images.
        ValueError: A file that is not an image.
    """

    def read(path: pathlib.Path) -> 'Image.Image':
        try:
            with Image.open(path) as image:
                return image.convert('RGB')
        except OSError:  # PIL's UnidentifiedImageError included
            raise ValueError(f'{path}: not an image file PIL can read (PNG, JPEG, ...).') from None

    if max_images < 1:
        raise ValueError(f'--max-images must be at least 1, got {max_images}.')
    images = []
    for source in map(pathlib.Path, sources):
        if source.is_file():
            images.append((source.name, read(source)))
        elif source.is_dir():
            dataset = ImageDataset(str(source))
            if len(dataset) == 0:
                raise FileNotFoundError(f'{source}: no images in this folder.')
            for index in np.unique(np.linspace(0, len(dataset) - 1, max_images).round().astype(int)):
                path = pathlib.Path(dataset.filename(index, absolute=True))
                images.append((f'{path.parent.name}/{path.name}', read(path)))
        else:
            raise FileNotFoundError(f'{source}: no such image file or ImageFolder split.')
    return images


def resolve_target_layer(model: nn.Module, name: Optional[str] = None) -> tuple[str, nn.Module]:
    """The layer Grad-CAM explains: ``name``, or by default the module of the model's last ``feature_info`` entry.

    Raises:
        ValueError: The model has no module ``name`` (the message lists its ``feature_info`` modules), or no
            ``feature_info`` to take the default from.
    """
    feature_modules = [info['module'] for info in getattr(model, 'feature_info', None) or []]
    if name is None:
        if not feature_modules:
            raise ValueError(f'{type(model).__name__} has no feature_info; name the target layer.')
        name = feature_modules[-1]
    try:
        return name, model.get_submodule(name)
    except AttributeError:
        valid = ', '.join(feature_modules) or 'none listed'
        raise ValueError(f'{type(model).__name__} has no module {name!r}; its feature modules: {valid}.') from None


def class_activation_maps(
        model: nn.Module,
        images: Sequence['Image.Image'],
        target_layer: Optional[str] = None,
        target_class: Optional[int] = None,
) -> list[ClassActivationMap]:
    """Grad-CAM of ``model`` for each image, preprocessed with the model's eval data config.

    Args:
        model: A classifier; it is put in eval mode and its inputs go to the device of its parameters.
        images: RGB images.
        target_layer: Module name to explain (default: the last ``feature_info`` module).
        target_class: Class to explain for every image (default: each image's top prediction).

    Raises:
        ValueError: Unknown target layer, or a target class outside the model's classes.
    """
    from pytorch_grad_cam import GradCAM  # optional dependency (the figures extra): loaded when a figure is drawn
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchvision.transforms.functional import convert_image_dtype  # optional dependency (the figures extra)

    if target_class is not None and not 0 <= target_class < model.num_classes:
        raise ValueError(f'target class {target_class} is not one of the model\'s {model.num_classes} classes.')
    _, layer = resolve_target_layer(model, target_layer)
    config = resolve_data_config(model=model)
    to_pixels = create_transform(**config, normalize=False)  # the eval transform up to normalization, uint8
    pixels = convert_image_dtype(torch.stack([to_pixels(image) for image in images]), torch.float32)
    mean, std = (torch.tensor(config[key]).view(1, -1, 1, 1) for key in ('mean', 'std'))
    inputs = ((pixels - mean) / std).to(next(model.parameters()).device)
    model.eval()
    with torch.no_grad():
        predicted = model(inputs).argmax(dim=1).tolist()
    targets = [target_class if target_class is not None else p for p in predicted]
    with GradCAM(model=model, target_layers=[layer]) as grad_cam:
        cams = grad_cam(input_tensor=inputs, targets=[ClassifierOutputTarget(t) for t in targets])
    return [
        ClassActivationMap(image=p.permute(1, 2, 0).numpy(), cam=c, predicted_class=pred, target_class=t)
        for p, c, pred, t in zip(pixels, cams, predicted, targets)]


def _class_label(model: nn.Module, index: int, class_names: Optional[Sequence[str]]) -> str:
    label_names = (getattr(model, 'pretrained_cfg', None) or {}).get('label_names')
    if not label_names and class_names is not None and len(class_names) == model.num_classes:
        label_names = class_names
    return str(label_names[index]) if label_names else str(index)


def plot_grad_cam(
        models: Mapping[str, nn.Module],
        images: Sequence[tuple[str, 'Image.Image']],
        output: PathLike,
        target_layer: Optional[str] = None,
        target_class: Optional[int] = None,
        class_names: Optional[Sequence[str]] = None,
        overwrite: bool = False,
) -> pathlib.Path:
    """Draw a grid of Grad-CAM maps and save it as a PNG.

    Rows are images; the first column is the input as the first model sees it, then one map per model, titled with
    the label and the predicted class (and the explained class when ``target_class`` differs from it). The PNG is
    ``CELL_INCHES`` x ``DPI`` pixels per cell.

    Args:
        models: Column label -> model.
        images: (caption, RGB image) pairs, e.g. from ``load_images``.
        output: PNG path to write.
        target_layer: Module name to explain in every model (default: each model's last ``feature_info`` module).
        target_class: Class to explain (default: each model's top prediction).
        class_names: Class names by index for models whose pretrained config has none (e.g. an ImageFolder's
            classes, see ``folder_class_names``); ignored for a model of another class count.
        overwrite: Replace an existing ``output``.

    Returns:
        ``output``.

    Raises:
        FileExistsError: ``output`` exists and ``overwrite`` is not set; checked before any model runs.
        ValueError: No models or images, an unknown target layer or an invalid target class.
    """
    output = pathlib.Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f'{output} exists; pass overwrite (--overwrite) to replace it.')
    if not models or not images:
        raise ValueError('plot_grad_cam needs at least one model and one image.')
    import matplotlib  # optional dependency (the figures extra): loaded when a figure is drawn
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # optional dependency, imported after choosing the file-only backend
    from pytorch_grad_cam.utils.image import show_cam_on_image

    pil_images = [image for _, image in images]
    maps = {label: class_activation_maps(m, pil_images, target_layer, target_class) for label, m in models.items()}
    rows, columns = len(images), len(models) + 1
    figure, axes = plt.subplots(
        rows, columns, figsize=(CELL_INCHES[0] * columns, CELL_INCHES[1] * rows), dpi=DPI, squeeze=False)
    first_maps = next(iter(maps.values()))
    for row, (caption, _) in enumerate(images):
        axes[row, 0].imshow(first_maps[row].image)
        axes[row, 0].set_title(caption, fontsize=8)
        for column, (label, model_maps) in enumerate(maps.items(), start=1):
            cam_map = model_maps[row]
            title = f'{label}\npred: {_class_label(models[label], cam_map.predicted_class, class_names)}'
            if cam_map.target_class != cam_map.predicted_class:
                title += f', CAM: {_class_label(models[label], cam_map.target_class, class_names)}'
            axes[row, column].imshow(show_cam_on_image(cam_map.image, cam_map.cam, use_rgb=True))
            axes[row, column].set_title(title, fontsize=8)
    for ax in axes.flat:
        ax.axis('off')
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)
    plt.close(figure)
    return output
