"""Shared builders for the attack tests (importable by name: tests/redteam is on sys.path)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from audit.ssl.augment import to_float
from audit.ssl.models import build_model
from redteam.attacks import AttackContext

TINY_WIDTHS = (8, 16)


def trained_tiny_cnn(train, steps=40):
    """A small `cnn` fitted for a few Adam steps on ``train`` (deterministic), in eval mode."""
    torch.manual_seed(0)
    h, w, c = train.shape
    net = build_model("cnn", 10, c, (h, w), widths=TINY_WIDTHS)
    x, y = to_float(train.images), torch.from_numpy(train.labels)
    opt = torch.optim.Adam(net.parameters(), 0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(len(x), (128,), generator=g)
        loss = F.cross_entropy(net(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def trainer_model_file(net, shape):
    """What the trainer writes as model.pt, for a `trained_tiny_cnn`."""
    h, w, c = shape
    return {"model": "cnn", "num_classes": 10, "in_channels": c, "image_size": [h, w], "class_names": [],
            "model_options": {"widths": list(TINY_WIDTHS)}, "state_dict": net.state_dict()}


def digits_context(train, n):
    """4 labels per class, the rest as the pool; x* the last 8, y* = 3, x' the first labeled 3."""
    labels = train.labels
    labeled = np.concatenate([np.flatnonzero(labels == c)[:4] for c in range(10)])
    pool = np.setdiff1d(np.arange(len(labels)), labeled)
    return AttackContext(train=train, labeled=labeled, unlabeled=pool,
                         target=train.images[int(np.flatnonzero(labels == 8)[-1])], target_label=3,
                         source=int(labeled[labels[labeled] == 3][0]), n=n, density="1.5-x")
