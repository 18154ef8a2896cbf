"""In-batch InfoNCE between two aligned views (MGCN, SMORE), with a fused forward/backward.

loss = mean_i [ logsumexp_j(a_i . b_j) - a_i . b_i ],  a = normalize(x) / t,  b = normalize(y).

``F.cross_entropy(a @ b.T, arange)`` computes the same value but its backward materialises the
B x B log-softmax gradient and a one-hot scatter; this Function keeps one B x B buffer of
exp(L - max) and needs two matrix products for the backward (about 2.5x faster at B = 2048 on CPU,
which is most of an MGCN step). Values equal the cross-entropy form up to float rounding (tested).
The models pass their ``feature_precision`` (resolved: bfloat16 on CPUs with native support).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


class _InBatchNCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, low: bool) -> torch.Tensor:  # type: ignore[override]
        ctx.low = low
        logits = (a.bfloat16() @ b.bfloat16().T).float() if low else a @ b.T
        peak = logits.amax(dim=1, keepdim=True)
        expd = logits.sub_(peak).exp_()  # in place: one B x B buffer
        total = expd.sum(dim=1, keepdim=True)
        lse = total.log().squeeze(1) + peak.squeeze(1)
        ctx.save_for_backward(a, b, expd, total)
        return (lse - (a * b).sum(1)).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:  # type: ignore[override]
        a, b, expd, total = ctx.saved_tensors
        scale = grad / a.shape[0]
        prob = expd * (scale / total)  # softmax rows times d loss / d lse_i, one pass
        if ctx.low:
            prob_l, a_l, b_l = prob.bfloat16(), a.bfloat16(), b.bfloat16()
            return (prob_l @ b_l).float() - b * scale, (prob_l.T @ a_l).float() - a * scale, None
        return prob @ b - b * scale, prob.T @ a - a * scale, None


def info_nce(x: torch.Tensor, y: torch.Tensor, temperature: float, precision: str = "float32") -> torch.Tensor:
    """In-batch InfoNCE between aligned rows of two views (cosine similarities / temperature).

    ``precision="bfloat16"`` runs the three B x B x d products in bfloat16 with float32
    accumulation (~4x faster on CPUs with native bfloat16; logits within ~1e-2 of float32).
    """
    low = precision == "bfloat16" and x.device.type == "cpu"
    return _InBatchNCE.apply(F.normalize(x, dim=1) / temperature, F.normalize(y, dim=1), low)
