"""cpu_linear.py: the faster CPU products give the same results as the stock layers."""
import copy

import pytest
import torch
from torch import nn

from clipprefix.fast.cpu_linear import CpuLinear, CpuMultiheadAttention, cpu_linear, use_cpu_linear


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


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh", "quick_gelu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_activation_fused_into_the_linear_computes_the_same_mlp(act, dtype):
    from open_clip.transformer import QuickGELU

    from clipprefix.fast.cpu_linear import _FusedAway

    torch.manual_seed(0)
    layer = {"gelu": nn.GELU(), "gelu_tanh": nn.GELU(approximate="tanh"), "quick_gelu": QuickGELU()}[act]
    mlp = nn.Sequential(nn.Linear(48, 192), layer, nn.Linear(192, 48)).eval().to(dtype)
    stock = copy.deepcopy(mlp)
    use_cpu_linear(mlp)
    assert isinstance(mlp[1], _FusedAway) and mlp[0].gelu is not None       # the activation moved into mlp[0]
    assert mlp.state_dict().keys() == stock.state_dict().keys()
    x = (torch.randn(5, 7, 48) * 2).to(dtype)
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    with torch.inference_mode():
        torch.testing.assert_close(mlp(x).float(), stock(x).float(), atol=tol, rtol=tol)
    if dtype == torch.float32:                                             # the training path: exact, with grads
        mlp.train()
        y = mlp(x)
        torch.testing.assert_close(y, stock.train()(x), atol=1e-6, rtol=1e-6)
        y.sum().backward()
        assert mlp[0].weight.grad is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])     # bf16 layers run from a packed copy
def test_layers_follow_in_place_weight_changes(dtype):
    torch.manual_seed(0)
    fc = use_cpu_linear(nn.Sequential(nn.Linear(16, 8))).eval().to(dtype)[0]
    x = torch.randn(3, 16).to(dtype)
    with torch.inference_mode():
        before = fc(x)
    with torch.no_grad():
        fc.weight.mul_(2.0)                                                  # e.g. load_state_dict, an optimiser step
    with torch.inference_mode():
        after = fc(x)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close((after - fc.bias).float(), 2 * (before - fc.bias).float(), atol=tol, rtol=tol)


def test_quick_gelu_clip_tower_equals_stock():
    """A whole open_clip tower built with QuickGELU (as OpenAI's weights are): fused == stock."""
    import open_clip

    from clipprefix.synthetic.tiny import clip_dir

    torch.manual_seed(0)
    net = open_clip.create_model(f"local-dir:{clip_dir()}", force_quick_gelu=True).eval()
    stock = copy.deepcopy(net)
    use_cpu_linear(net)
    assert any(getattr(m, "gelu", None) == "quick" for m in net.visual.modules())
    x = torch.randn(3, 3, net.visual.image_size[0], net.visual.image_size[0])
    with torch.inference_mode():
        torch.testing.assert_close(net.encode_image(x), stock.encode_image(x), atol=1e-4, rtol=1e-4)
