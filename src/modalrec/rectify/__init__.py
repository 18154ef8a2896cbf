"""Modality-level Rectification: anchors, robust projection, sparse affinity, Sinkhorn, re-aggregation."""

from modalrec.rectify.affinity import topk_affinity
from modalrec.rectify.anchors import lightgcn_embeddings, train_anchors
from modalrec.rectify.module import default_rho, rectify, rectify_dataset, rectify_modality
from modalrec.rectify.projection import keep_count, small_loss_mean, train_projection
from modalrec.rectify.sinkhorn import row_normalize, sinkhorn

__all__ = [
    "default_rho",
    "keep_count",
    "lightgcn_embeddings",
    "rectify",
    "rectify_dataset",
    "rectify_modality",
    "row_normalize",
    "sinkhorn",
    "small_loss_mean",
    "topk_affinity",
    "train_anchors",
    "train_projection",
]
