"""Batched FixMatch augmentation on tensors (CPU or GPU), per-sample random choices.

Convention: augmenters take and return float32 ``B×C×H×W`` in [0, 1] on any device;
:func:`to_float` turns ``ImageSet.images`` (uint8 ``N×H×W×C``) into that form. The models
standardise internally (``audit.ssl.models.Standardize``), so nothing else is needed between
an augmenter and a model. :func:`channel_stats` gives the statistics a model may be built with.

    weak = Weak(flip=True)              # flip + translate, FixMatch's weak augmentation
    strong = Strong()                   # weak + RandAugment(2 ops per image) + Cutout
    x = to_float(imageset.images[idx], device)
    xs = strong(x, generator)
"""

from audit.ssl.augment.ops import GEOMETRIC, OPS
from audit.ssl.augment.policies import Strong, StrongParams, Weak
from audit.ssl.augment.tensor import channel_stats, to_float

__all__ = ["OPS", "GEOMETRIC", "Weak", "Strong", "StrongParams", "to_float", "channel_stats"]
