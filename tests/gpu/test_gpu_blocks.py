"""The blocks on a CUDA GPU: fused backward vs autograd, mixed precision, channels_last, torch.compile.

Skipped without CUDA. On a GPU machine: ``python -m pytest tests/gpu -q`` (a line per check is printed, and the
lines are also written to ``benchmarks/results/gpu_checks_<time>.jsonl`` with the machine). Written for
torch >= 2.4 (the GPU machine's 2.11 included). Float16 runs use a fixed loss scale, as a GradScaler applies one.

In float32 the fused path must equal autograd element-wise. Under bfloat16 / float16 autocast both paths round
differently (bfloat16 CBAM parameter gradients are off by up to ~5% in either path), so each is compared with a
float64 evaluation of the same inputs, by the relative error of the whole tensor ``|a - b| / |b|`` (Frobenius norms),
and the fused path must be about as accurate as autograd: at most 2.5x its error, or under a small floor (a wrong
gradient is off by ~100%; on CPU, CBAM's fused bfloat16 gradients measured up to 1.9x autograd's error, both
1-7%, an open point). Ties
between maxima are frequent in low precision: autograd splits a tied maximum's gradient, the fused backward gives it
to one of the tied elements. So the input gradient is compared by its per-channel sums (which ties do not change)
and by the fraction of elements on which both paths agree.
"""
import copy
import datetime
import json
import pathlib
import platform
from typing import Optional

import pytest
import timm
import torch
from torch.nn import functional as F

from timm_ignore import IgnoreCbam, IgnoreSqueezeExcite

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

DEVICE = 'cuda'
RESULTS = pathlib.Path(__file__).resolve().parents[2] / 'benchmarks' / 'results'
_STAMP = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
#: ResNet-50's four stages at 224 px (the attention block's input), batch 32.
STAGES = ((32, 256, 56, 56), (32, 512, 28, 28), (32, 1024, 14, 14), (32, 2048, 7, 7))
BLOCKS = {'se': IgnoreSqueezeExcite, 'cbam': IgnoreCbam}
#: (autocast dtype or None, relative error always accepted in reduced precision, tolerance for compile parity)
PRECISIONS = {'float32': (None, 0.0, 1e-4), 'bfloat16': (torch.bfloat16, 1e-2, 3e-2),
              'float16': (torch.float16, 2e-3, 5e-3)}
FORMATS = {'contiguous': torch.contiguous_format, 'channels_last': torch.channels_last}
#: A GradScaler scale as float16 training settles on it (timm's train.py --amp is float16 with a GradScaler); the
#: upstream gradient is that of a batch-mean loss, ~1 / batch per element, as in training.
LOSS_SCALE = 2.0 ** 10


def _record(capsys: pytest.CaptureFixture, check: str, **fields) -> None:
    """Print one line for the check (shown without ``-s``) and append it to the JSON-lines record."""
    line = {'check': check, **fields}
    with capsys.disabled():
        print('\n[gpu-check] ' + ' '.join(f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}'
                                          for k, v in line.items()), end='')
    RESULTS.mkdir(exist_ok=True)
    machine = {'gpu': torch.cuda.get_device_name(), 'torch': torch.__version__, 'timm': timm.__version__,
               'cuda': torch.version.cuda, 'python': platform.python_version()}
    with open(RESULTS / f'gpu_checks_{_STAMP}.jsonl', 'a') as f:
        f.write(json.dumps({**line, 'machine': machine}) + '\n')


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    got, expected = got.double(), expected.double()
    return ((got - expected).norm() / expected.norm().clamp_min(1e-30)).item()


def _randomised(cls: type, channels: int, gate: str, logit_scale: float = 3.0, **kwargs) -> torch.nn.Module:
    """A block whose gate logits spread over about ``+-logit_scale`` (channel gate: the MLP's output bias;
    CBAM's spatial gate: its convolution), with the MLP weights as the authors initialise them."""
    torch.manual_seed(0)
    block = cls(channels, gate=gate, **kwargs)
    with torch.no_grad():
        block.fc1.bias.normal_(0, 0.5)
        block.fc2.bias.uniform_(-logit_scale, logit_scale)
        if hasattr(block, 'conv'):  # inputs ~N(0, 1): channel mean ~0, channel max ~3, 49 taps
            block.conv.weight.normal_(0, logit_scale / 20)
    return block.to(DEVICE)


def _float64_twin(block: torch.nn.Module) -> torch.nn.Module:
    reference = copy.deepcopy(block).double()
    reference.fused_backward = False
    return reference


def _step(block: torch.nn.Module, x: torch.Tensor, grad_out: torch.Tensor, dtype: Optional[torch.dtype],
          scale: float = 1.0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Forward under autocast, backward of ``scale * sum(out * grad_out)``; gradients divided by ``scale``."""
    block.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    with torch.autocast(DEVICE, dtype=dtype or torch.float32, enabled=dtype is not None):
        out = block(x)
    (out.float() * grad_out).sum().mul(scale).backward()
    return out.detach(), [g / scale for g in (x.grad, *(p.grad for p in block.parameters()))]


@pytest.mark.parametrize('memory_format', FORMATS)
@pytest.mark.parametrize('precision', PRECISIONS)
@pytest.mark.parametrize('shape', STAGES, ids=lambda s: f'{s[1]}x{s[2]}')
@pytest.mark.parametrize('kind', BLOCKS)
def test_fused_backward_matches_autograd(kind, shape, precision, memory_format, capsys):
    """Outputs, input and parameter gradients of the fused path against autograd on the same inputs."""
    dtype, floor, _ = PRECISIONS[precision]
    fused = _randomised(BLOCKS[kind], shape[1], 'ign1', alpha=0.8)
    plain = copy.deepcopy(fused)
    plain.fused_backward = False
    torch.manual_seed(1)
    x = torch.randn(shape, device=DEVICE, dtype=dtype or torch.float32).to(memory_format=FORMATS[memory_format])
    grad_out = torch.randn(shape, device=DEVICE).div_(shape[0]).to(memory_format=FORMATS[memory_format])
    scale = LOSS_SCALE if dtype is torch.float16 else 1.0  # the same fixed scale on both paths
    out, grads = _step(fused, x, grad_out, dtype, scale)
    expected, expected_grads = _step(plain, x, grad_out, dtype, scale)
    assert out.dtype == expected.dtype and out.is_contiguous(memory_format=FORMATS[memory_format])
    names = ['out', 'x (per-channel sums)', *(n for n, _ in fused.named_parameters())]
    for name, g in zip(names, (out, *grads)):
        assert torch.isfinite(g).all(), f'{name}: not finite'
    if dtype is None:
        _record(capsys, 'fused_vs_autograd', block=kind, shape=shape, precision=precision, format=memory_format,
                max_rel_err=max(_relative_error(a, b) for a, b in zip((out, *grads), (expected, *expected_grads))))
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
        for g, e in zip(grads, expected_grads):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4 * e.abs().max().item())
        return
    exact, exact_grads = _step(_float64_twin(fused), x.double(), grad_out.double(), None)
    agree = torch.isclose(grads[0].float(), expected_grads[0].float(), rtol=0.05, atol=0.05 / shape[0])
    per_channel = [t.double().sum((2, 3)) for t in (grads[0], expected_grads[0], exact_grads[0])]
    compared = [(out, expected, exact), *zip(per_channel[:1], per_channel[1:2], per_channel[2:]),
                *zip(grads[1:], expected_grads[1:], exact_grads[1:])]
    fused_errors = [_relative_error(f, e) for f, _, e in compared]
    autograd_errors = [_relative_error(a, e) for _, a, e in compared]
    _record(capsys, 'fused_vs_autograd', block=kind, shape=shape, precision=precision, format=memory_format,
            fused_max_rel_err_vs_float64=max(fused_errors), autograd_max_rel_err_vs_float64=max(autograd_errors),
            grad_x_agreeing=agree.float().mean().item())
    assert agree.float().mean() > 0.99
    for name, f, a in zip(names, fused_errors, autograd_errors):
        assert f <= max(2.5 * a, floor), f'{name}: fused error {f:.3g} vs float64, autograd {a:.3g}'


@pytest.mark.parametrize('precision', ['float32', 'bfloat16'])
@pytest.mark.parametrize('kind', BLOCKS)
def test_inductor_matches_eager(kind, precision, capsys):
    """torch.compile (inductor, whole graph) of a block at a ResNet-50 stage shape, channels_last."""
    dtype, _, tol = PRECISIONS[precision]
    shape = STAGES[1]
    block = _randomised(BLOCKS[kind], shape[1], 'ign2')
    compiled = torch.compile(copy.deepcopy(block), fullgraph=True)
    torch.manual_seed(1)
    x = torch.randn(shape, device=DEVICE, dtype=dtype or torch.float32).to(memory_format=torch.channels_last)
    grad_out = torch.randn(shape, device=DEVICE).div_(shape[0]).to(memory_format=torch.channels_last)
    out, grads = _step(compiled, x, grad_out, dtype)
    expected, expected_grads = _step(block, x, grad_out, dtype)
    errors = [_relative_error(out, expected)] + [_relative_error(g, e) for g, e in zip(grads, expected_grads)]
    with torch.no_grad(), torch.autocast(DEVICE, dtype=dtype or torch.float32, enabled=dtype is not None):
        inference_error = _relative_error(compiled(x), block(x))
    _record(capsys, 'inductor_vs_eager', block=kind, shape=shape, precision=precision,
            out_rel_err=errors[0], max_grad_rel_err=max(errors[1:]), inference_rel_err=inference_error)
    assert max(errors) <= tol and inference_error <= tol


def test_inductor_whole_model_train_step(capsys):
    """resnet50_cbam_ign1 compiled vs eager: loss and gradients of a bfloat16-autocast channels_last step."""
    torch.manual_seed(0)
    model = timm.create_model('resnet50_cbam_ign1', num_classes=10).to(DEVICE).to(memory_format=torch.channels_last)
    compiled = torch.compile(copy.deepcopy(model))
    x = torch.randn(8, 3, 224, 224, device=DEVICE).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (8,), device=DEVICE)
    losses = []
    for m in (model, compiled):
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            loss = F.cross_entropy(m(x), y)
        loss.backward()
        losses.append(loss.item())
    eager_grads, compiled_grads = ([p.grad.flatten() for p in m.parameters()] for m in (model, compiled))
    error = _relative_error(torch.cat(compiled_grads), torch.cat(eager_grads))
    worst = max(_relative_error(c, e) for c, e in zip(compiled_grads, eager_grads))
    finite = all(bool(torch.isfinite(g).all()) for g in compiled_grads)
    _record(capsys, 'inductor_whole_model', model='resnet50_cbam_ign1', eager_loss=losses[0],
            compiled_loss=losses[1], grad_rel_err=error, worst_parameter_rel_err=worst, finite=finite)
    # bfloat16 through 50 layers and BatchNorm at batch 8: per-parameter errors reach ~0.1, the whole gradient less
    assert finite and abs(losses[0] - losses[1]) <= 2e-2 * abs(losses[0]) and error <= 0.05


@pytest.mark.parametrize('logit_scale', [3.0, 30.0, 100.0])
@pytest.mark.parametrize('kind', BLOCKS)
def test_ign2_finite_under_float16_autocast(kind, logit_scale, capsys):
    """Ign2's 1 / (sigmoid(z) + eps) reaches 1e6, beyond float16: outputs and gradients stay finite."""
    shape = STAGES[2]
    block = _randomised(BLOCKS[kind], shape[1], 'ign2', logit_scale)
    torch.manual_seed(1)
    x = torch.randn(shape, device=DEVICE, dtype=torch.float16).to(memory_format=torch.channels_last)
    grad_out = torch.randn(shape, device=DEVICE).div_(shape[0])
    out, grads = _step(block, x, grad_out, torch.float16, LOSS_SCALE)
    finite = bool(torch.isfinite(out).all()) and all(bool(torch.isfinite(g).all()) for g in grads)
    _record(capsys, 'ign2_float16_finite', block=kind, logit_scale=logit_scale, finite=finite)
    assert finite
