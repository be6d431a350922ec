"""Figure 2 (Grad-CAM grid) on real CIFAR-10 test images with tiny models: maps, target layers, PNG and CLI."""
import pathlib

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from timm_ignore.checkpoint import create_model
from timm_ignore.cli import main
from timm_ignore.figures.grad_cam import (
    CELL_INCHES, DPI, class_activation_maps, folder_class_names, load_images, plot_grad_cam,
    resolve_target_layer)

RESNET = 'cifar_resnet50_se_ign3'


def _resnet(seed: int, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(RESNET, depth=8, num_classes=10, **kwargs).eval()


def _densenet(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model('densenet_cbam', depth=7, num_classes=10).eval()


@pytest.fixture(scope='module')
def cifar(shared_data: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[pathlib.Path], list[str]]:
    """Four real CIFAR-10 test images as PNGs in an ImageFolder split (``test/<class>/<n>.png``), and the classes."""
    arrays = np.load(shared_data / 'cifar10' / 'test_partial.npz')
    split = tmp_path_factory.mktemp('cifar10') / 'test'
    paths = []
    for n, (pixels, label) in enumerate(zip(arrays['images'][:4], arrays['labels'][:4])):
        path = split / str(arrays['classes'][label]) / f'{n}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths, [str(c) for c in arrays['classes']]


@pytest.fixture(scope='module')
def images(cifar: tuple[list[pathlib.Path], list[str]]) -> list[Image.Image]:
    return [image for _, image in load_images(cifar[0])]


def test_cam_has_the_input_size_and_unit_range(images: list[Image.Image]):
    model = _resnet(0, pretrained_cfg_overlay=dict(input_size=(3, 40, 48)))  # not the images' 32x32
    maps = class_activation_maps(model, images)
    assert len(maps) == len(images)
    for cam_map in maps:
        assert cam_map.cam.shape == (40, 48) and cam_map.image.shape == (40, 48, 3)
        assert cam_map.cam.min() >= 0 and cam_map.cam.max() <= 1
        assert cam_map.image.min() >= 0 and cam_map.image.max() <= 1
        assert cam_map.target_class == cam_map.predicted_class
    assert max(cam_map.cam.max() for cam_map in maps) > 0.99  # min-max scaled, not all zero


def test_input_image_is_the_unnormalized_model_input(cifar: tuple[list[pathlib.Path], list[str]],
                                                     images: list[Image.Image]):
    maps = class_activation_maps(_resnet(0), images)  # CIFAR config: 32x32, crop_pct 1, so the pixels are unchanged
    np.testing.assert_allclose(maps[0].image * 255, np.asarray(Image.open(cifar[0][0])), atol=1e-3)


def test_maps_depend_on_the_weights(images: list[Image.Image]):
    first, same, other = (class_activation_maps(_resnet(seed), images) for seed in (0, 0, 1))
    assert all(np.array_equal(a.cam, b.cam) for a, b in zip(first, same))
    assert not all(np.allclose(a.cam, b.cam, atol=1e-3) for a, b in zip(first, other))


def test_target_class_overrides_the_prediction(images: list[Image.Image]):
    model = _resnet(0)
    predicted = {cam_map.predicted_class for cam_map in class_activation_maps(model, images)}
    other_class = min(set(range(10)) - predicted)
    maps = class_activation_maps(model, images, target_class=other_class)
    assert {m.target_class for m in maps} == {other_class} and {m.predicted_class for m in maps} == predicted
    with pytest.raises(ValueError, match='not one of'):
        class_activation_maps(model, images, target_class=10)


def test_default_target_layer_is_the_last_feature_module():
    resnet, densenet = _resnet(0), _densenet(0)
    assert resnet.feature_info[-1]['module'] == 'layer3' and densenet.feature_info[-1]['module'] == 'norm'
    assert resolve_target_layer(resnet) == ('layer3', resnet.layer3)
    assert resolve_target_layer(densenet) == ('norm', densenet.norm)
    assert resolve_target_layer(resnet, 'layer2') == ('layer2', resnet.layer2)


def test_unknown_target_layer_lists_the_feature_modules(images: list[Image.Image]):
    with pytest.raises(ValueError, match=r"no module 'layer4'; its feature modules: .*layer1, layer2, layer3"):
        class_activation_maps(_resnet(0), images, target_layer='layer4')


def test_grid_png_size_and_refusal_to_overwrite(tmp_path: pathlib.Path, cifar: tuple[list[pathlib.Path], list[str]]):
    sources = load_images(cifar[0][:2])
    output = plot_grad_cam({'se_ign3': _resnet(0), 'cbam': _densenet(0)}, sources, tmp_path / 'fig2.png',
                           class_names=cifar[1])
    columns, rows = 3, 2
    assert Image.open(output).size == (round(CELL_INCHES[0] * DPI * columns), round(CELL_INCHES[1] * DPI * rows))
    before = output.read_bytes()
    with pytest.raises(FileExistsError, match='exists'):
        plot_grad_cam({'se_ign3': _resnet(1)}, sources, output)
    assert output.read_bytes() == before
    plot_grad_cam({'se_ign3': _resnet(1)}, sources, output, overwrite=True)
    assert Image.open(output).size == (round(CELL_INCHES[0] * DPI * 2), round(CELL_INCHES[1] * DPI * rows))


def test_image_folder_split_and_missing_images(cifar: tuple[list[pathlib.Path], list[str]]):
    split = cifar[0][0].parents[1]
    captions = [caption for caption, _ in load_images([split], max_images=3)]
    assert len(captions) == 3 and all(caption.endswith('.png') and '/' in caption for caption in captions)
    assert folder_class_names(split) == sorted({path.parent.name for path in cifar[0]})
    with pytest.raises(FileNotFoundError, match='no such image'):
        load_images([split / 'missing.png'])


def test_create_model_errors_and_checkpoint(tmp_path: pathlib.Path, images: list[Image.Image]):
    with pytest.raises(ValueError, match=f'did you mean {RESNET}'):
        create_model('cifar_resnet50_se_ign4')
    with pytest.raises(FileNotFoundError):
        create_model(RESNET, tmp_path / 'missing.pth.tar')
    trained = _resnet(3)
    torch.save({'state_dict': trained.state_dict(), 'epoch': 1}, tmp_path / 'model_best.pth.tar')
    with pytest.raises(ValueError, match='fc.weight has 10 classes but the model has 100'):
        create_model(RESNET, tmp_path / 'model_best.pth.tar', model_kwargs={'depth': 8})  # 100 classes by default
    loaded = create_model(RESNET, tmp_path / 'model_best.pth.tar', num_classes=10, model_kwargs={'depth': 8})
    assert loaded.pretrained_cfg['tag'] == 'cifar10'  # a tagless zoo name gets the tag of the class count
    loaded = create_model(f'{RESNET}.cifar100', tmp_path / 'model_best.pth.tar', num_classes=10,
                          model_kwargs={'depth': 8})  # the preprocessing of `trained` (the default tag)
    expected, actual = class_activation_maps(trained, images[:1]), class_activation_maps(loaded, images[:1])
    np.testing.assert_array_equal(expected[0].cam, actual[0].cam)


def test_cli_writes_the_grid_and_reports_errors(tmp_path: pathlib.Path, cifar: tuple[list[pathlib.Path], list[str]],
                                                capsys: pytest.CaptureFixture):
    for seed in (0, 1):
        torch.save({'state_dict': _resnet(seed).state_dict()}, tmp_path / f'seed{seed}.pth.tar')
    output = tmp_path / 'fig2.png'
    argv = ['grad-cam', str(cifar[0][0]), str(cifar[0][1]), '--models', RESNET, RESNET, '--num-classes', '10',
            '--model-kwargs', 'depth=8', '--checkpoint', str(tmp_path / 'seed0.pth.tar'),
            '--checkpoint', str(tmp_path / 'seed1.pth.tar'), '-o', str(output)]
    assert main(argv) == 0
    assert Image.open(output).size == (round(CELL_INCHES[0] * DPI * 3), round(CELL_INCHES[1] * DPI * 2))
    assert main(argv) == 2 and 'exists' in capsys.readouterr().err
    assert main(argv + ['--overwrite', '--target-layer', 'head']) == 2
    assert 'its feature modules: ' in capsys.readouterr().err
    one_checkpoint = argv[:argv.index('--checkpoint') + 2] + ['-o', str(tmp_path / 'one.png')]
    assert main(one_checkpoint) == 2 and not (tmp_path / 'one.png').exists()
    assert 'one per model' in capsys.readouterr().err
