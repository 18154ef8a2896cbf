"""Graph builders: chunked kNN equals dense kNN; normalised adjacency; sparse autograd."""

import numpy as np
import torch

from modalrec.graphs import SparseOp, bipartite_adjacency, knn_adjacency, knn_graph


def test_chunked_knn_matches_dense():
    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    idx, _ = knn_graph(x, 5, chunk=7)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    dense = np.argsort(-(xn @ xn.T), axis=1)[:, :5]
    assert (idx[:, 0] == np.arange(50)).all()
    assert all(set(a) == set(b) for a, b in zip(idx, dense))


def test_knn_adjacency_binary_sym():
    x = np.random.default_rng(1).standard_normal((30, 4)).astype(np.float32)
    a = knn_adjacency(x, 4, cache=False)
    assert a.shape == (30, 30) and a.nnz == 120
    assert np.allclose(a.data, 0.25)  # every row degree is k -> 1/sqrt(k*k)


def test_bipartite_symmetric_and_autograd():
    import scipy.sparse as sp

    r = sp.random(6, 5, density=0.4, format="csr", random_state=0)
    r.data[:] = 1
    a = bipartite_adjacency(r)
    assert abs(a - a.T).sum() < 1e-6
    op = SparseOp(a, symmetric=True)
    x = torch.randn(11, 3, requires_grad=True)
    (op @ x).sum().backward()
    expect = torch.from_numpy(np.asarray(a.T @ np.ones((11, 3)), dtype=np.float32))
    assert torch.allclose(x.grad, expect, atol=1e-6)
