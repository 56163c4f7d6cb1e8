"""mmcv's CPU nms and roi_align under bf16 autocast: fp32 at their boundary, the caller's dtype back."""
import torch
from mmcv.ops import nms, roi_align

from mae_transfer.engine.autocast_boundaries import cast_mmcv_ops_to_fp32


def test_nms_and_roi_align_run_under_cpu_autocast_as_in_fp32():
    cast_mmcv_ops_to_fp32()
    assert cast_mmcv_ops_to_fp32() == []  # idempotent
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(20, 2, generator=generator) * 50
    boxes = torch.cat([corners, corners + 5 + torch.rand(20, 2, generator=generator) * 20], dim=1)  # [20, 4]
    scores = torch.rand(20, generator=generator)
    features = torch.randn(1, 4, 16, 16, generator=generator, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 9.0], [0, 4.0, 2.0, 15.0, 12.0]])
    _, keep_fp32 = nms(boxes, scores, 0.5)
    expected = roi_align(features, rois, (3, 3), 1.0, 2)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        _, keep = nms(boxes.bfloat16(), scores.bfloat16(), 0.5)
        pooled = roi_align(features.bfloat16(), rois.bfloat16(), (3, 3), 1.0, 2)
    assert keep.dtype == torch.long and len(keep) > 0
    assert set(keep.tolist()) <= set(range(20)) and abs(len(keep) - len(keep_fp32)) <= 1  # bf16-rounded boxes
    assert pooled.dtype == torch.bfloat16  # the caller's dtype, as the CUDA kernels return half for half
    torch.testing.assert_close(pooled.float(), expected, atol=0.05, rtol=0.05)
    pooled.float().sum().backward()  # backward gets fp32 gradients (autocast is off by then)
    assert features.grad is not None and features.grad.dtype == torch.float32
