"""Learners: strategies (how one task is learned) and methods (how tasks chain)."""
from par.learners.methods import METHODS, Method, get_method, register_method
from par.learners.strategies import STRATEGIES, Strategy, get_strategy, register_strategy
from par.learners.task import learn_task

__all__ = ["METHODS", "Method", "get_method", "register_method", "STRATEGIES", "Strategy", "get_strategy",
           "register_strategy", "learn_task"]
