"""UVAC: a convolutional-recurrent VAE with a Gaussian-mixture prior (uvac.txt, DESIGN.md §4).

q(z|x) = N(mu, sigma^2) from the shared encoder; p(z) = sum_k pi_k N(mu_k, sigma_k^2) with K
components; p(x|z) from the transposed-conv decoder. The KL to the mixture has no closed form,
so it is taken in the VaDE form, KL(q(z|x) q(c|x) || p(z|c) p(c)), with q(c|x) = gamma, the
responsibilities of the prior components for the sampled z. Cluster of a clip = argmax gamma at z = mu.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uvac.models.base import SizedModel
from uvac.models.cluster_remedies import cluster_remedies
from uvac.models.layers import HIDDEN, Decoder, Encoder, init_weights, reconstruction_loss, reparameterize


def log_responsibilities(z, prior_logits, prior_mu, prior_logvar) -> torch.Tensor:
    """log gamma (B, K): log softmax_k [log pi_k + log N(z; mu_k, sigma_k^2)], never exp-then-normalise."""
    log_pi = F.log_softmax(prior_logits, dim=0)
    sq = (z[:, None, :] - prior_mu[None]) ** 2 / prior_logvar.exp()[None]
    log_normal = -0.5 * (prior_logvar[None] + sq).sum(-1)  # the -d/2 log(2 pi) cancels in the softmax
    return F.log_softmax(log_pi[None] + log_normal, dim=1)


def kl_gmm(mu, logvar, log_gamma, prior_logits, prior_mu, prior_logvar) -> torch.Tensor:
    """Per-clip VaDE KL: sum_k gamma_k [E_q(-log N(z; mu_k, s_k^2)) + log gamma_k - log pi_k] - H(q(z|x)).

    The Gaussian cross-entropy is exact given gamma; the log(2 pi) terms of the cross-entropy
    and of the entropy of q cancel and are left out.
    """
    log_pi = F.log_softmax(prior_logits, dim=0)
    gamma = log_gamma.exp()
    diff = (logvar.exp()[:, None, :] + (mu[:, None, :] - prior_mu[None]) ** 2) / prior_logvar.exp()[None]
    cross = 0.5 * (prior_logvar[None] + diff).sum(-1)               # (B, K)
    neg_entropy = -0.5 * (1.0 + logvar).sum(-1)                     # (B,)
    return (gamma * (cross + log_gamma - log_pi[None])).sum(-1) + neg_entropy


class UVAC(SizedModel):
    kind = "uvac"

    def __init__(self, input_shape=(1, 128, 99), n_clusters: int = 10, latent_dim: int = 10):
        super().__init__(input_shape, n_clusters, latent_dim)
        channels, n_freq, _ = self.input_shape
        self.encoder = Encoder(channels, n_freq)
        self.head = nn.Linear(HIDDEN, 2 * latent_dim)  # (mu, log sigma^2)
        self.decoder = Decoder(latent_dim)
        init_weights(self)
        # Mixture prior, initialised as in the paper: logits ~ U(0, 1), means Xavier-uniform, log variances 0.
        self.prior_logits = nn.Parameter(torch.rand(n_clusters))
        self.prior_mu = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_clusters, latent_dim)))
        self.prior_logvar = nn.Parameter(torch.zeros(n_clusters, latent_dim))

    def encode(self, x):
        mu, logvar = self.head(self.encoder(x)).float().chunk(2, dim=1)
        return mu, logvar

    def cluster_log_posterior(self, x):
        """log q(y|x): the responsibilities of the prior's components for the latent mean of x."""
        return self.cluster_log_probs(self.encode(x)[0])

    def cluster_log_probs(self, z):
        return log_responsibilities(z, self.prior_logits, self.prior_mu, self.prior_logvar)

    def loss(self, x, mask, *, recon="bce", kl_weight=1.0, logvar_clamp=(-10.0, 10.0), **remedies):
        """Batch means of the negative ELBO and its terms; log_probs = log gamma at z = mu, for monitoring.

        remedies: the opt-in terms of cluster_remedies, on the responsibilities at z = mu
        (those predict reads) in place of q(y|x).
        """
        mu, logvar = self.encode(x)
        logvar = logvar.clamp(*logvar_clamp)
        z = reparameterize(mu, logvar)
        rec = reconstruction_loss(self.decoder(z, x.shape[2], x.shape[3]), x, mask, recon)
        log_gamma = self.cluster_log_probs(z)
        kl = kl_gmm(mu, logvar, log_gamma, self.prior_logits, self.prior_mu, self.prior_logvar)
        log_gamma_mu = self.cluster_log_probs(mu)
        extra, terms = cluster_remedies(log_gamma_mu, x, self.cluster_log_posterior, **remedies)
        return {
            "loss": (rec + kl_weight * kl).mean() + extra,
            "recon": rec.mean(),
            "kl": kl.mean(),
            **terms,
            "log_probs": log_gamma_mu.detach(),
        }

    def infer(self, x):
        """Deterministic (latent mean, log gamma at z = mu): what transform and predict use."""
        mu, _ = self.encode(x)
        return mu, self.cluster_log_probs(mu)

    def autoencoder_loss(self, x, mask, *, recon="bce"):
        """Pre-training objective (VaDE practice): a deterministic autoencoder through z = mu."""
        mu, _ = self.encode(x)
        return reconstruction_loss(self.decoder(mu, x.shape[2], x.shape[3]), x, mask, recon).mean()

    @torch.no_grad()
    def start_from_mixture(self, weights, means, variances, logvar_floor: float = -10.0):
        """Initialise the prior from a GaussianMixture fitted on the pre-trained mu (VaDE practice).

        weights (K,), means and diagonal variances (K, d). The log sigma^2 head, which the
        autoencoder pre-training never trains, is reset to output the narrowest component
        variance for every clip: left at its random init it adds noise of unit scale to latents
        whose clusters may be far narrower, which scattered the responsibilities and collapsed
        the clusters within the first epochs of the full loss. The start stays one nat above
        logvar_floor (the training clamp), where the clamp would stop its gradient.
        """
        variances = torch.as_tensor(variances)
        self.prior_logits.copy_(torch.as_tensor(weights).log())
        self.prior_mu.copy_(torch.as_tensor(means))
        self.prior_logvar.copy_(variances.log())
        d = self.latent_dim
        self.head.weight[d:] = 0.0
        self.head.bias[d:] = variances.min(0).values.log().clamp(min=logvar_floor + 1.0)
