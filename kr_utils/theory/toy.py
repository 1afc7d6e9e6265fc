"""Theory, in two dimensions. The toy data sets (two Gaussian clusters from `002`,
the Swiss roll from `001`), a small MLP that predicts epsilon for 2D points with the same
interface as the pipeline's U-Net (so :func:`kr_utils.diffusion.diffusion_loss` and the
samplers run unchanged), a time-conditioned noisy classifier for classifier guidance, and
the measures of sample quality used in theory chapters 3-5.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..comparison import accuracy_interval, compare_runs, mcnemar, mean_interval
from ..data import Batcher
from ..evaluate import counted
from ..diffusion import NoiseSchedule, diffusion_loss, guided_eps, sample_loop
from ..fit import FitOptions, built_from_seed, fit
from ..models import timestep_embedding

# ------------------------------------------------------------------------------- data


def two_gaussians(n_per_class: int, generator: torch.Generator, means=((-2.0, -2.0), (2.0, 2.0)),
                  std: float = 0.5):
    """`002`'s data set: isotropic Gaussians of std ``std`` around ``means``; returns (x, y)."""
    m = torch.tensor(means, dtype=torch.float32)
    y = torch.arange(len(m)).repeat_interleave(n_per_class)
    return m[y] + std * torch.randn((len(y), 2), generator=generator), y


def bayes_accuracy_two_gaussians(means, std: float, alpha_bar: float) -> float:
    """The best accuracy any classifier can reach on x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps when x_0
    is one of :func:`two_gaussians`' two equally likely isotropic clusters: each class is then
    N(sqrt(ab) m_c, (ab std^2 + 1 - ab) I), and the Bayes rule is right with probability
    Phi(half the distance between the class means / their common std)."""
    m = torch.as_tensor(means, dtype=torch.float64)
    if m.shape[0] != 2:
        raise ValueError(f"two cluster means expected, got {tuple(m.shape)}")
    half = math.sqrt(alpha_bar) * float((m[1] - m[0]).norm()) / 2
    sd = math.sqrt(alpha_bar * std ** 2 + 1 - alpha_bar)
    return 0.5 * (1 + math.erf(half / sd / math.sqrt(2)))


@dataclass
class GenDisc:
    """Theory chapter 1's two classifiers on one draw of two overlapping clusters
    (:func:`generative_vs_discriminative`): the held-out points, which of them each classifier
    gets right, the logistic regression's line (w0, w1, b) and new points the generative model draws."""
    x_test: torch.Tensor
    y_test: torch.Tensor
    generative_right: np.ndarray
    discriminative_right: np.ndarray
    boundary: tuple
    new_points: torch.Tensor
    sigma: float
    means: tuple


def _fit_both(x: torch.Tensor, y: torch.Tensor, seed: int, device):
    """The two classifiers of :func:`generative_vs_discriminative` fitted to ``(x, y)``: the
    class-conditional Gaussians (a list of two distributions) and the logistic regression (on
    the CPU after its fit)."""
    dists = _fit_gaussians(x, y)
    logreg = built_from_seed(lambda: nn.Linear(2, 1), seed).to(device)  # its start drawn from the seed alone
    xd, yd = x.to(device), y.float().to(device)
    fit(logreg, lambda idx: F.binary_cross_entropy_with_logits(logreg(xd[idx])[:, 0], yd[idx]), Batcher(len(xd), len(xd)),
        torch.optim.Adam(logreg.parameters(), lr=0.05), FitOptions(steps=300, progress=False))  # full batch
    return dists, logreg.cpu()


def _fit_gaussians(x: torch.Tensor, y: torch.Tensor) -> list:
    """One Gaussian per class, its mean and full covariance estimated from ``(x, y)``."""
    return [torch.distributions.MultivariateNormal(x[y == k].mean(0), torch.cov(x[y == k].T)) for k in (0, 1)]


def _right(dists, logreg, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """Which points of ``(x, y)`` each classifier gets right: Bayes' rule with equal priors
    (eq. T1.1) on the two Gaussians, and the logistic regression's sign (None without one)."""
    with torch.no_grad():
        gen = torch.stack([d.log_prob(x) for d in dists], 1).argmax(1)
        disc = None if logreg is None else ((logreg(x)[:, 0] > 0).long() == y).numpy()
    return (gen == y).numpy(), disc


def generative_vs_discriminative(seed: int, device, *, n: int = 500, sigma: float = 1.5,
                                 means=((-2.0, -2.0), (2.0, 2.0)), new: int = 200) -> GenDisc:
    """``n`` points a class to train on and as many held out, drawn by ``seed``; a generative
    classifier (one Gaussian per class, equal priors, Bayes' rule: eq. T1.1) and a
    discriminative one (logistic regression, p(y=1|x) = sigmoid(a.x + b), 300 full-batch Adam
    steps through :func:`kr_utils.fit.fit`); ``new`` points a class drawn from the first."""
    g = torch.Generator().manual_seed(seed)
    x, y = two_gaussians(n, g, means, sigma)
    xt, yt = two_gaussians(n, g, means, sigma)
    dists, logreg = _fit_both(x, y, seed, device)
    gen_right, disc_right = _right(dists, logreg, xt, yt)
    new_points = torch.cat([d.sample((new,)) for d in dists])
    w = logreg.weight[0].detach()
    return GenDisc(xt, yt, gen_right, disc_right, (w[0].item(), w[1].item(), logreg.bias.item()), new_points, sigma,
                   tuple(means))


CURVE_SIZES = (4, 8, 16, 32, 64, 128, 512)  # theory chapter 1's training sizes, points per class


class _Logregs(nn.Module):
    """``k`` logistic regressions on 2-D points at once, each started as
    ``built_from_seed(nn.Linear(2, 1), seeds[i])``: with the sum of their losses, Adam's
    elementwise steps are those of ``k`` separate fits."""

    def __init__(self, seeds):
        super().__init__()
        starts = [built_from_seed(lambda: nn.Linear(2, 1), s) for s in seeds]
        self.weight = nn.Parameter(torch.stack([m.weight[0].detach() for m in starts]))
        self.bias = nn.Parameter(torch.stack([m.bias[0].detach() for m in starts]))

    def forward(self, x):  # x: (k, n, 2) -> logits (k, n)
        return torch.einsum("knd,kd->kn", x, self.weight) + self.bias[:, None]


def gen_disc_curve(sizes, draws: int, seed: int, *, sigma: float = 1.5, means=((-2.0, -2.0), (2.0, 2.0)),
                   held_out: int = 2000) -> dict:
    """The two classifiers of :func:`generative_vs_discriminative` against the training size:
    for each ``n`` of ``sizes`` (points per class), ``draws`` independent training draws, each
    classifier scored on one held-out draw of ``held_out`` points a class (the logistic
    regressions fitted together, :class:`_Logregs`, each as :func:`_fit_both` fits one). Per
    ``n``: each one's mean accuracy with its interval over the draws and the held-out points
    (:func:`kr_utils.comparison.accuracy_interval`), and the generative minus the
    discriminative, paired by draw and by point (:func:`kr_utils.comparison.compare_runs`)."""
    g = torch.Generator().manual_seed(seed + 1)
    xt, yt = two_gaussians(held_out, g, means, sigma)
    out = {}
    for n in sizes:
        data = [two_gaussians(n, g, means, sigma) for _ in range(draws)]
        x, y = torch.stack([d[0] for d in data]), torch.stack([d[1] for d in data]).float()
        lr = _Logregs([seed + d for d in range(draws)])
        fit(lr, lambda idx: F.binary_cross_entropy_with_logits(lr(x[:, idx]), y[:, idx], reduction="none").mean(1).sum(),
            Batcher(2 * n, 2 * n), torch.optim.Adam(lr.parameters(), lr=0.05), FitOptions(steps=300, progress=False))
        with torch.no_grad():
            disc = ((lr(xt.expand(draws, -1, -1)) > 0).long() == yt).numpy()
        gen = np.stack([_right(_fit_gaussians(xd, yd), None, xt, yt)[0] for xd, yd in data])
        held = f"over paired training draws and the {len(yt):,d} held-out points"
        out[n] = {"generative": accuracy_interval(gen), "discriminative": accuracy_interval(disc),
                  "difference": dataclasses.replace(compare_runs(gen, disc), covers=held, test="t over draws and points")}
    return out


def curve_texts(curve: dict, draws: int) -> dict:
    """Theory chapter 1's sentences on :func:`gen_disc_curve`: the sizes at which the generative
    classifier is measurably ahead, behind or neither, each from its interval."""
    by = {"higher": [], "lower": [], "no measurable difference": []}
    for n, r in curve.items():
        by.setdefault(r["difference"].verdict, []).append(f"{n:,d}")
    parts = []
    for verdict, words in (("higher", "measurably ahead at"), ("lower", "measurably behind at"),
                           ("no measurable difference", "not measurably different at")):
        if by[verdict]:
            parts.append(f"{words} {', '.join(by[verdict])} points a class")
    small = min(curve)
    d = curve[small]["difference"]
    return {"t1_curve_draws": counted(draws, "training draw"), "t1_curve_sizes": ", ".join(f"{n:,d}" for n in curve),
            "t1_curve_reading": "the generative classifier is " + "; ".join(parts),
            "t1_curve_small": f"at {small:,d} points a class, {d.sentence('the generative classifier', 'logistic regression', digits=1)}"}


def gen_disc_texts(r: GenDisc) -> dict:
    """Theory chapter 1's sentences on :func:`generative_vs_discriminative`: each classifier's
    accuracy, the Bayes rate, the held-out points' normal half-width, the points only one gets
    right and McNemar's paired comparison (:func:`kr_utils.comparison.mcnemar`), worded from it."""
    gen, disc = r.generative_right, r.discriminative_right
    paired = dataclasses.replace(mcnemar(gen, disc), covers="over the shared held-out points")
    a = float(gen.mean())
    return {"t1_sigma": f"{r.sigma:g}", "t1_bayes": f"{100 * bayes_accuracy_two_gaussians(r.means, r.sigma, 1.0):.1f}%",
            "t1_acc_gen": f"{100 * a:.1f}%", "t1_acc_disc": f"{100 * float(disc.mean()):.1f}%",
            "t1_halfwidth": f"{100 * 1.96 * (a * (1 - a) / len(gen)) ** 0.5:.1f}",
            "t1_disagree": f"{counted(int((gen & ~disc).sum()), 'point')} only the generative classifier gets right and "
                           f"{int((~gen & disc).sum())} only logistic regression",
            "t1_mcnemar": paired.sentence("the generative classifier", "logistic regression", digits=1),
            "t1_reading": "On this training set, with the right family of class densities, the generative route loses "
                          "nothing measurable" if paired.verdict != "lower" else "On this training set the generative "
                          "route does worse, even with the right family of class densities"}


def swiss_roll(n: int, generator: torch.Generator, max_angle: float = 2 * math.pi, noise: float = 0.05):
    """A 2D spiral (theta cos theta, theta sin theta) with theta up to ``max_angle`` (`001`
    uses 2 pi and 3 pi), scaled so its points lie within about [-2, 2]."""
    u = torch.rand(n, generator=generator)
    theta = max_angle * torch.sqrt(0.04 + 0.96 * u)  # sqrt: even density along the arm
    x = torch.stack([theta * torch.cos(theta), theta * torch.sin(theta)], 1) * (2 / max_angle)
    return x + noise * torch.randn((n, 2), generator=generator)


def toy_schedule(T: int) -> NoiseSchedule:
    """The linear schedule of eq. (1) with the pipeline's end points, over ``T`` steps."""
    return NoiseSchedule.linear(T)

# ------------------------------------------------------------------------------- models


class ToyEpsMLP(nn.Module):
    """epsilon_theta(x_t, t, c) for 2D points: an MLP on [x_t, embedding(t) + embedding(c)].

    ``num_classes`` real classes plus a null token (index ``num_classes``) for
    classifier-free guidance, exactly as :class:`kr_utils.models.ConditionalUNet`.
    """

    sample_shape = (2,)

    def __init__(self, num_classes: int = 1, hidden: int = 128, depth: int = 3, emb: int = 32):
        super().__init__()
        self.null_class, self.emb = num_classes, emb
        self.config = dict(num_classes=num_classes, hidden=hidden, depth=depth, emb=emb)
        self.class_emb = nn.Embedding(num_classes + 1, emb)
        layers, d = [], 2 + emb
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.SiLU()]
            d = hidden
        self.net = nn.Sequential(*layers, nn.Linear(d, 2))

    def forward(self, x, t, y):
        e = timestep_embedding(t, self.emb) + self.class_emb(y)
        return self.net(torch.cat([x, e], 1))


class NoisyClassifier(nn.Module):
    """p_phi(c | x_t, t): classifies *noisy* points, as classifier guidance needs (`002` §6)."""

    def __init__(self, num_classes: int = 2, hidden: int = 64, emb: int = 32):
        super().__init__()
        self.emb = emb
        self.net = nn.Sequential(nn.Linear(2 + emb, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU(),
                                 nn.Linear(hidden // 2, num_classes))

    def forward(self, x, t):
        return self.net(torch.cat([x, timestep_embedding(t, self.emb)], 1))

# ------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class ToyRun:
    """How a toy model of this module trains: ``steps`` Adam updates of ``batch_size`` points
    at learning rate ``lr``, on a chain of ``T`` steps, data order and noise drawn from ``seed``;
    ``progress``: show a progress bar."""

    steps: int
    T: int
    seed: int = 0
    batch_size: int = 256
    lr: float = 2e-3
    progress: bool = True


def train_toy_eps(model: ToyEpsMLP, x: torch.Tensor, y: torch.Tensor | None, run: ToyRun, *, p_uncond: float = 0.0,
                  weights: torch.Tensor | None = None) -> list[float]:
    """Train on eq. (4) (or on the ELBO's weighted terms when ``weights`` is given) as ``run``
    says (:class:`ToyRun`) with Adam and cosine learning-rate decay (:func:`kr_utils.fit.fit`),
    on the device of ``model`` (the random draws come from a CPU generator, so a seed gives the
    same batches on every device). Returns the per-step losses."""
    steps, T, batch_size, lr, seed = run.steps, run.T, run.batch_size, run.lr, run.seed
    if steps <= 0 or batch_size <= 0:
        raise ValueError(f"steps and batch_size must be positive, got {steps}, {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dev = next(model.parameters()).device
    y = torch.zeros(len(x), dtype=torch.long) if y is None else y
    x, y = x.to(dev), y.to(dev)
    schedule = toy_schedule(T)
    if weights is not None:
        weights = (weights / weights.mean()).float().to(dev)  # same average step size as L_simple
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def loss_fn(idx):
        idx = idx.to(dev)
        return diffusion_loss(model, x[idx], y[idx], schedule, p_uncond, generator=gen, weights=weights)

    return fit(model, loss_fn, Batcher(len(x), batch_size, gen, replace=True), opt,
               FitOptions(steps=steps, desc="toy eps-model", progress=run.progress),
               scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)).losses


def train_noisy_classifier(clf: NoisyClassifier, x: torch.Tensor, y: torch.Tensor, run: ToyRun):
    """Cross-entropy on x_t = q_sample(x_0, t) with t uniform in [0, T), trained as ``run`` says
    (:class:`ToyRun`), on the device of ``clf`` (:func:`kr_utils.fit.fit`). Returns the
    per-step losses."""
    steps, T, batch_size, lr, seed = run.steps, run.T, run.batch_size, run.lr, run.seed
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dev = next(clf.parameters()).device
    x, y = x.to(dev), y.to(dev)
    schedule = toy_schedule(T)

    def loss_fn(idx):
        t = torch.randint(0, T, (len(idx),), generator=gen).to(dev)
        idx = idx.to(dev)
        xt = schedule.q_sample(x[idx], t, torch.randn((len(idx), 2), generator=gen).to(dev))
        return F.cross_entropy(clf(xt, t), y[idx])

    return fit(clf, loss_fn, Batcher(len(x), batch_size, gen, replace=True),
               torch.optim.Adam(clf.parameters(), lr=lr),
               FitOptions(steps=steps, desc="noisy classifier", progress=run.progress)).losses


@torch.no_grad()
def noisy_accuracy(clf: NoisyClassifier, x, y, t: int, T: int, generator: torch.Generator) -> float:
    """Accuracy of the noisy classifier on points diffused to step ``t``."""
    dev = next(clf.parameters()).device
    tt = torch.full((len(x),), t, device=dev)
    xt = toy_schedule(T).q_sample(x.to(dev), tt, torch.randn(x.shape, generator=generator).to(dev))
    return (clf(xt, tt).argmax(1) == y.to(dev)).float().mean().item()

# ------------------------------------------------------------------------------- guidance and sampling


def classifier_guided_eps(model, classifier, x, t, y, scale: float, schedule: NoiseSchedule):
    """Classifier guidance (Dhariwal & Nichol 2021) in epsilon form:

        eps_hat = eps_theta(x_t, t, null) - s sqrt(1 - alpha_bar_t) grad_x log p_phi(y | x_t, t),

    which shifts the ancestral mean by about s beta_t grad log p (`002`'s update).
    """
    null = torch.full_like(y, model.null_class)
    eps = model(x, t, null)
    if scale == 0:
        return eps
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logp = F.log_softmax(classifier(xg, t), 1).gather(1, y[:, None]).sum()
        grad = torch.autograd.grad(logp, xg)[0]  # samples are independent: per-sample gradients
    return eps - scale * (1 - schedule.alphas_cumprod.to(x.device)[t].float()).sqrt()[:, None] * grad


@torch.no_grad()
def sample_toy(model, sampler, labels: torch.Tensor, generator: torch.Generator, w: float = 1.0,
               classifier=None, scale: float = 0.0, keep: tuple = ()):
    """2D samples by the reverse process (:func:`kr_utils.diffusion.sample_loop`):
    classifier-free guidance with weight ``w`` (eq. 5), or classifier guidance with scale
    ``scale`` when a ``classifier`` is given. ``keep`` lists timesteps whose states to return
    as well (the first state x_T is returned under key ``sampler.T``). The chain runs on the
    device of ``model``; the samples come back on the CPU."""
    model.eval()
    dev = next(model.parameters()).device
    labels = labels.to(dev)
    x = torch.randn((len(labels), 2), generator=generator).to(dev)
    if classifier is None:
        eps_fn = lambda x, tt: guided_eps(model, x, tt, labels, w)  # noqa: E731
    else:
        eps_fn = lambda x, tt: classifier_guided_eps(model, classifier, x, tt, labels, scale,  # noqa: E731
                                                     sampler.schedule)
    if not keep:
        return sample_loop(eps_fn, sampler, x, generator).cpu()
    out, traj = sample_loop(eps_fn, sampler, x, generator, return_trajectory=keep)
    traj[sampler.T] = x.cpu()
    return out.cpu(), traj

# ------------------------------------------------------------------------------- measures


def energy_distance(x: torch.Tensor, y: torch.Tensor, unbiased: bool = False) -> float:
    """Energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (Szekely & Rizzo) between two samples,
    in any dimension: 0 iff the distributions agree, no bandwidth to tune. The plain estimate
    (a V-statistic) averages E|X-X'| over every pair, the zero distances of a point to itself
    included, so two samples of one distribution give a positive value of order 1/n;
    ``unbiased`` leaves those out (the U-statistic: mean 0 for two samples of one distribution,
    so a small value may be negative)."""
    x, y = x.flatten(1).double(), y.flatten(1).double()

    def within(z):
        d = torch.cdist(z, z)
        return d.sum() / (len(z) * (len(z) - 1)) if unbiased else d.mean()

    return (2 * torch.cdist(x, y).mean() - within(x) - within(y)).item()


def real_band(draw, held_out: torch.Tensor, draws: int = 20) -> dict:
    """What two samples of the data themselves give on chapter T3's two measures: ``draws``
    fresh samples ``draw()`` of the data, each of ``held_out``'s size, against ``held_out``: the
    unbiased :func:`energy_distance` and the median :func:`distance_to_data`. A model's value
    inside the spread of these is not told apart from the data by that measure. Returns
    ``{"energy": [...], "median": [...]}``, one value per draw."""
    out = {"energy": [], "median": []}
    for _ in range(draws):
        x = draw()
        out["energy"].append(energy_distance(x, held_out, unbiased=True))
        out["median"].append(distance_to_data(x, held_out).median().item())
    return out


def cluster_stats(samples: torch.Tensor, means, requested: torch.Tensor | None = None) -> dict:
    """For points near a set of cluster centres: the fraction assigned (nearest centre) to
    each cluster, the fraction in the ``requested`` one, and the spread (RMS distance to
    the centre, per axis) of the points in their cluster."""
    m = torch.as_tensor(means, dtype=samples.dtype)
    d = torch.cdist(samples, m)
    nearest = d.argmin(1)
    out = {f"fraction_cluster_{k}": (nearest == k).float().mean().item() for k in range(len(m))}
    out["spread"] = (d.gather(1, nearest[:, None]).pow(2).mean() / 2).sqrt().item()
    if requested is not None:
        out["fraction_requested"] = (nearest == requested).float().mean().item()
        hit = nearest == requested
        out["spread_requested"] = ((d[hit, requested[hit]].pow(2).mean() / 2).sqrt().item()
                                   if hit.any() else float("nan"))
    return out


def distance_to_data(samples: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """Distance from each sample to its nearest data point (how far off the manifold it fell)."""
    return torch.cdist(samples.double(), data.double()).min(1).values.float()


ERROR_BINS = (0, 10, 50, 200, 500, 1000)  # code-index ranges [lo, hi) (the equations' t = lo+1..hi) of T3's error curve


@torch.no_grad()
def noise_error_by_t(model: ToyEpsMLP, schedule: NoiseSchedule, points: torch.Tensor,
                     generator: torch.Generator, bins=ERROR_BINS, per_point: bool = False) -> list:
    """``model``'s held-out noise-prediction error ||eps - eps_theta(x_t, t)||^2 (class 0) on
    ``points``, averaged within each range [lo, hi) of ``bins`` (code indices: the equations'
    t = lo + 1 .. hi): per range, one t per point drawn uniformly in it and fresh noise, both
    from ``generator``. One value per range; with ``per_point``, each point's error (a tensor)."""
    dev = next(model.parameters()).device
    out = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        t = torch.randint(lo, hi, (len(points),), generator=generator)
        eps = torch.randn(points.shape, generator=generator)
        pred = model(schedule.q_sample(points, t, eps).to(dev), t.to(dev), torch.zeros_like(t, device=dev)).cpu()
        err = (pred - eps).pow(2).sum(1)
        out.append(err if per_point else err.mean().item())
    return out


@torch.no_grad()
def bayes_noise_error(schedule: NoiseSchedule, points: torch.Tensor, generator: torch.Generator, *,
                      max_angle: float, noise: float = 0.05, bins=ERROR_BINS, grid: int = 10000,
                      per_point: bool = False) -> list:
    """The Bayes floor of :func:`noise_error_by_t`: the held-out error ||eps - E[eps | x_t]||^2 of
    the best possible noise predictor for :func:`swiss_roll`'s distribution (``max_angle``,
    ``noise``), drawn as :func:`noise_error_by_t` draws (one t per point per range, fresh noise).

    The roll is x_0 = c(theta) + s n with theta of density proportional to theta on
    [0.2 A, A] (A = ``max_angle``) and n standard normal, so given theta,
    x_t = a x_0 + sigma eps (eq. 3, a^2 = alpha-bar_t, sigma^2 = 1 - a^2) is normal with mean
    a c(theta) and variance v = a^2 s^2 + sigma^2, and E[eps | x_t, theta] = (sigma / v)(x_t - a c(theta)).
    E[eps | x_t] averages that over theta's posterior, p(theta) N(x_t; a c(theta), v I), taken
    by quadrature on ``grid`` values of theta. No network can do better in expectation: the
    distance of a model's error above this floor is what its capacity still leaves. One value
    per range; with ``per_point``, each point's error (a tensor), as :func:`noise_error_by_t`."""
    A = max_angle
    theta = torch.linspace(0.2 * A, A, grid, dtype=torch.float64)
    curve = torch.stack([theta * torch.cos(theta), theta * torch.sin(theta)], 1) * (2 / A)
    log_prior = theta.log()
    x0 = points.to(torch.float64)
    out = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        t = torch.randint(lo, hi, (len(points),), generator=generator)
        eps = torch.randn(points.shape, generator=generator).to(torch.float64)
        ab = schedule.alphas_cumprod[t].to(torch.float64)[:, None]
        a, sigma = ab.sqrt(), (1 - ab).sqrt()
        x_t = a * x0 + sigma * eps
        v = a ** 2 * noise ** 2 + sigma ** 2
        errs = []
        for i in range(0, len(points), 256):
            sl = slice(i, i + 256)
            diff = x_t[sl, None, :] - a[sl, None, :] * curve[None]           # (b, grid, 2)
            logw = log_prior[None] - diff.pow(2).sum(-1) / (2 * v[sl])        # v is (b, 1)
            w = torch.softmax(logw, 1)
            eps_hat = (sigma[sl] / v[sl]) * torch.einsum("bg,bgd->bd", w, diff)
            errs.append((eps_hat - eps[sl]).pow(2).sum(1))
        errs = torch.cat(errs)
        out.append(errs.float() if per_point else errs.sum().item() / len(points))
    return out


def compare_weightings(theory, data: torch.Tensor, held_out: torch.Tensor, sampler, weightings: dict, seeds, *,
                       noise_seed: int, device) -> tuple[list[dict], dict, dict, dict]:
    """Chapter T3's experiment: for each seed and each ``{name: step weights or None}`` of
    ``weightings``, a :class:`ToyEpsMLP` of ``theory.toy_hidden`` units trained on ``data`` for
    ``theory.toy_steps`` updates (:func:`train_toy_eps`; a seed gives every weighting the same
    initial weights, :func:`kr_utils.fit.built_from_seed`, and the same data order and noise),
    as many samples as ``held_out`` drawn by ``sampler`` (seeded by the seed),
    and measured on ``held_out``: energy distance (:func:`energy_distance`, unbiased), the median distance
    of a sample to the data (:func:`distance_to_data`) and the noise error per range of t
    (:func:`noise_error_by_t`), every model on the same draws of t and noise (``noise_seed``;
    :func:`bayes_noise_error` from a generator of that seed draws them too), so that the errors
    of two models, and of the Bayes floor, are paired point by point. Returns ``(rows, samples,
    per_t, per_point)``: one row per run, the last seed's samples per weighting, and per
    weighting each seed's errors per range (means, and each point's)."""
    rows, samples, per_t, per_point = [], {}, {}, {}
    n = len(held_out)
    for s in seeds:
        for name, weights in weightings.items():
            model = built_from_seed(lambda: ToyEpsMLP(num_classes=1, hidden=theory.toy_hidden), s).to(device)
            train_toy_eps(model, data, None, ToyRun(theory.toy_steps, sampler.schedule.T, seed=s), weights=weights)
            x = sample_toy(model, sampler, torch.zeros(n, dtype=torch.long), torch.Generator().manual_seed(s))
            samples[name] = x
            errs = noise_error_by_t(model, sampler.schedule, held_out, torch.Generator().manual_seed(noise_seed),
                                    per_point=True)
            per_point.setdefault(name, []).append(errs)
            per_t.setdefault(name, []).append([e.mean().item() for e in errs])
            rows.append({"loss": name, "seed": s, "energy distance": energy_distance(x, held_out, unbiased=True),
                         "median distance to roll": distance_to_data(x, held_out).median().item()})
    return rows, samples, per_t, per_point


def paired_difference(a: list, b: list, k: int) -> tuple[float, float, float]:
    """The point-by-point difference a - b of two models' held-out errors in range ``k`` (each a
    list over seeds of :func:`compare_weightings`' ``per_point`` errors, drawn on the same t and
    noise; the Bayes floor, the same for both on the same draws, cancels): its mean and 95%
    interval over the seeds and the points (:func:`kr_utils.comparison.mean_interval`, one row
    per seed: the seeds' spread is in it), ``(mean, low, high)``."""
    return mean_interval(torch.stack([x[k] - y[k] for x, y in zip(a, b)]).numpy())


def excess(errors: list, floor: torch.Tensor, k: int) -> tuple[float, float, float]:
    """A model's held-out error above the Bayes floor in range ``k``, point by point
    (``errors``: a list over seeds of :func:`compare_weightings`' ``per_point`` errors;
    ``floor``: :func:`bayes_noise_error`'s ``per_point`` floor of that range, on the same draws):
    its mean and 95% interval over the seeds and the points, ``(mean, low, high)``. What the
    model's capacity still leaves; an interval that holds 0 is not told apart from the floor."""
    return mean_interval(torch.stack([e[k] - floor for e in errors]).numpy())


CLASSIFIER_SCALES = (0.0, 0.25, 0.5, 1.0, 3.0, 10.0, 30.0)  # chapter T5's classifier-guidance scales s
GUIDANCE_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)  # and its classifier-free weights w


def guidance_sweep(model: ToyEpsMLP, classifier: NoisyClassifier, sampler, means, n: int, seed: int,
                   scales=CLASSIFIER_SCALES, weights=GUIDANCE_WEIGHTS) -> tuple[list[dict], dict]:
    """Chapter T5's sweep: ``n`` samples that all ask for class 0, by classifier guidance at each
    of ``scales`` (:func:`classifier_guided_eps` with ``classifier``) and by classifier-free
    guidance at each of ``weights`` (eq. 5), every setting from the same noise (``seed``), each
    measured by :func:`cluster_stats` against the cluster centres ``means``. Returns one row per
    setting (``method``, ``strength`` and the statistics) and ``{label: samples}``."""
    want = torch.zeros(n, dtype=torch.long)
    rows, shown = [], {}
    settings = [("classifier guidance", "classifier, s", s, {"classifier": classifier, "scale": s}) for s in scales]
    settings += [("classifier-free", "classifier-free, w", w, {"w": w}) for w in weights]
    for method, label, strength, kwargs in settings:
        out = sample_toy(model, sampler, want, torch.Generator().manual_seed(seed), **kwargs)
        rows.append({"method": method, "strength": strength, **cluster_stats(out, means, want)})
        shown[f"{label} = {strength:g}"] = out
    return rows, shown


def steered_by(trajectory: dict, means, requested: int, level: float = 0.9) -> int | None:
    """How early a guided chain commits: the largest kept step t of ``trajectory`` (``{t: x_t}``
    from :func:`sample_toy`'s ``keep``) from which on, at it and at every later (smaller) kept
    step, at least ``level`` of the points lie nearest the ``requested`` centre of ``means``
    (the side of the line between the centres does not change as x_t shrinks towards 0); None
    if even the last state falls short."""
    first = None
    for t in sorted(trajectory):  # from the end of the chain (t small) back towards x_T
        if cluster_stats(trajectory[t], means)[f"fraction_cluster_{requested}"] < level:
            break
        first = t
    return first


def first_strength(rows, method: str, level: float = 0.99) -> float | None:
    """The smallest strength of ``method`` in :func:`guidance_sweep`'s ``rows`` from which on at
    least ``level`` of the samples land in the requested cluster, at it and at every larger
    strength tried; None if there is none."""
    mine = sorted((r["strength"], r["fraction_requested"]) for r in rows if r["method"] == method)
    first = None
    for strength, frac in reversed(mine):
        if frac < level:
            break
        first = strength
    return first


def weighting_readings(rows: list, band: dict, per_point: dict, bayes: list, names: dict) -> tuple[dict, dict]:
    """Chapter T3's comparison of its two losses in words, from :func:`compare_weightings`'
    ``rows`` and ``per_point`` errors, the data's own :func:`real_band` and the Bayes floor
    per point (:func:`bayes_noise_error` with ``per_point``); ``names``: ``{"simple": ..., "elbo": ...}``,
    the weightings' names. Energy distances are the unbiased ones, set against the band of
    data-against-data draws (its 2.5% and 97.5% quantiles); the noise errors are read in
    :data:`ERROR_BINS`' first range (t <= 10, "small") and fourth (201 <= t <= 500, "noisy") as
    each model's excess above the floor (:func:`excess`) and the weighted-minus-simple difference
    (:func:`paired_difference`), each with its interval over the seeds and the points. Returns
    ``(glues, metrics)``: ``{glue name: text}`` and what the chapter records."""

    glues, metrics = {}, {"band": band}
    q = {k: (float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))) for k, v in band.items()}
    glues["t3_band_ed"] = f"between {q['energy'][0]:.4f} and {q['energy'][1]:.4f}"
    glues["t3_band_dist"] = f"between {q['median'][0]:.4f} and {q['median'][1]:.4f}"
    glues["t3_band_n"] = f"{len(band['energy'])}"
    readings = []
    for key, name in names.items():
        mine = [r for r in rows if r["loss"] == name]
        ed = [r["energy distance"] for r in mine]
        dist = [r["median distance to roll"] for r in mine]
        glues[f"t3_ed_{key}"] = f"{np.mean(ed):.4f} (seeds: {', '.join(f'{v:.4f}' for v in ed)})"
        glues[f"t3_dist_{key}"] = f"{np.mean(dist):.4f} (seeds: {', '.join(f'{v:.4f}' for v in dist)})"
        above = sum(v > q["energy"][1] for v in ed)
        readings.append(f"{name}: {above} of {len(ed)} seeds above the band" if above else
                        f"{name}: no seed above the band")
        metrics[key] = {"energy_distance": ed, "median_distance": dist}
    glues["t3_ed_reading"] = "; ".join(readings)
    for key, k in (("small", 0), ("noisy", 3)):
        glues[f"t3_bayes_{key}"] = f"{bayes[k].mean().item():.3f}"
        glues[f"t3_total_{key}"] = " and ".join(f"{torch.stack([e[k] for e in per_point[n]]).mean().item():.3f}"
                                                 for n in names.values())
        parts = {}
        for m, name in names.items():
            parts[m] = excess(per_point[name], bayes[k], k)
            metrics[m][f"excess_{key}"] = list(parts[m])
        glues[f"t3_excess_{key}"] = " against ".join(f"{v[0]:.4f} [{v[1]:.4f}, {v[2]:.4f}]"
                                                     for v in (parts["simple"], parts["elbo"]))
        d, lo, hi = paired_difference(per_point[names["elbo"]], per_point[names["simple"]], k)
        glues[f"t3_pair_{key}"] = f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        metrics[f"paired_{key}"] = [d, lo, hi]
        if key == "small":
            glues["t3_err_reading"] = ("lower than the L_simple model's at these two seeds" if hi < 0 else
                                       "higher than the L_simple model's at these two seeds" if lo > 0 else
                                       "not measurably different from the L_simple model's at these two seeds")
    return glues, metrics
