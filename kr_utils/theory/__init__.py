"""The theory chapters' code (book/theory), kept apart from the pipeline's stages, on which it
builds: ``analytic`` (latent-variable models in 1D, the forward chain step by step, the
posterior by Monte Carlo, the ELBO's weights, the Curie-Weiss potential), ``toy`` (2-D data,
the toy eps-model, classifier guidance) and ``autoencoders`` (per-step and shared denoising
autoencoders of theory chapter 6) and ``restoration`` (theory chapter 7's inpainting study).
"""
from . import analytic, autoencoders, restoration, toy  # noqa: F401
