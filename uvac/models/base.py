"""What the three models share outside their layers: the sizes they were built with, for checkpoints."""
from __future__ import annotations

from torch import nn


class SizedModel(nn.Module):
    """An nn.Module that records its input shape, K and latent size; `metadata()` is what a
    checkpoint stores so that loading it rebuilds (and checks) the same model."""

    kind: str

    def __init__(self, input_shape, n_clusters: int, latent_dim: int):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_clusters, self.latent_dim = int(n_clusters), int(latent_dim)

    def metadata(self) -> dict:
        return {"kind": self.kind, "n_clusters": self.n_clusters, "latent_dim": self.latent_dim,
                "input_shape": list(self.input_shape)}
