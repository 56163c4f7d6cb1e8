"""The analytic GEMM FLOP count of an MAE step (mae_transfer/utils/flops.py) against torch's FLOP counter."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mae_transfer.models.mae import mae_vit_tiny_patch16
from mae_transfer.utils.flops import Gemm, mae_step_gemm_flops, mae_step_gemms, matmul_flops_per_s, time_gemms


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
    # the products at the batch's shapes (what the ceiling times) hold the same FLOPs
    step = mae_step_gemms(model, mask_ratio, images=batch)
    assert sum(gemm.flops for gemm in step) == forward + backward_counter.get_total_flops()
    assert {gemm.part for gemm in step} == {'patch_embed', 'encoder', 'decoder'}


def test_matmul_flops_per_s_is_a_positive_rate():
    assert matmul_flops_per_s(torch.float32, size=64, repeats=2) > 0


def test_time_gemms_counts_each_shape_as_often_as_the_step_runs_it():
    assert time_gemms([], torch.float32) == 0.0
    once = Gemm('encoder', 1, 64, 64, 64)
    seconds = time_gemms([once, once._replace(count=2), Gemm('decoder', 2, 8, 16, 8)], torch.float32, repeats=2)
    assert 0.0 < seconds < 1.0
