"""A sparse matrix for autograd products: forward A @ x, backward A^T @ g with a cached transpose."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


def _to_torch_csr(m: sp.csr_matrix, device: torch.device | str = "cpu") -> torch.Tensor:
    m = m.tocsr().astype(np.float32)
    m.sort_indices()
    idx_dtype = torch.int32 if m.nnz < 2**31 - 1 and max(m.shape) < 2**31 - 1 else torch.int64
    return torch.sparse_csr_tensor(
        torch.from_numpy(m.indptr.astype(np.int64)).to(idx_dtype),
        torch.from_numpy(m.indices.astype(np.int64)).to(idx_dtype),
        torch.from_numpy(m.data),
        size=m.shape,
    ).to(device)


class SparseOp:
    """A fixed sparse matrix (scipy in, torch CSR inside) usable in autograd via ``spmm``."""

    def __init__(self, m: sp.spmatrix, device: torch.device | str = "cpu", symmetric: bool | None = None):
        m = sp.csr_matrix(m)
        self.shape = m.shape
        self.nnz = m.nnz
        self.scipy = m
        self.mat = _to_torch_csr(m, device)
        if symmetric is None:
            symmetric = m.shape[0] == m.shape[1] and abs(m - m.T).sum() == 0
        self.mat_t = self.mat if symmetric else _to_torch_csr(m.T.tocsr(), device)

    def to(self, device: torch.device | str) -> SparseOp:
        self.mat = self.mat.to(device)
        self.mat_t = self.mat_t.to(device)
        return self

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return spmm(self, x)

    @property
    def T(self) -> SparseOp:  # noqa: N802
        out = SparseOp.__new__(SparseOp)
        out.shape, out.nnz, out.scipy = self.shape[::-1], self.nnz, None
        out.mat, out.mat_t = self.mat_t, self.mat
        return out


class _SpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, op: SparseOp) -> torch.Tensor:  # type: ignore[override]
        ctx.op = op
        return torch.sparse.mm(op.mat, x)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        return torch.sparse.mm(ctx.op.mat_t, g.contiguous()), None


def spmm(op: SparseOp, x: torch.Tensor) -> torch.Tensor:
    """``op @ x`` with gradient w.r.t. ``x`` only (the matrix is a constant)."""
    if x.requires_grad:
        return _SpMM.apply(x, op)
    return torch.sparse.mm(op.mat, x)
