"""The opt-in terms on a cluster posterior that both VAE models take (DESIGN.md §4, docs/accuracy.md).

Each is a remedy outside the papers, off by default: info_weight against the collapse (a posterior
that tells nothing about the clip), consistency_weight against clusters that follow the speaker or
the timing rather than the content, neighbour_weight asking a clip's nearest clips in the input to
share its cluster. The posterior is q(y|x) of Categorical UVAC and the responsibilities of UVAC's
mixture prior at z = mu.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def kl_uniform(log_q: torch.Tensor) -> torch.Tensor:
    """Per-clip KL(q || Uniform(K)) = sum_k q_k log q_k + log K, from log-probabilities."""
    return (log_q.exp() * log_q).sum(-1) + math.log(log_q.shape[-1])


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


def cluster_remedies(log_q, x, posterior, *, info_weight=0.0, consistency_weight=0.0, consistency_warp=0.1,
                     consistency_shift=8, neighbour_weight=0.0, x_neighbour=None):
    """The opt-in terms on a cluster posterior, shared by both models: (their weighted sum, the terms).

    log_q (B, K) is log q(cluster | x) with gradients; posterior(v) gives it for other clips (a view
    of x, x's neighbours). info_weight weights unequal_usage_minus_information, consistency_weight
    consistency_kl on views from shifted_and_warped, neighbour_weight neighbour_disagreement with
    x_neighbour, one near clip for each clip of x.
    """
    total, terms = 0.0, {}
    if info_weight > 0:
        total = total + info_weight * unequal_usage_minus_information(log_q)
    if consistency_weight > 0:
        terms["consistency"] = consistency_kl(log_q, posterior(shifted_and_warped(x, consistency_warp, consistency_shift)))
        total = total + consistency_weight * terms["consistency"]
    if neighbour_weight > 0:
        if x_neighbour is None or len(x_neighbour) != len(x):
            raise ValueError("neighbour_weight > 0 needs x_neighbour, one neighbouring clip for each clip of x")
        terms["neighbours"] = neighbour_disagreement(log_q, posterior(x_neighbour))
        total = total + neighbour_weight * terms["neighbours"]
    return total, terms
