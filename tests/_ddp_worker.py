"""One rank of the DDP test in ``test_distributed.py`` (a module of its own so spawned processes can import it)."""
import copy

import timm
import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

import timm_ignore  # noqa: F401  (registers the models)
from timm_ignore import IgnoreCbam, IgnoreSqueezeExcite


def _sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def train_and_compare(rank: int, world_size: int, init_file: str, names: list[str], steps: int) -> None:
    """Train each model a few steps under DDP beside an unwrapped copy that averages its ranks' gradients by hand.

    Every step, DDP's gradients must equal element-wise the mean over ranks of the gradients the copy computes on
    the same local batch without DDP; both take the same optimizer step, so they stay equal throughout.
    """
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        for name in names:
            torch.manual_seed(0)  # the same initial weights on every rank, as DDP requires
            model = timm.create_model(name, depth=8, num_classes=10)
            blocks = [m for m in model.modules() if isinstance(m, (IgnoreSqueezeExcite, IgnoreCbam))]
            assert blocks and all(b.fused_backward for b in blocks), 'the test is about the fused backward'
            reference = copy.deepcopy(model)
            ddp = DistributedDataParallel(model)
            optimizer, reference_optimizer = _sgd(ddp), _sgd(reference)
            data = torch.Generator().manual_seed(1000 + rank)  # a different batch on every rank
            for step in range(steps):
                x, y = torch.randn(4, 3, 16, 16, generator=data), torch.randint(0, 10, (4,), generator=data)
                F.cross_entropy(ddp(x), y).backward()
                F.cross_entropy(reference(x), y).backward()
                for p in reference.parameters():
                    dist.all_reduce(p.grad)
                    p.grad /= world_size
                for (param_name, p), q in zip(model.named_parameters(), reference.parameters()):
                    torch.testing.assert_close(
                        p.grad, q.grad, rtol=1e-6, atol=1e-9, msg=lambda m: f'{name} step {step} {param_name}: {m}')
                optimizer.step(), reference_optimizer.step()
                optimizer.zero_grad(), reference_optimizer.zero_grad()
            for p, q in zip(model.parameters(), reference.parameters()):
                torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-9)
    finally:
        dist.destroy_process_group()
