"""Speed tricks must not change numbers: lazy item tables, cached-transpose sparse backward."""

import numpy as np
import scipy.sparse as sp
import torch

from modalrec.graphs import SparseOp
from modalrec.models.base import LazyItems, Representations


def test_lazy_items_equal_dense_rows_and_gradients():
    torch.manual_seed(0)
    feats = torch.randn(20, 7)
    lin = torch.nn.Linear(7, 4)
    users = torch.randn(5, 4)
    pos, neg = torch.tensor([1, 3, 3, 0, 19]), torch.tensor([2, 2, 5, 19, 7])

    lazy = Representations({"f": users}, {"f": LazyItems(lambda idx: lin(feats if idx is None else feats[idx]), 20)})
    p, n = lazy.items_at("f", pos, neg)
    loss_lazy = ((users * p).sum() - (users * n).sum()) ** 2
    g_lazy = torch.autograd.grad(loss_lazy, lin.weight)[0]

    full = lin(feats)
    loss_dense = ((users * full[pos]).sum() - (users * full[neg]).sum()) ** 2
    g_dense = torch.autograd.grad(loss_dense, lin.weight)[0]
    assert torch.allclose(p, full[pos]) and torch.allclose(n, full[neg])
    assert torch.allclose(g_lazy, g_dense, atol=1e-5)
    assert torch.allclose(lazy.all_items("f"), full)


def test_sparse_op_matches_torch_sparse_autograd():
    a = sp.random(30, 20, density=0.2, format="csr", random_state=1, dtype=np.float32)
    op = SparseOp(a)
    x = torch.randn(20, 3, requires_grad=True)
    y = op @ x
    (y**2).sum().backward()
    g1 = x.grad.clone()
    x.grad = None
    dense = torch.from_numpy(a.toarray())
    ((dense @ x) ** 2).sum().backward()
    assert torch.allclose(y, dense @ x.detach(), atol=1e-5)
    assert torch.allclose(g1, x.grad, atol=1e-5)


def test_bucketed_projection_equals_plain_rows_and_gradients(tiny):
    """FeatureProjector pads each batch gather to a bucket of rows; values and gradients are unchanged."""
    from modalrec.models.features import FeatureProjector, bucket_rows

    torch.manual_seed(0)
    proj = FeatureProjector(tiny, 8)
    idx = torch.tensor([4, 1, 1, 9, 0])
    assert len(bucket_rows(idx, 4)) == 8 and torch.equal(bucket_rows(idx, 4)[:5], idx)
    lazy = proj.project("image", idx)
    plain = proj.proj["image"](proj.raw("image")[idx])
    torch.testing.assert_close(lazy, plain)
    g_lazy = torch.autograd.grad(lazy.pow(2).sum(), proj.proj["image"].weight)[0]
    g_plain = torch.autograd.grad(plain.pow(2).sum(), proj.proj["image"].weight)[0]
    torch.testing.assert_close(g_lazy, g_plain)


def test_dot_scorer_reuses_its_buffer_and_matches_matmul():
    from modalrec.evaluate.ranking import DotScorer

    torch.manual_seed(0)
    users, items = torch.randn(10, 4), torch.randn(7, 4)
    score = DotScorer(users, items)
    first = score(torch.tensor([0, 1, 2]))
    torch.testing.assert_close(first, users[:3] @ items.T)
    ptr = first.data_ptr()
    second = score(torch.tensor([9, 8]))
    assert second.data_ptr() == ptr  # same storage: no allocation per batch
    torch.testing.assert_close(second, users[[9, 8]] @ items.T)


def test_fused_info_nce_equals_cross_entropy_form_and_gradients():
    import torch.nn.functional as F

    from modalrec.models.contrastive import info_nce

    torch.manual_seed(0)
    x, y = torch.randn(50, 8, requires_grad=True), torch.randn(50, 8, requires_grad=True)
    fused = info_nce(x, y, 0.2)
    gx, gy = torch.autograd.grad(3.0 * fused, [x, y])
    a, b = F.normalize(x, dim=1) / 0.2, F.normalize(y, dim=1)
    plain = F.cross_entropy(a @ b.T, torch.arange(50))
    px, py = torch.autograd.grad(3.0 * plain, [x, y])
    torch.testing.assert_close(fused, plain)
    torch.testing.assert_close(gx, px)
    torch.testing.assert_close(gy, py)


def test_bfloat16_info_nce_is_close_to_float32():
    from modalrec.models.contrastive import info_nce

    torch.manual_seed(0)
    x, y = torch.randn(64, 16, requires_grad=True), torch.randn(64, 16)
    exact = info_nce(x, y, 0.2)
    (g_exact,) = torch.autograd.grad(exact, [x])
    low = info_nce(x, y, 0.2, "bfloat16")
    (g_low,) = torch.autograd.grad(low, [x])
    assert abs(low.item() - exact.item()) < 1e-2 * abs(exact.item())
    assert (g_low - g_exact).norm() < 2e-2 * g_exact.norm()
