"""Generative interpolation for the paper's section 4.2: a small DC-GAN (``model``), its training
and checkpoint (``train``), and latent inversion G(z) ≈ x (``invert``)."""

from redteam.generative.invert import Inversion, generate, invert
from redteam.generative.model import Discriminator, GanShape, Generator
from redteam.generative.train import GanProgress, GanTrainConfig, load_generator, save_generator, train_gan

__all__ = ["Discriminator", "GanProgress", "GanShape", "GanTrainConfig", "Generator", "Inversion", "generate",
           "invert", "load_generator", "save_generator", "train_gan"]
