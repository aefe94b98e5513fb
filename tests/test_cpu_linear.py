"""cpu_linear.py: the faster CPU products give the same results as the stock layers."""
import copy

import pytest
import torch
from torch import nn

from clipprefix.cpu_linear import CpuLinear, CpuMultiheadAttention, cpu_linear, use_cpu_linear


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_linear_equals_f_linear(dtype):
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*s, generator=g).to(dtype) for s in ((3, 7, 48), (40, 48), (40,)))
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(cpu_linear(dtype)(x, w, b), torch.nn.functional.linear(x, w, b), atol=tol, rtol=tol)
    torch.testing.assert_close(cpu_linear(dtype)(x[:, 0], w, None), x[:, 0] @ w.t(), atol=tol, rtol=tol)


def test_swapped_layers_compute_what_the_stock_ones_do():
    torch.manual_seed(0)
    block = nn.ModuleDict({"attn": nn.MultiheadAttention(32, 4, batch_first=True), "fc": nn.Linear(32, 64)}).eval()
    stock = copy.deepcopy(block)
    use_cpu_linear(block)
    assert type(block["fc"]) is CpuLinear and type(block["attn"]) is CpuMultiheadAttention
    assert type(block["attn"].out_proj) is not CpuLinear             # MHA calls its out_proj functionally
    assert block.state_dict().keys() == stock.state_dict().keys()
    x = torch.randn(2, 9, 32)
    with torch.inference_mode():
        torch.testing.assert_close(block["fc"](x), stock["fc"](x), atol=1e-5, rtol=1e-5)
        got = block["attn"](x, x, x, need_weights=False)[0]
        torch.testing.assert_close(got, stock["attn"](x, x, x, need_weights=False)[0], atol=1e-5, rtol=1e-5)
        mask = torch.triu(torch.full((9, 9), float("-inf")), 1)      # a masked call takes the stock path
        torch.testing.assert_close(block["attn"](x, x, x, attn_mask=mask, need_weights=False)[0],
                                   stock["attn"](x, x, x, attn_mask=mask, need_weights=False)[0])
    y = block["fc"](x)                                                 # training: autograd still works
    y.sum().backward()
    assert block["fc"].weight.grad is not None
