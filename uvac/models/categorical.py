"""Categorical UVAC (M2-AC): a discrete cluster variable y beside a continuous z (categorical-uvac.txt).

q(y|x): network h (the shared encoder) -> K logits; y is a soft Gumbel-Softmax sample at
temperature tau (annealed by the training loop). q(z|x,y): network f, the same encoder on x with
y stacked as K extra input channels. p(x|y,z): the UVAC decoder on [z; y].
Loss = recon + lam * (KL(q(z|x,y) || N(0, I)) + KL(q(y|x) || Uniform(K))). Cluster = argmax logits.
Opt-in remedies for the collapse (the decoder ignoring y): free_bits and info_weight; and one for
clusters that follow the speaker or the timing rather than the content: consistency_weight; and
one that asks a clip's nearest clips in the input to share its cluster: neighbour_weight.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from uvac.models.base import SizedModel
from uvac.models.layers import (HIDDEN, Decoder, Encoder, init_weights, kl_standard_normal,
                                reconstruction_loss, reparameterize)


def kl_uniform(log_q: torch.Tensor) -> torch.Tensor:
    """Per-clip KL(q || Uniform(K)) = sum_k q_k log q_k + log K, from log-probabilities."""
    return (log_q.exp() * log_q).sum(-1) + math.log(log_q.shape[-1])


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


def usage_kl_uniform(log_q: torch.Tensor) -> torch.Tensor:
    """KL(batch mean of q(y|x) || Uniform(K)): 0 when the clusters are used equally, log K when one takes all."""
    return kl_uniform(torch.logsumexp(log_q, dim=0) - math.log(len(log_q)))


def unequal_usage_minus_information(log_q: torch.Tensor) -> torch.Tensor:
    """KL(mean q(y) || Uniform) - I(x; y), estimated on the batch (I = mean KL(q(y|x) || mean q(y))).

    The info_weight remedy adds this, weighted on the reconstruction's scale (the paper's KL
    terms are a few nats beside a reconstruction of hundreds), so that confident assignments
    spread over all K clusters pay: from +log K (all clips confidently in one cluster) through 0
    (q(y|x) uniform for every clip, the collapse) to -log K (confident and balanced). Once y is
    informative the decoder has a reason to read it.
    """
    usage_kl = usage_kl_uniform(log_q)
    return usage_kl - (kl_uniform(log_q).mean() - usage_kl)


def shifted_and_warped(x: torch.Tensor, max_warp: float, max_shift: int) -> torch.Tensor:
    """A random view of each spectrogram (B, C, F, T) for the consistency remedy: shifted in time by up
    to max_shift frames and stretched along frequency by a factor in [1 - max_warp, 1 + max_warp]
    about the lowest bin (a rough change of vocal-tract length); zeros enter where content leaves.
    Draws from torch's global generator, which the training loop seeds.
    """
    b, _, _, t = x.shape
    stretch = 1 + (torch.rand(b, device=x.device) * 2 - 1) * max_warp
    shift = torch.randint(-max_shift, max_shift + 1, (b,), device=x.device) * (2.0 / t)
    theta = torch.zeros(b, 2, 3, device=x.device)  # affine_grid's (time, frequency) = (x, y) axes in [-1, 1]
    theta[:, 0, 0], theta[:, 0, 2] = 1.0, shift
    theta[:, 1, 1], theta[:, 1, 2] = stretch, stretch - 1  # y' = stretch * (y + 1) - 1: bin 0 stays put
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, padding_mode="zeros", align_corners=False).to(x.dtype)


def consistency_kl(log_q: torch.Tensor, log_q_view: torch.Tensor) -> torch.Tensor:
    """Mean KL(q(y|x) || q(y|view of x)), with q(y|x) held fixed as the target: a clip and its
    shifted, warped view should land in the same cluster."""
    target = log_q.detach()
    return (target.exp() * (target - log_q_view)).sum(-1).mean()


def neighbour_disagreement(log_q: torch.Tensor, log_q_neighbour: torch.Tensor) -> torch.Tensor:
    """Mean -log sum_k q(k|x) q(k|n) (SCAN's consistency, Van Gansbeke et al. 2020), by log-sum-exp: 0 when
    a clip and its neighbour n are confidently in the same cluster, large when they are confidently apart.
    Both sides take gradients, so that neighbours pull each other's assignments together."""
    return -torch.logsumexp(log_q + log_q_neighbour, dim=-1).mean()


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

    def encode_z(self, x, y):
        """mu, log sigma^2 of q(z|x,y); y (B, K) is broadcast over frequency and time as extra channels."""
        y_map = y.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        mu, logvar = self.f_head(self.f(torch.cat([x, y_map], dim=1))).float().chunk(2, dim=1)
        return mu, logvar

    def loss(self, x, mask, *, recon="bce", kl_weight=1.0, logvar_clamp=(-10.0, 10.0), tau=1.0,
             lam=0.5, free_bits=0.0, info_weight=0.0, consistency_weight=0.0, consistency_warp=0.1,
             consistency_shift=8, neighbour_weight=0.0, x_neighbour=None):
        """Batch means of the loss and its terms; log_probs = log q(y|x), for monitoring.

        free_bits: see categorical_kl_paid; info_weight: see unequal_usage_minus_information;
        consistency_weight weights consistency_kl on views from shifted_and_warped;
        neighbour_weight weights neighbour_disagreement with x_neighbour, one near clip for each clip of x.
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
        if info_weight > 0:
            loss = loss + info_weight * unequal_usage_minus_information(log_q)
        terms = {"recon": rec.mean(), "kl_z": kl_z.mean(), "kl_y": kl_y.mean()}
        if consistency_weight > 0:
            view = shifted_and_warped(x, consistency_warp, consistency_shift)
            terms["consistency"] = consistency_kl(log_q, F.log_softmax(self.logits(view), dim=1))
            loss = loss + consistency_weight * terms["consistency"]
        if neighbour_weight > 0:
            if x_neighbour is None or len(x_neighbour) != len(x):
                raise ValueError("neighbour_weight > 0 needs x_neighbour, one neighbouring clip for each clip of x")
            terms["neighbours"] = neighbour_disagreement(log_q, F.log_softmax(self.logits(x_neighbour), dim=1))
            loss = loss + neighbour_weight * terms["neighbours"]
        return {"loss": loss, **terms, "log_probs": log_q.detach()}

    def infer(self, x):
        """Deterministic (latent mean, log q(y|x)); z's mean is taken at y = q(y|x), no Gumbel noise."""
        log_q = F.log_softmax(self.logits(x), dim=1)
        mu, _ = self.encode_z(x, log_q.exp())
        return mu, log_q
