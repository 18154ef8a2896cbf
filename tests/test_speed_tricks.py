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
