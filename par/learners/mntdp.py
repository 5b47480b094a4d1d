"""MNTDP-S and MNTDP-D (Veniat et al. 2021; docs/spec.md §9): a library of modules,
each task's path reusing a prefix of an earlier task's path chosen by a
task-driven prior, the rest new.  One search template (:meth:`MNTDP.search`);
the two differ only in how the candidate paths are trained
(:meth:`MNTDP.train_candidates`).

Torch is imported inside the hooks: the workflow imports this module while it
is parsed (tests/test_startup.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from par.learners.context import SearchResult
from par.learners.growing import Growing
from par.learners.methods import Finetune, register_method
from par.learners.options import ConfigSection, Option
from par.learners.strategies import register_strategy

if TYPE_CHECKING:
    import torch

    from par.training import FitResult


MNTDP_SECTION = ConfigSection("mntdp", (
    "MNTDP's task-driven prior, methods mntdp-s and mntdp-d (docs/spec.md §9; Veniat et al. ICLR 2021; "
    "facebookresearch/MNTDP src/modules/PSSN_llmodel.py get_candidate_models): the earlier "
    "task whose path's features give the best k-NN accuracy on the new task's validation set."), {
    "knn_neighbors": Option(15, "integer", "k of the k-NN vote (MNTDP: n_neighbors 15)", minimum=1),
    "knn_max_samples": Option(1000, "integer", "training images the k-NN is fitted on, and validation images "
                              "it is scored on, at most (MNTDP: max_samples 1000)", minimum=1),
})


@register_method("mntdp-s")
class MNTDPStochastic(Finetune):
    """MNTDP-S (Veniat et al. 2021): candidate paths trained jointly by sampling (strategy ``mntdp-s``)."""

    body_kind = "mntdp"


@register_method("mntdp-d")
class MNTDPDeterministic(Finetune):
    """MNTDP-D (Veniat et al. 2021): every candidate path trained, best on validation kept."""

    body_kind = "mntdp"


def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, val_features: torch.Tensor,
                 val_labels: torch.Tensor, k: int) -> float:
    """Accuracy (fraction) of a k-nearest-neighbour vote (Euclidean; ties of the
    vote go to the smallest label, as scikit-learn's mode) fitted on
    (n, d) ``train_features`` and scored on (m, d) ``val_features``."""
    import torch

    k = min(k, len(train_labels))
    nearest = torch.cdist(val_features, train_features).topk(k, largest=False).indices  # (m, k)
    n_classes = int(max(train_labels.max(), val_labels.max())) + 1
    votes = torch.zeros(len(val_labels), n_classes).scatter_add_(
        1, train_labels[nearest], torch.ones(nearest.shape))
    return float((votes.argmax(1) == val_labels).float().mean())


class MNTDP(Growing):
    """Shared by MNTDP-S and -D: modules = stem and the four stages
    (:class:`par.nets.growing_bodies.ModularBody`).  Task 1 trains a new path.  Task t ≥ 2:
    the task-driven prior picks the earlier task u whose path's features give
    the best k-NN accuracy on t's validation images (k = ``knn_neighbors``,
    fitted on t's first ``knn_max_samples`` training images, both without
    augmentation; MNTDP ``PSSN_llmodel.get_candidate_models``; ties: the later
    task); candidate k = 0…5 reuses u's first k modules (frozen) and trains new
    ones for depths k…4 (k = 5: only the head is new)."""

    config = MNTDP_SECTION
    config_keys = {"knn_neighbors": "knn_neighbors", "knn_max_samples": "knn_max_samples"}

    def __init__(self, knn_neighbors: int = MNTDP_SECTION.default("knn_neighbors"),
                 knn_max_samples: int = MNTDP_SECTION.default("knn_max_samples")):
        super().__init__()
        self.knn_neighbors = knn_neighbors
        self.knn_max_samples = knn_max_samples
        self.arch: dict = {"path": None}  # the task's path record, set by the search step

    def grow(self, model, task, n_classes, device):
        from par.nets.growing_bodies import N_DEPTHS

        body = model.body
        if not body.paths:  # the first task: a new path
            body.paths[task] = [body.add_module_at(d) for d in range(N_DEPTHS)]
            self.trainable = [body.module(m) for m in body.paths[task]]
        else:
            self.trainable = []
        self.add_head(model, task, n_classes, device)

    def _features(self, model, path, batches):
        import torch

        out, labels, n = [], [], 0
        model.eval()
        with torch.no_grad():
            for x, y in batches:
                out.append(model.body.path_forward(x, path))
                labels.append(y)
                n += len(y)
                if n >= self.knn_max_samples:
                    break
        return torch.cat(out)[: self.knn_max_samples].cpu(), torch.cat(labels)[: self.knn_max_samples].cpu()

    def prior(self, model, task, train, val) -> tuple[int, dict[int, float]]:
        """(chosen earlier task, k-NN validation accuracy per earlier task)."""
        from par.training import Batches

        plain = Batches(train.images, train.labels, train.mean, train.std, val.batch_size, train.images.device)
        scores = {}
        for u, path in sorted(model.body.paths.items()):
            if u == task:
                continue
            xf, yf = self._features(model, path, plain)
            vf, vy = self._features(model, path, val)
            scores[u] = knn_accuracy(xf, yf, vf, vy, self.knn_neighbors)
        best = max(scores, key=lambda u: (scores[u], u))
        return best, scores

    def path_record(self, model, task, prior, k) -> dict:
        body = model.body
        path = body.paths[task]
        return {"prior_task": prior, "reused_modules": k, "path": path,
                "reused": [f"depth {d}: module {m} (task {prior})" for d, m in enumerate(path[:k])],
                "new": [f"depth {d}: module {m}" for d, m in enumerate(path) if d >= k] + ["head"]}

    def search(self, model, task, train, val, config) -> SearchResult | None:
        """The search step: nothing for the first task (its new path trains in the
        shared loop); else the prior task u (:meth:`prior`), the candidate paths
        k = 0…5 trained and scored on validation (:meth:`train_candidates`), the best
        one kept.  Sets :attr:`arch`; the result carries the kept candidate's training."""
        body = model.body
        if len(body.paths) == 1 and task in body.paths:
            self.arch = self.path_record(model, task, None, 0)
            return None
        prior, knn = self.prior(model, task, train, val)
        k, candidates, result = self.train_candidates(model, task, prior, train, val, config)
        self.arch = {**self.path_record(model, task, prior, k),
                     "candidate_val_accuracy": {str(j): a for j, a in sorted(candidates.items())}}
        return SearchResult({"knn_accuracy": {str(u): a for u, a in knn.items()}, "prior_task": prior,
                             "candidate_val_accuracy": self.arch["candidate_val_accuracy"]}, fit=result)

    def train_candidates(self, model, task: int, prior: int, train, val,
                         config) -> tuple[int, dict[int, float], FitResult]:
        """Train the candidate paths of ``task`` (k = 0…5 modules of ``prior``'s path,
        then new ones), leave the best one as the task's path with only its new
        modules and the head trainable, delete the others' new modules.  Returns
        (kept k, validation accuracy (fraction) per k, the kept path's training)."""
        raise NotImplementedError

    def architecture(self, model, task):
        return self.arch


@register_strategy("mntdp-d")
class MNTDPD(MNTDP):
    """MNTDP-D: each candidate k (from 5 down to 0) is trained with the shared loop
    (:func:`par.training.fit`, a fresh head each time); the one with the best
    validation accuracy is kept (ties: more reuse), the others' new modules are
    deleted.  The candidates' training is the search step."""

    def train_candidates(self, model, task, prior, train, val, config):
        import copy

        from par.nets.growing_bodies import N_DEPTHS
        from par.training import fit

        body, head = model.body, model.head(task)
        best = None
        candidates = {}
        for k in range(N_DEPTHS, -1, -1):
            new = [body.add_module_at(d) for d in range(k, N_DEPTHS)]
            body.paths[task] = body.paths[prior][:k] + new
            head.reset_parameters()
            self.set_trainable(model, [*(body.module(m) for m in new), head])
            result = fit(model, task, self, train, val, config)
            candidates[k] = result.best_val_accuracy
            if best is None or result.best_val_accuracy > best["accuracy"]:
                if best is not None:
                    body.remove(best["new"])
                best = {"accuracy": result.best_val_accuracy, "k": k, "new": new, "path": list(body.paths[task]),
                        "head": copy.deepcopy(head.state_dict()), "fit": result}
            else:
                body.remove(new)
        body.paths[task] = best["path"]
        head.load_state_dict(best["head"])
        self.set_trainable(model, [*(body.module(m) for m in best["new"]), head])
        return best["k"], candidates, best["fit"]


@register_strategy("mntdp-s")
class MNTDPS(MNTDP):
    """MNTDP-S: new modules for every depth, shared by the candidates; one
    training (:func:`par.training.fit`) where each batch takes a path k drawn
    uniformly from 0…5 (MNTDP-S learns the path distribution; this draw is
    uniform).  After every epoch all candidates are scored on validation and the
    best one is the path validated next epoch; after training the best candidate
    on validation is kept and the new modules it does not use are deleted."""

    def __init__(self, knn_neighbors: int = MNTDP_SECTION.default("knn_neighbors"),
                 knn_max_samples: int = MNTDP_SECTION.default("knn_max_samples")):
        super().__init__(knn_neighbors, knn_max_samples)
        self.prior_task = None
        self.new: list[int] = []
        self.eval_k = 0
        self.sampling = False

    def _path(self, model, k):
        return model.body.paths[self.prior_task][:k] + self.new[k:]

    def _scores(self, model, task, val) -> dict[int, float]:
        from par.nets.growing_bodies import N_DEPTHS
        from par.training import evaluate

        scores = {}
        for k in range(N_DEPTHS + 1):
            model.body.paths[task] = self._path(model, k)
            scores[k] = evaluate(model, task, val)
        return scores

    def loss(self, model, task, x, y):
        import torch

        from par.nets.growing_bodies import N_DEPTHS

        if self.sampling:
            k = int(torch.randint(0, N_DEPTHS + 1, ()))
            model.body.paths[task] = self._path(model, k)
        return super().loss(model, task, x, y)

    def after_step(self, model, task):
        if self.sampling:
            model.body.paths[task] = self._path(model, self.eval_k)

    def after_epoch(self, model, task, epoch, record):
        if self.sampling:
            scores = self._scores(model, task, self.val)
            self.eval_k = max(scores, key=lambda k: (scores[k], k))
            model.body.paths[task] = self._path(model, self.eval_k)
            record["candidate_val_accuracy"] = {str(k): a for k, a in scores.items()}

    def train_candidates(self, model, task, prior, train, val, config):
        from par.nets.growing_bodies import N_DEPTHS
        from par.training import fit

        body = model.body
        self.prior_task = prior
        self.new = [body.add_module_at(d) for d in range(N_DEPTHS)]
        self.eval_k, self.val, self.sampling = 0, val, True
        body.paths[task] = self._path(model, 0)
        self.set_trainable(model, [*(body.module(m) for m in self.new), model.head(task)])
        result = fit(model, task, self, train, val, config)
        self.sampling = False
        scores = self._scores(model, task, val)
        k = max(scores, key=lambda j: (scores[j], j))
        body.paths[task] = self._path(model, k)
        body.remove(self.new[:k])
        self.set_trainable(model, [*(body.module(m) for m in self.new[k:]), model.head(task)])
        return k, scores, result
