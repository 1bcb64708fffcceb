"""Learned partitioners: the GNN features extractor, training configs and env factories, checkpoints,
training / fine-tuning / imitation, the ``rl`` searcher and RLlib support.

Layer: imports core, instances, env and search; torch, stable-baselines3 and sb3-contrib are imported
only where used (``pip install 'mcm-gym[rl]'``).
"""
