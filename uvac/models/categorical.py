"""Categorical UVAC (M2-AC): a discrete cluster variable y beside a continuous z (categorical-uvac.txt).

q(y|x): network h (the shared encoder) -> K logits; y is a soft Gumbel-Softmax sample at
temperature tau (annealed by the training loop). q(z|x,y): network f, the same encoder on x with
y stacked as K extra input channels. p(x|y,z): the UVAC decoder on [z; y].
Loss = recon + lam * (KL(q(z|x,y) || N(0, I)) + KL(q(y|x) || Uniform(K))). Cluster = argmax logits.
Opt-in remedies for the collapse (the decoder ignoring y): free_bits, and the terms on q(y|x) of
uvac.models.cluster_remedies (info_weight, consistency_weight, neighbour_weight).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uvac.models.base import SizedModel
from uvac.models.cluster_remedies import cluster_remedies, kl_uniform, usage_kl_uniform
from uvac.models.layers import (HIDDEN, Decoder, Encoder, init_weights, kl_standard_normal,
                                reconstruction_loss, reparameterize)


def categorical_kl_paid(log_q: torch.Tensor, free_bits: float = 0.0) -> torch.Tensor:
    """The batch's categorical KL term: mean KL(q(y|x) || Uniform), as the paper, when free_bits is 0.

    free_bits > 0 (a remedy for the uniform-q collapse) splits that mean exactly into the KL of
    the batch's mean q(y) to Uniform (unequal cluster usage) plus the mean KL(q(y|x) || mean q(y))
    (what y tells about x), and leaves only the second unpaid below free_bits nats: q(y|x) may
    become confident for free, but unequal usage is always paid for, so the free nats cannot buy
    a collapse onto a few clusters, as a plain clamp of the whole term could. (It does not stop
    the decoder from ignoring y: see docs/accuracy.md.)
    """
    kl = kl_uniform(log_q).mean()
    if free_bits <= 0:
        return kl
    usage_kl = usage_kl_uniform(log_q)
    return usage_kl + (kl - usage_kl).clamp(min=free_bits)


class CategoricalUVAC(SizedModel):
    kind = "cat_uvac"

    def __init__(self, input_shape=(1, 128, 99), n_clusters: int = 10, latent_dim: int = 10):
        super().__init__(input_shape, n_clusters, latent_dim)
        channels, n_freq, _ = self.input_shape
        self.h = Encoder(channels, n_freq)
        self.h_head = nn.Linear(HIDDEN, n_clusters)
        self.f = Encoder(channels + n_clusters, n_freq)
        self.f_head = nn.Linear(HIDDEN, 2 * latent_dim)  # (mu, log sigma^2)
        self.decoder = Decoder(latent_dim + n_clusters)
        init_weights(self)

    def logits(self, x):
        return self.h_head(self.h(x)).float()

    def cluster_log_posterior(self, x):
        """log q(y|x)."""
        return F.log_softmax(self.logits(x), dim=1)

    def encode_z(self, x, y):
        """mu, log sigma^2 of q(z|x,y); y (B, K) is broadcast over frequency and time as extra channels."""
        y_map = y.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        mu, logvar = self.f_head(self.f(torch.cat([x, y_map], dim=1))).float().chunk(2, dim=1)
        return mu, logvar

    def loss(self, x, mask, *, recon="bce", kl_weight=1.0, logvar_clamp=(-10.0, 10.0), tau=1.0,
             lam=0.5, free_bits=0.0, **remedies):
        """Batch means of the loss and its terms; log_probs = log q(y|x), for monitoring.

        free_bits: see categorical_kl_paid; remedies: the opt-in terms of cluster_remedies, on q(y|x).
        """
        logits = self.logits(x)
        log_q = F.log_softmax(logits, dim=1)
        y = F.gumbel_softmax(logits, tau=tau, hard=False)
        mu, logvar = self.encode_z(x, y)
        logvar = logvar.clamp(*logvar_clamp)
        z = reparameterize(mu, logvar)
        rec = reconstruction_loss(self.decoder(torch.cat([z, y], dim=1), x.shape[2], x.shape[3]), x, mask, recon)
        kl_z, kl_y = kl_standard_normal(mu, logvar), kl_uniform(log_q)
        loss = rec.mean() + lam * kl_weight * (kl_z.mean() + categorical_kl_paid(log_q, free_bits))
        extra, terms = cluster_remedies(log_q, x, self.cluster_log_posterior, **remedies)
        return {"loss": loss + extra, "recon": rec.mean(), "kl_z": kl_z.mean(), "kl_y": kl_y.mean(), **terms,
                "log_probs": log_q.detach()}

    def infer(self, x):
        """Deterministic (latent mean, log q(y|x)); z's mean is taken at y = q(y|x), no Gumbel noise."""
        log_q = F.log_softmax(self.logits(x), dim=1)
        mu, _ = self.encode_z(x, log_q.exp())
        return mu, log_q
