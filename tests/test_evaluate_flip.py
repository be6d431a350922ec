"""Flip test-time augmentation in the one evaluator: the class of the mean softmax of an image and its mirror."""
import torch
from torch import nn

from timm_ignore.evaluate import evaluate


def test_flip_tta_is_the_mean_softmax_of_the_image_and_its_mirror():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))  # not mirror-symmetric
    images, labels = torch.randn(64, 3, 8, 8), torch.randint(0, 5, (64,))
    loader = [(images[:40], labels[:40]), (images[40:], labels[40:])]
    metrics = evaluate(model, loader, flip_tta=True)
    with torch.no_grad():
        single = model(images)
        both = single.softmax(1) + model(images.flip(-1)).softmax(1)
    assert metrics.top1_err == 100. * (single.argmax(1) != labels).sum().item() / 64  # the headline: single view
    assert metrics.top1_err_flip == 100. * (both.argmax(1) != labels).sum().item() / 64
    assert (both.argmax(1) != single.argmax(1)).any()  # the two numbers measure different things here
    assert evaluate(model, loader).top1_err_flip is None  # off by default
