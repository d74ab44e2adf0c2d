"""The three models: shapes, parameter counts, the mixture KL, gradients and the frame mask."""
import math

import pytest
import torch

from uvac.models import MODELS, CategoricalUVAC, LinearVAE, UVAC
from uvac.models.cluster_remedies import kl_uniform
from uvac.models.layers import fit_to, kl_standard_normal, reconstruction_loss
from uvac.models.uvac import kl_gmm, log_responsibilities

TINY = (1, 16, 32)  # small and fast on CPU; 2 GRU steps, so the recurrent weights take part


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and a busy 2-core machine makes them much slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def n_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


@pytest.mark.parametrize("kind", ["uvac", "cat_uvac"])
@pytest.mark.parametrize("frames", [99, 132, 332])
def test_spectrogram_models_keep_the_input_shape(kind, frames):
    torch.manual_seed(0)
    model = MODELS[kind]((1, 128, frames), n_clusters=7, latent_dim=10).eval()
    x = torch.rand(2, 1, 128, frames)
    with torch.no_grad():
        mu, log_p = model.infer(x)
        out = model.loss(x, torch.ones(2, frames))
    assert mu.shape == (2, 10)
    assert log_p.shape == (2, 7)
    assert torch.allclose(log_p.exp().sum(1), torch.ones(2))
    assert out["loss"].shape == () and torch.isfinite(out["loss"])
    code = torch.zeros(2, 10 if kind == "uvac" else 17)
    assert model.decoder(code, 128, frames).shape == (2, 1, 128, frames)


def test_uvac_encoder_grid_is_the_papers():
    model = UVAC((1, 128, 99))
    assert model.encoder.conv(torch.zeros(1, 1, 128, 99)).shape == (1, 128, 8, 6)
    assert model.encoder.gru.input_size == 128 * 8


def test_uvac_parameter_counts_match_the_paper_reading():
    model = UVAC((1, 128, 99), n_clusters=10, latent_dim=10)
    encoder = n_params(model.encoder, model.head)  # what inference needs, besides the prior
    total = n_params(model)
    assert encoder == pytest.approx(1.23e6, rel=0.05)
    assert total == pytest.approx(1.93e6, rel=0.05)


def test_categorical_f_network_reads_y_as_extra_channels():
    model = CategoricalUVAC((1, 128, 99), n_clusters=10, latent_dim=10)
    assert model.f.conv[0].in_channels == 1 + 10
    assert model.h.conv[0].in_channels == 1
    assert model.decoder.fc.in_features == 10 + 10
    assert model.h_head.out_features == 10


def test_linear_vae_architecture():
    model = LinearVAE((26,), n_clusters=5, latent_dim=4)
    assert n_params(model) == (26 * 64 + 64) + (64 * 8 + 8) + (4 * 64 + 64) + (64 * 26 + 26)
    mu, log_p = model.infer(torch.randn(3, 26))
    assert mu.shape == (3, 4) and log_p is None


def test_initialisation_follows_the_paper():
    torch.manual_seed(0)
    model = UVAC(TINY, n_clusters=6, latent_dim=5)
    biases = [model.head.bias, model.decoder.fc.bias, model.encoder.conv[0].bias,
              model.encoder.gru.bias_ih_l0, model.encoder.gru.bias_hh_l1, model.decoder.deconv[0].bias]
    assert all(torch.all(b == 0) for b in biases)
    bound = math.sqrt(6 / model.head.in_features)  # Kaiming-uniform, ReLU gain
    assert model.head.weight.abs().max() <= bound
    assert model.head.weight.abs().max() > 0.8 * bound
    assert torch.all((model.prior_logits >= 0) & (model.prior_logits <= 1))
    assert torch.all(model.prior_logvar == 0)
    assert model.prior_mu.abs().max() <= math.sqrt(6 / (6 + 5))  # Xavier-uniform bound


# --- the mixture-prior KL ---------------------------------------------------------------------

def random_prior(k=4, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(k, generator=g), torch.randn(k, d, generator=g), 0.5 * torch.randn(k, d, generator=g))


def test_vade_kl_matches_a_monte_carlo_estimate():
    """Given gamma, the closed form is KL(q(z|x) gamma || p(z|c) p(c)); estimate it by sampling z."""
    torch.manual_seed(0)
    logits, prior_mu, prior_logvar = random_prior()
    mu, logvar = torch.tensor([[0.3, -0.5, 1.0]]), torch.tensor([[-0.7, 0.2, -1.5]])
    z0 = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    log_gamma = log_responsibilities(z0, logits, prior_mu, prior_logvar)
    closed = kl_gmm(mu, logvar, log_gamma, logits, prior_mu, prior_logvar)[0]

    q = torch.distributions.Normal(mu[0], (0.5 * logvar[0]).exp())
    z = q.sample((400_000,))
    comp = torch.distributions.Normal(prior_mu, (0.5 * prior_logvar).exp())
    log_p_zc = comp.log_prob(z[:, None, :]).sum(-1)                     # (S, K)
    log_pi = torch.log_softmax(logits, 0)
    sample = q.log_prob(z).sum(-1) + (log_gamma.exp() * (log_gamma - log_pi - log_p_zc)).sum(-1)
    estimate, stderr = sample.mean(), sample.std() / math.sqrt(len(sample))
    assert abs(closed - estimate) < 5 * stderr + 1e-3


def test_single_component_vade_kl_is_the_gaussian_kl():
    torch.manual_seed(1)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    prior = (torch.zeros(1), torch.zeros(1, 3), torch.zeros(1, 3))
    log_gamma = log_responsibilities(mu, *prior)
    assert torch.allclose(log_gamma, torch.zeros(5, 1))
    assert torch.allclose(kl_gmm(mu, logvar, log_gamma, *prior), kl_standard_normal(mu, logvar), atol=1e-5)
    # ... and that matches sampling too (the true KL to N(0, I))
    q = torch.distributions.Normal(mu[0], (0.5 * logvar[0]).exp())
    z = q.sample((400_000,))
    sample = q.log_prob(z).sum(-1) - torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert abs(sample.mean() - kl_standard_normal(mu, logvar)[0]) < 5 * sample.std() / math.sqrt(len(sample)) + 1e-3


def test_responsibilities_stay_finite_far_from_every_component():
    logits, prior_mu, prior_logvar = random_prior()
    z = torch.full((2, 3), 1e3)  # exp(log N) underflows to 0 for every component here
    log_gamma = log_responsibilities(z, logits, prior_mu, prior_logvar)
    assert torch.isfinite(log_gamma).all()
    assert torch.allclose(log_gamma.exp().sum(1), torch.ones(2))


def test_kl_to_uniform():
    k = 6
    assert torch.allclose(kl_uniform(torch.full((1, k), -math.log(k))), torch.zeros(1), atol=1e-6)
    one_hot = torch.log_softmax(torch.tensor([[50.0] + [0.0] * (k - 1)]), 1)
    assert kl_uniform(one_hot)[0] == pytest.approx(math.log(k), abs=1e-4)


# --- gradients, mask, decoder fitting ------------------------------------------------------------

@pytest.mark.parametrize("kind", ["uvac", "cat_uvac", "linear_vae"])
def test_gradients_reach_every_parameter(kind):
    torch.manual_seed(0)
    if kind == "linear_vae":
        model, x, mask, kw = LinearVAE(), torch.randn(8, 26), None, {"recon": "mse"}
    else:
        model, x, mask, kw = MODELS[kind](TINY, 4, 3), torch.rand(8, *TINY), torch.ones(8, TINY[2]), {}
    model.loss(x, mask, **kw)["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("recon", ["bce", "mse"])
def test_reconstruction_ignores_masked_frames(recon):
    torch.manual_seed(0)
    logits, x = torch.randn(3, 1, 16, 20), torch.rand(3, 1, 16, 20)
    mask = torch.ones(3, 20)
    mask[:, 14:] = 0                                    # trailing padding
    mask[1, 9:] = 0
    base = reconstruction_loss(logits, x, mask, recon)
    x2, logits2 = x.clone(), logits.clone()
    padded = mask[:, None, None, :].expand_as(x) == 0
    x2[padded] = torch.rand(int(padded.sum()))          # anything at all in the padding ...
    logits2[padded] = 10 * torch.randn(int(padded.sum()))
    assert torch.equal(reconstruction_loss(logits2, x2, mask, recon), base)  # ... changes nothing
    x2[0, 0, 3, 2] = 1 - x2[0, 0, 3, 2]                 # an active bin does count
    assert reconstruction_loss(logits2, x2, mask, recon)[0] != base[0]


def test_unmasked_bce_is_summed_over_every_bin():
    logits, x = torch.zeros(2, 1, 4, 5), torch.ones(2, 1, 4, 5)
    assert torch.allclose(reconstruction_loss(logits, x, None, "bce"), torch.full((2,), 20 * math.log(2)))


def test_fit_to_pads_with_the_edge_frame_and_crops():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    padded = fit_to(x, 3, 6)
    assert padded.shape == (1, 1, 3, 6)
    assert torch.equal(padded[..., 4], x[..., 3]) and torch.equal(padded[..., 5], x[..., 3])
    assert torch.equal(fit_to(x, 2, 3), x[..., :2, :3])


def test_linear_vae_refuses_bce_and_masks():
    model = LinearVAE()
    with pytest.raises(ValueError, match="mse"):
        model.loss(torch.randn(2, 26), recon="bce")
    with pytest.raises(ValueError, match="mask"):
        model.loss(torch.randn(2, 26), torch.ones(2, 3))
