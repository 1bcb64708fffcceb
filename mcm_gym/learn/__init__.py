"""Learned partitioners: the GNN policy, its training, checkpoints, evaluation, the ``rl`` searcher
and RLlib support.

Modules, one job each:

* :mod:`~mcm_gym.learn.extractor`: the GNN features extractor (:class:`GNNExtractor`);
* :mod:`~mcm_gym.learn.model`: the one ``MaskablePPO`` builder (``build_model``; PPO settings under
  SB3's names);
* :mod:`~mcm_gym.learn.config`: the sectioned training config (``TrainConfig``, YAML);
* :mod:`~mcm_gym.learn.resolution`: a config's instances (splits, ranges) to graphs, hardware, padding;
* :mod:`~mcm_gym.learn.factories`: training and validation envs (``make_env``, ``make_train_env``);
* :mod:`~mcm_gym.learn.checkpoints`: checkpoint I/O, sidecars, moving weights between paddings;
* :mod:`~mcm_gym.learn.callbacks`: curve, validation and checkpoint callbacks (on SB3's classes);
* :mod:`~mcm_gym.learn.evaluation`: running a trained policy (zero-shot, or as a searcher);
* :mod:`~mcm_gym.learn.imitation`: behaviour cloning of a search;
* :mod:`~mcm_gym.learn.train`: training runs (``train``, ``finetune``, the warm start);
* :mod:`~mcm_gym.learn.oneshot`: the one-shot policy for ``mode="oneshot"`` (``OneShotPolicy``, a
  ``MaskablePPO`` policy: per-node chip logits from one GNN pass);
* :mod:`~mcm_gym.learn.oneshot_train`: policy-gradient training of it on many repaired samples;
* :mod:`~mcm_gym.learn.rl_search`: ``RLSearch``, the ``rl`` method of the search registry;
* :mod:`~mcm_gym.learn.rllib`: RLlib PPO (experimental).

Layer: imports core, instances, env and search; torch, stable-baselines3 and sb3-contrib are imported
only by the modules that use them (``pip install 'mcm-gym[rl]'``; ``checkpoints`` imports them
only inside its functions).
"""
