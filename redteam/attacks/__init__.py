"""The attack registry: one file per attack, registered here by explicit import.

``ATTACKS.get("linear")`` gives the attack class; an unknown name raises
``Unknown attack 'foo'. Available: linear, ...``. See ``base.py`` for the contract.
"""

from __future__ import annotations

from audit.registry import Registry
from redteam.attacks.base import Attack, AttackContext, PoisonBatch, PoisonPoint
from redteam.attacks.linear import Linear

ATTACKS: Registry[type[Attack]] = Registry("attack")
ATTACKS.register(Linear.name, Linear)

__all__ = ["ATTACKS", "Attack", "AttackContext", "PoisonBatch", "PoisonPoint"]
