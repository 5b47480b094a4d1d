"""A method in one file, outside the project: finetune plus an L2 pull towards the
previous task's weights ("L2" of the continual-learning literature, e.g. the
L2 baseline of Kirkpatrick et al. 2017, Fig. 2: EWC with every importance 1).

Registered through the config key ``method_modules: [path/to/l2_anchor.py]``;
the tests copy it outside the repository and run it through the workflow.
"""
from __future__ import annotations

from par.learners.methods import Finetune, register_method
from par.learners.options import ConfigSection, Option
from par.learners.strategies import Finetune as FinetuneStrategy, register_strategy

L2_ANCHOR = ConfigSection("l2_anchor", "L2 anchor, method l2-anchor: finetune + lambda/2 * ||theta - theta*||^2", {
    "lambda": Option(0.01, "number", "weight of the pull towards the previous task's weights theta*", minimum=0),
})


@register_method("l2-anchor")
class L2Anchor(Finetune):
    """One model, finetune plus an L2 pull towards the previous task's weights."""


@register_strategy("l2-anchor")
class L2AnchorStrategy(FinetuneStrategy):
    """loss = CE(new head) + lambda/2 * sum_i (theta_i - theta*_i)^2 over the parameters the
    predecessor had (theta*: their values at the start of the task)."""

    config = L2_ANCHOR
    config_keys = {"lambda": "penalty_lambda"}

    def __init__(self, penalty_lambda: float = L2_ANCHOR.default("lambda")):
        self.penalty_lambda = penalty_lambda
        self.anchor = {}

    def start(self, model, task):
        new = {id(p) for p in model.head(task).parameters()}
        self.anchor = {n: p.detach().clone() for n, p in model.named_parameters() if id(p) not in new}

    def loss(self, model, task, x, y):
        loss, logits = super().loss(model, task, x, y)
        if self.anchor:
            params = dict(model.named_parameters())
            loss = loss + self.penalty_lambda / 2 * sum(((params[n] - a) ** 2).sum() for n, a in self.anchor.items())
        return loss, logits
