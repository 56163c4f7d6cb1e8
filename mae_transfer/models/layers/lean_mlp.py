"""The transformer MLP, fc2(GELU(fc1(x))), with a backward pass that recomputes the GELU instead of keeping it.

Autograd keeps two [tokens, hidden] tensors per MLP for the backward pass: fc1's output (for GELU's gradient)
and GELU's output (for fc2's weight gradient). They are the largest activations of a ViT block: at ViT-B's
hidden width 3072 they hold 8x the block's [tokens, 768] input, 48 MiB each for ViTDet's 4096 tokens.
`GeluLinear` keeps only fc1's output and recomputes GELU from it when the gradient arrives: one elementwise
pass (about 1 % of a ViT-B step) for about a quarter of what a plain block keeps (4 of 17 token-widths: the
norms' and projections' inputs, q, k, v and the attention output, and the MLP's three). The products, their dtypes and
their order are autograd's own, so values and gradients are the same as the plain MLP's (a test checks both,
fp32 and under bf16 autocast).

`LeanMlp` is timm's `Mlp` with the same parameters (`fc1`, `fc2`), so every checkpoint loads unchanged; it
takes the lean path only when it can be exact: GELU activation, no dropout and no norm between the layers,
and a gradient to compute. Inference, export and tracing run timm's forward.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn


class GeluLinear(torch.autograd.Function):
    """y = GELU(hidden) @ weight^T + bias, saving `hidden` (not GELU(hidden)) for the backward pass.

    Under autocast the forward's `F.linear` runs in the autocast dtype; the backward repeats that cast
    explicitly (autocast is off by the time gradients are computed), so the products run in the same dtype as in
    the forward and the weight's gradient comes back in the weight's dtype, as autograd's cast would return it.
    """

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                approximate: str) -> torch.Tensor:
        activated = F.gelu(hidden, approximate=approximate)
        out = F.linear(activated, weight, bias)
        # what autocast chose (if on): GELU's dtype and the product's, repeated in the backward pass
        ctx.act_dtype, ctx.product_dtype = activated.dtype, out.dtype
        ctx.approximate, ctx.has_bias = approximate, bias is not None
        ctx.save_for_backward(hidden, weight)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        hidden, weight = ctx.saved_tensors
        act_input = hidden.to(ctx.act_dtype)
        activated = F.gelu(act_input, approximate=ctx.approximate).to(ctx.product_dtype)  # recomputed [..., hidden]
        grad_out = grad_out.to(ctx.product_dtype)
        grad_2d = grad_out.reshape(-1, grad_out.shape[-1])  # grad_2d: [tokens, out]
        grad_hidden = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_activated = torch.matmul(grad_out, weight.to(ctx.product_dtype))  # [..., hidden]
            grad_hidden = torch.ops.aten.gelu_backward(grad_activated.to(ctx.act_dtype), act_input,
                                                       approximate=ctx.approximate).to(hidden.dtype)
        if ctx.needs_input_grad[1]:
            grad_weight = grad_2d.t().mm(activated.reshape(-1, activated.shape[-1])).to(weight.dtype)  # [out, hidden]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_2d.sum(0).to(weight.dtype)  # [out]
        return grad_hidden, grad_weight, grad_bias, None


class LeanMlp(Mlp):
    """timm's `Mlp` (same arguments, same parameter names) whose training forward keeps fc1's output only."""

    def lean_path_applies(self) -> bool:
        """Exactly equal to timm's forward, and worth it: a GELU MLP without dropout or inner norm, under grad."""
        return (torch.is_grad_enabled() and isinstance(self.act, nn.GELU) and isinstance(self.norm, nn.Identity)
                and not (self.training and (self.drop1.p > 0 or self.drop2.p > 0))
                and isinstance(self.fc2, nn.Linear) and not torch.jit.is_tracing()
                and not torch.jit.is_scripting())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.lean_path_applies():
            return super().forward(x)
        hidden = self.fc1(x)  # hidden: [..., hidden_features]
        return GeluLinear.apply(hidden, self.fc2.weight, self.fc2.bias, self.act.approximate)


__all__ = ['GeluLinear', 'LeanMlp']
