"""Activation memory of a ViT block: the lean MLP (GELU recomputed in backward) and the rel-pos terms that keep
one copy of the queries give the same values and gradients as the plain computation and keep less for the
backward pass."""
from typing import Callable

import pytest
import torch
from timm.layers import Mlp

from mae_transfer.models.layers.lean_mlp import LeanMlp
from mae_transfer.models.layers.window_attention import decomposed_rel_pos_terms, get_rel_pos


def saved_bytes(forward: Callable[[], torch.Tensor], *parameters: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass of `forward()`, except those of
    `parameters` (kept anyway; autograd may save them as views, e.g. a linear's weight.t())."""
    kept_anyway = {parameter.untyped_storage().data_ptr() for parameter in parameters}
    storages = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.untyped_storage().data_ptr() not in kept_anyway:
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(storages.values())


@pytest.mark.parametrize('amp', [False, True])
def test_lean_mlp_equals_timm_mlp_and_keeps_one_hidden_tensor_less(amp):
    torch.manual_seed(0)
    plain, lean = Mlp(32, 128), LeanMlp(32, 128)
    lean.load_state_dict(plain.state_dict())  # same parameter names: checkpoints load unchanged
    x = torch.randn(2, 5, 32)
    outputs, grads = [], []
    for mlp in (plain, lean):
        inputs = x.clone().requires_grad_()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            out = mlp(inputs)
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out).to(out.dtype))
        outputs.append(out)
        grads.append([inputs.grad, *(p.grad for p in mlp.parameters())])
    assert outputs[1].dtype == outputs[0].dtype == (torch.bfloat16 if amp else torch.float32)
    assert torch.equal(outputs[0], outputs[1])
    for plain_grad, lean_grad in zip(*grads):
        assert lean_grad.dtype == plain_grad.dtype and torch.equal(lean_grad, plain_grad)
    # plain keeps x, fc1's output and GELU's output; lean: x and fc1's output
    plain_saved, lean_saved = (saved_bytes(lambda mlp=mlp: mlp(x.clone().requires_grad_()), *mlp.parameters())
                               for mlp in (plain, lean))
    hidden_bytes = 2 * 5 * 128 * 4
    assert plain_saved - lean_saved == hidden_bytes


def test_lean_mlp_runs_timm_forward_without_grad_or_with_dropout():
    lean = LeanMlp(16, 64, drop=0.1)
    assert not lean.train().lean_path_applies()  # dropout between the layers: timm's forward
    assert lean.eval().lean_path_applies()  # dropout is off in eval
    with torch.no_grad():
        assert not lean.lean_path_applies()  # inference and export: timm's forward


def test_rel_pos_terms_equal_vitdet_einsums_and_keep_one_copy_of_q():
    torch.manual_seed(0)
    grid_h, grid_w, dim = 5, 7, 8
    q = torch.randn(2, 3, grid_h * grid_w, dim, dtype=torch.float64, requires_grad=True)
    table_h = torch.randn(9, dim, dtype=torch.float64, requires_grad=True)  # interpolated to 2 * 5 - 1 rows
    table_w = torch.randn(13, dim, dtype=torch.float64, requires_grad=True)  # exact size: 2 * 7 - 1

    def einsums(q, table_h, table_w):  # ViTDet's add_decomposed_rel_pos terms
        q_grid = q.reshape(*q.shape[:2], grid_h, grid_w, q.shape[-1])
        rel_h = torch.einsum('bnhwd,hkd->bnhwk', q_grid, get_rel_pos(grid_h, table_h))
        rel_w = torch.einsum('bnhwd,wkd->bnhwk', q_grid, get_rel_pos(grid_w, table_w))
        return rel_h.flatten(2, 3), rel_w.flatten(2, 3)

    def ours(q, table_h, table_w):
        return decomposed_rel_pos_terms(q, table_h, table_w, (grid_h, grid_w))

    for got, expected in zip(ours(q, table_h, table_w), einsums(q, table_h, table_w)):
        assert torch.allclose(got, expected, atol=1e-12)
    assert torch.autograd.gradcheck(ours, (q, table_h, table_w))
    # memory at a width where q dominates the tables and indices
    q32 = torch.randn(2, 8, grid_h * grid_w, 64, requires_grad=True)
    h32, w32 = torch.randn(9, 64, requires_grad=True), torch.randn(13, 64, requires_grad=True)
    q_bytes = q32.numel() * 4
    assert saved_bytes(lambda: ours(q32, h32, w32), h32, w32) < 1.2 * q_bytes  # one copy of q (+ tables, indices)
    assert saved_bytes(lambda: einsums(q32, h32, w32), h32, w32) > 1.9 * q_bytes  # the einsums keep one copy each
