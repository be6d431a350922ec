"""The dense block's compiled CPU loops compute what their eager twins compute, and a machine where inductor cannot
compile falls back to the eager twin with one warning."""
import warnings

import pytest
import torch
import torch._inductor.config as inductor_config

from timm_ignore.layers.cpu_compiled import CpuCompiled
from timm_ignore.models import _fused_dense_block as dense


def _inputs(dtype: torch.dtype, chs: int = 20, rows: int = 300) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return dict(x_hat=torch.randn(chs, rows, dtype=torch.float64).to(dtype), gamma=torch.randn(chs),
                beta=torch.randn(chs), grad=torch.randn(chs, rows, dtype=torch.float64).to(dtype),
                grad_x_hat=torch.randn(chs, rows, dtype=torch.float64).to(dtype))


@pytest.mark.slow
@pytest.mark.parametrize('dtype', [torch.float64, torch.bfloat16])
def test_bottleneck_input_compiled_is_its_eager_twin(dtype):
    """Forward and backward of relu(gamma * x_hat + beta), compiled against the batch-norm kernels, at two sizes
    (the second one runs the same compiled code: shapes are dynamic)."""
    for chs in (20, 33):
        t = _inputs(dtype, chs)
        gamma, beta = (p.to(torch.float64) if dtype == torch.float64 else p for p in (t['gamma'], t['beta']))
        out = dense._bottleneck_input.formula(t['x_hat'], gamma, beta)
        compiled_out = dense._bottleneck_input(t['x_hat'], gamma, beta)
        expected = dense._bottleneck_input.eager(t['x_hat'], gamma, beta)
        assert dense._bottleneck_input._state == 'compiled'
        exact = dtype == torch.float64
        tol = dict(rtol=1e-12, atol=1e-12) if exact else dict(rtol=0.01, atol=0.01)
        torch.testing.assert_close(compiled_out, expected, **tol)
        torch.testing.assert_close(out, expected, **tol)
        assert (expected == 0).any() and (expected > 0).any()  # the ReLU cuts: both branches are tested

        grad_x_hat, expected_grad_x_hat = t['grad_x_hat'].clone(), t['grad_x_hat'].clone()
        sums = dense._bottleneck_input_backward_(t['grad'], expected, t['x_hat'], gamma, grad_x_hat)
        expected_sums = dense._bottleneck_input_backward_.eager(
            t['grad'], expected, t['x_hat'], gamma, expected_grad_x_hat)
        torch.testing.assert_close(grad_x_hat, expected_grad_x_hat, **tol)
        assert not torch.equal(grad_x_hat, t['grad_x_hat'])  # added in place
        for got, want in zip(sums, expected_sums):
            torch.testing.assert_close(got.to(want.dtype), want, **(tol if exact else dict(rtol=0.02, atol=0.05)))


def test_falls_back_to_the_eager_twin_where_inductor_cannot_compile():
    kernel = CpuCompiled(lambda x: (x * 2).relu(), lambda x: torch.relu(x * 2))
    x = torch.randn(8, 5)
    torch.compiler.reset()
    # a compiler that does not exist: inductor's build fails (the config's own patch restores it afterwards)
    with inductor_config.patch({'cpp.cxx': (None, '/nonexistent/c++')}):
        with pytest.warns(UserWarning, match='could not compile it on this machine'):
            torch.testing.assert_close(kernel(x), (x * 2).relu())
    assert kernel._state == 'eager'
    assert inductor_config.cpp.cxx != (None, '/nonexistent/c++')
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # one warning, not one per call
        torch.testing.assert_close(kernel(x), (x * 2).relu())
