"""The attack registry: one file per attack, registered here by explicit import.

``ATTACKS.get("linear")`` gives the attack class; an unknown name raises
``Unknown attack 'foo'. Available: linear, ...``. See ``base.py`` for the contract.
"""

from __future__ import annotations

from audit.registry import Registry
from redteam.attacks.base import Attack, AttackContext, PoisonBatch, PoisonPoint
from redteam.attacks.curved import Curved
from redteam.attacks.duplicate import Duplicate
from redteam.attacks.gan import Gan
from redteam.attacks.jitter import Jitter
from redteam.attacks.jitter_translate import JitterTranslate
from redteam.attacks.jpeg import Jpeg
from redteam.attacks.linear import Linear
from redteam.attacks.multi_path import MultiPath
from redteam.attacks.noise import Noise
from redteam.attacks.slerp import Slerp
from redteam.attacks.transfer import Transfer
from redteam.attacks.translate import Translate
from redteam.attacks.zero_knowledge import ZeroKnowledge

ATTACKS: Registry[type[Attack]] = Registry("attack")
ATTACKS.register(Linear.name, Linear)  # 3.1
ATTACKS.register(ZeroKnowledge.name, ZeroKnowledge)  # 4.1
ATTACKS.register(Gan.name, Gan)  # 4.2
ATTACKS.register(Transfer.name, Transfer)  # 4.3
ATTACKS.register(MultiPath.name, MultiPath)  # 4.4
ATTACKS.register(Noise.name, Noise)  # 4.4
ATTACKS.register(Duplicate.name, Duplicate)  # 4.4
ATTACKS.register(Jitter.name, Jitter)  # adaptive, 5.2
ATTACKS.register(Translate.name, Translate)  # adaptive, 5.2
ATTACKS.register(JitterTranslate.name, JitterTranslate)  # adaptive, 5.2
ATTACKS.register(Jpeg.name, Jpeg)  # adaptive, 5.2
ATTACKS.register(Curved.name, Curved)  # adaptive: Bézier / two-segment hop through a natural image
ATTACKS.register(Slerp.name, Slerp)  # adaptive: great circle in a PCA latent space

__all__ = ["ATTACKS", "Attack", "AttackContext", "PoisonBatch", "PoisonPoint"]
