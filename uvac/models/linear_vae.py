"""Linear VAE on MFCC statistics (linear-vae-gtzan.md): 26 -> 64 -> (mu, log sigma^2) of size 4 -> 64 -> 26.

Loss = squared error summed over the 26 features + KL to N(0, I) (the Gaussian ELBO up to
constants; a per-feature mean would let the KL swamp the reconstruction). Clusters come from
K-means on mu, fitted by the estimator, so the model itself has no cluster posterior.
"""
from __future__ import annotations

from torch import nn

from uvac.models.base import SizedModel
from uvac.models.layers import init_weights, kl_standard_normal, reparameterize

HIDDEN = 64


class LinearVAE(SizedModel):
    kind = "linear_vae"

    def __init__(self, input_shape=(26,), n_clusters: int = 5, latent_dim: int = 4):
        super().__init__(input_shape, n_clusters, latent_dim)
        (n_features,) = self.input_shape
        self.encoder = nn.Sequential(nn.Linear(n_features, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, n_features))
        init_weights(self)

    def encode(self, x):
        mu, logvar = self.encoder(x).float().chunk(2, dim=1)
        return mu, logvar

    def loss(self, x, mask=None, *, recon="mse", kl_weight=1.0, logvar_clamp=(-10.0, 10.0)):
        if mask is not None:
            raise ValueError("the linear VAE reads per-clip feature vectors; it takes no frame mask")
        if recon != "mse":
            raise ValueError(f"the linear VAE models z-scored features, so recon must be 'mse', got {recon!r}")
        mu, logvar = self.encode(x)
        logvar = logvar.clamp(*logvar_clamp)
        rec = ((self.decoder(reparameterize(mu, logvar)).float() - x) ** 2).sum(1)
        kl = kl_standard_normal(mu, logvar)
        return {"loss": (rec + kl_weight * kl).mean(), "recon": rec.mean(), "kl": kl.mean()}

    def infer(self, x):
        """(latent mean, None): no cluster posterior here; K-means on mu assigns clusters."""
        mu, _ = self.encode(x)
        return mu, None
