"""Sparse graph builders: bipartite adjacency, chunked kNN, sparse products with fast backward."""

from modalrec.graphs.bipartite import bipartite_adjacency, normalized_rating
from modalrec.graphs.knn import knn_adjacency, knn_graph
from modalrec.graphs.sparse import SparseOp, spmm

__all__ = ["SparseOp", "bipartite_adjacency", "knn_adjacency", "knn_graph", "normalized_rating", "spmm"]
