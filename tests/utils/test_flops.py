"""The analytic GEMM FLOP count of an MAE step (mae_transfer/utils/flops.py) against torch's FLOP counter."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mae_transfer.models.mae import mae_vit_tiny_patch16
from mae_transfer.utils.flops import mae_step_gemm_flops, matmul_flops_per_s


@pytest.mark.parametrize('mask_ratio', [0.5])
def test_mae_step_gemm_flops_matches_torch_flop_counter(mask_ratio):
    torch.manual_seed(0)
    model = mae_vit_tiny_patch16(img_size=32, decoder_depth=1)  # 2 x 2 patches: 2 stay visible at 0.5
    for block in [*model.blocks, *model.decoder_blocks]:
        block.attn.fused_attn = False  # explicit bmm: the counter does not know the CPU flash-attention op
    batch = 2
    with FlopCounterMode(display=False) as forward_counter:
        loss = model(torch.randn(batch, 3, 32, 32), mask_ratio=mask_ratio)[0]
    with FlopCounterMode(display=False) as backward_counter:
        loss.backward()
    forward = forward_counter.get_total_flops()
    assert mae_step_gemm_flops(model, mask_ratio, backward=False)['total'] * batch == forward
    assert mae_step_gemm_flops(model, mask_ratio)['total'] * batch == forward + backward_counter.get_total_flops()


def test_matmul_flops_per_s_is_a_positive_rate():
    assert matmul_flops_per_s(torch.float32, size=64, repeats=2) > 0
