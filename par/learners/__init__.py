"""Learners: strategies (how one task is learned) and methods (how tasks chain).

The workflow reads methods and strategies' traits while it is parsed, which
must not import torch (the workflow must start fast): :func:`learn_task` (torch) is imported on
first access (PEP 562).
"""
from par.learners.methods import METHODS, Method, get_method, register_method
from par.learners.strategies import STRATEGIES, Strategy, get_strategy, register_strategy
# Strategies and methods in their own modules register on import (docs/spec.md §9).
from par.learners import distillation, growing, hat, ltg, memory, mntdp, penalties  # noqa: F401,E402

__all__ = ["METHODS", "Method", "get_method", "register_method", "STRATEGIES", "Strategy", "get_strategy",
           "register_strategy", "learn_task"]


def __getattr__(name: str):
    if name == "learn_task":
        from par.learners.job import learn_task

        return learn_task
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
