"""The problem itself: instance ids, graphs, hardware, the cost model, constraints, the solver
encoding, repair and :class:`~mcm_gym.core.problem.Problem`, which ties them together.

Layer: imports only :mod:`mcm_gym._io`. Inside, each module imports only those before it in
``ids, graph, hardware, cost, constraints, encoding, repair, problem``.
"""
