"""Old home of the GNN features extractor, now :mod:`mcm_gym.learn.extractor`.

Kept because checkpoints saved before the move (the shipped ``pretrained-v2`` among them) name
``mcm_gym.policy.GNNExtractor`` in their pickled ``policy_kwargs``. New code imports from
:mod:`mcm_gym.learn.extractor`.
"""

from __future__ import annotations

from mcm_gym.learn.extractor import GNNExtractor, policy_kwargs

__all__ = ["GNNExtractor", "policy_kwargs"]
