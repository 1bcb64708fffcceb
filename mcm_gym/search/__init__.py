"""Non-learned search methods behind one interface (:class:`Searcher`), and the method registry.

Built in: ``balanced``, ``random``, ``sa``, ``greedy`` (:mod:`mcm_gym.search.heuristics`), ``dp``
(:mod:`mcm_gym.search.dp`), ``exact`` (:mod:`mcm_gym.search.exact`); ``rl`` comes from
:mod:`mcm_gym.learn` through the ``mcm_gym.searchers`` entry point. Add your own with
:func:`register_searcher`.
"""

from __future__ import annotations

from mcm_gym.search.base import (
    SEARCHERS,
    Progress,
    Searcher,
    SearchResult,
    Tracker,
    check_method,
    format_result,
    get_searcher,
    known_searchers,
    parse_method,
    register_searcher,
)
from mcm_gym.search.heuristics import (
    BalancedSplit,
    GreedyBalancer,
    RandomSearch,
    SimulatedAnnealing,
    fits,
    split_by_work,
)
from mcm_gym.search.polish import PolishResult, one_node_moves, polish_result

for _cls in (BalancedSplit, RandomSearch, SimulatedAnnealing, GreedyBalancer):
    register_searcher(_cls.name, _cls)
register_searcher("dp", "mcm_gym.search.dp:DPSearch")
register_searcher("exact", "mcm_gym.search.exact:ExactSearch")

__all__ = ["SEARCHERS", "BalancedSplit", "GreedyBalancer", "Progress", "RandomSearch", "SearchResult",
           "Searcher", "SimulatedAnnealing", "Tracker", "check_method", "fits", "format_result", "get_searcher",
           "known_searchers", "one_node_moves", "parse_method", "polish_result", "PolishResult",
           "register_searcher", "split_by_work"]
