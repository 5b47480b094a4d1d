"""Methods that grow a network per task: PN, Learn to Grow, MNTDP-S, MNTDP-D (docs/spec.md §10).

Each is a chain like finetune (predecessor t − 1, evaluated on every task ≤ t):
the state after task t holds every module of tasks 1…t (PN: all columns; LtG
and MNTDP: the module library and each task's path), so one predecessor is
all a job reads, and M of the final state is everything inference on all
tasks needs.  Earlier tasks' modules are frozen (``requires_grad`` off, their
BatchNorms in eval mode), so their outputs are unchanged bit for bit.

The per-task search of LtG and MNTDP is the strategy's ``search`` step, run
inside the learn-task job before training and timed (record
``search_seconds``, part of the job's ``seconds`` and so of T).

Torch is imported inside the hooks: the workflow imports this module while it
is parsed (tests/test_startup.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from par.learners.methods import Finetune, register_method
from par.learners.options import ConfigSection, Option
from par.learners.strategies import Strategy, register_strategy

if TYPE_CHECKING:
    import torch
    from torch import nn

    from par.nets.model import MultiHeadModel


# ---- methods: chains of one growing model ---------------------------------------------------

@register_method("pn")
class ProgressiveNetworks(Finetune):
    """Progressive Networks (Rusu et al. 2016): a new column per task (strategy ``pn``)."""

    body_kind = "pn"


@register_method("ltg")
class LearnToGrow(Finetune):
    """Learn to Grow (Li et al. 2019): per layer reuse / adapt / new, by DARTS (strategy ``ltg``)."""

    body_kind = "ltg"


@register_method("mntdp-s")
class MNTDPStochastic(Finetune):
    """MNTDP-S (Veniat et al. 2021): candidate paths trained jointly by sampling (strategy ``mntdp-s``)."""

    body_kind = "mntdp"


@register_method("mntdp-d")
class MNTDPDeterministic(Finetune):
    """MNTDP-D (Veniat et al. 2021): every candidate path trained, best on validation kept."""

    body_kind = "mntdp"


# ---- strategies -------------------------------------------------------------------------------

class Growing(Strategy):
    """Base: prepare the predecessor's model (or an empty body from ``body_spec``),
    grow it for the task (:meth:`grow`), train only :attr:`trainable` with every
    other module frozen and in eval mode."""

    def __init__(self):
        self.trainable: list[nn.Module] = []

    def prepare(self, predecessor, body_spec, task, n_classes, device):
        from par.nets.model import MultiHeadModel

        if predecessor is None:
            if body_spec is None:
                raise ValueError(f"strategy {self.name} starts a new model here and needs a body spec")
            model = MultiHeadModel(body_spec)
        else:
            model = predecessor
        model = model.to(device)
        self.grow(model, task, n_classes, device)
        self.set_trainable(model, [*self.trainable, model.head(task)])
        return model

    def grow(self, model: MultiHeadModel, task: int, n_classes: int, device) -> None:
        raise NotImplementedError

    @staticmethod
    def add_head(model: MultiHeadModel, task: int, n_classes: int, device) -> None:
        from torch import nn

        if str(task) in model.heads:
            raise ValueError(f"task {task} already has a head")
        model.heads[str(task)] = nn.Linear(model.body.out_features, n_classes).to(device)

    def set_trainable(self, model: MultiHeadModel, modules: list) -> None:
        """Freeze everything but ``modules`` (which then train)."""
        model.requires_grad_(False)
        for m in modules:
            m.requires_grad_(True)
        self.trainable = list(modules)

    def parameters(self, model, task):
        return [p for m in self.trainable for p in m.parameters()]

    def set_mode(self, model, task):
        model.eval()
        for m in self.trainable:
            m.train()


@register_strategy("pn")
class Progressive(Growing):
    """A new column (light ResNet18) and its laterals from every earlier column
    (:class:`par.nets.growing_bodies.ProgressiveBody`); only they and the new head train."""

    def grow(self, model, task, n_classes, device):
        model.body.add_column(task, n_classes)
        self.add_head(model, task, n_classes, device)
        self.trainable = model.body.column_modules(task)

    def architecture(self, model, task):
        return model.body.architecture(task)


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


MNTDP_SECTION = ConfigSection("mntdp", (
    "MNTDP's task-driven prior, methods mntdp-s and mntdp-d (docs/spec.md §10; Veniat et al. ICLR 2021; "
    "facebookresearch/MNTDP src/modules/PSSN_llmodel.py get_candidate_models): the earlier "
    "task whose path's features give the best k-NN accuracy on the new task's validation set."), {
    "knn_neighbors": Option(15, "integer", "k of the k-NN vote (MNTDP: n_neighbors 15)", minimum=1),
    "knn_max_samples": Option(1000, "integer", "training images the k-NN is fitted on, and validation images "
                              "it is scored on, at most (MNTDP: max_samples 1000)", minimum=1),
})
LTG_SECTION = ConfigSection("ltg", (
    "Learn to Grow, method ltg (docs/spec.md §10; Li et al. ICML 2019; authors' src/approaches/ltg.py, "
    "run_files/miniimagenet-20/ltg.sh): the per-task DARTS search of reuse / adapt / new per "
    "conv layer, on a 50/50 split of the task's training set; the chosen network then trains "
    "with the run's training settings."), {
    "search_epochs": Option(50, "integer", "epochs of the search (authors' o_epochs 50)", minimum=1),
    "search_lr": Option(0.01, "number", "SGD learning rate of the new weights during the search, cosine "
                        "(authors' o_lr 0.01)", exclusive_minimum=0),
    "search_weight_decay": Option(0.003, "number", "weight decay of the new weights during the search "
                                  "(authors' o_lamb 0.003)", minimum=0),
    "arch_lr": Option(0.003, "number", "Adam learning rate of the architecture weights, betas (0.5, 0.999) "
                      "(authors' o_lr_a 0.003)", exclusive_minimum=0),
    "arch_weight_decay": Option(0.003, "number", "Adam weight decay of the architecture weights "
                                "(authors' o_lamb_a 0.003)", minimum=0),
})


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

    def architecture(self, model, task):
        return self.arch


@register_strategy("mntdp-d")
class MNTDPD(MNTDP):
    """MNTDP-D: each candidate k (from 5 down to 0) is trained with the shared loop
    (:func:`par.training.fit`, a fresh head each time); the one with the best
    validation accuracy is kept (ties: more reuse), the others' new modules are
    deleted.  The candidates' training is the search step."""

    def __init__(self, knn_neighbors: int = MNTDP_SECTION.default("knn_neighbors"),
                 knn_max_samples: int = MNTDP_SECTION.default("knn_max_samples")):
        super().__init__(knn_neighbors, knn_max_samples)
        self.arch = {"path": None}

    def search(self, model, task, train, val, config):
        import copy

        from par.nets.growing_bodies import N_DEPTHS
        from par.training import fit

        body = model.body
        if len(body.paths) == 1 and task in body.paths:
            self.arch = self.path_record(model, task, None, 0)
            return None
        prior, scores = self.prior(model, task, train, val)
        head = model.head(task)
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
        self.arch = {**self.path_record(model, task, prior, best["k"]),
                     "candidate_val_accuracy": {str(k): a for k, a in sorted(candidates.items())}}
        return {"knn_accuracy": {str(u): a for u, a in scores.items()}, "prior_task": prior,
                "candidate_val_accuracy": self.arch["candidate_val_accuracy"], "fit": best["fit"]}


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
        self.arch = {"path": None}
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

    def search(self, model, task, train, val, config):
        from par.nets.growing_bodies import N_DEPTHS
        from par.training import fit

        body = model.body
        if len(body.paths) == 1 and task in body.paths:
            self.arch = self.path_record(model, task, None, 0)
            return None
        self.prior_task, knn = self.prior(model, task, train, val)
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
        self.arch = {**self.path_record(model, task, self.prior_task, k),
                     "candidate_val_accuracy": {str(j): a for j, a in scores.items()}}
        return {"knn_accuracy": {str(u): a for u, a in knn.items()}, "prior_task": self.prior_task,
                "candidate_val_accuracy": self.arch["candidate_val_accuracy"], "fit": result}


@register_strategy("ltg")
class LtG(Growing):
    """Learn to Grow (Li et al. ICML 2019; authors' ``ltg.py``, ``resnet_ltg.py``;
    :class:`par.nets.growing_bodies.GrowBody`).  Task 1 trains a new network.  Task t ≥ 2,
    search step: per conv layer with c options, architecture weights α (2c + 1:
    reuse option i, option i + a new 1×1 adapter, a new conv; initialised
    uniform in [0, 1) as the authors) weigh a DARTS mixture; first-order DARTS
    on a 50/50 split of the training set for ``search_epochs`` (per batch of
    the weight half: one Adam step of α on a batch of the other half, β (0.5,
    0.999), lr ``arch_lr``, weight decay ``arch_weight_decay``; then one SGD
    step of the new weights, lr ``search_lr``, momentum 0.9, weight decay
    ``search_weight_decay``, cosine).  Each layer takes argmax α; the unchosen
    candidates are deleted; the chosen network (its new convs, adapters, the
    task's BatchNorms and head, from their searched weights) is then trained
    by the shared loop.  ``search`` returns, per layer, the softmax of α (6
    decimals) and per search epoch ``arch_loss`` (mean loss of the architecture
    steps over the images they saw: the shorter half's batches repeat) and
    ``train_accuracy`` (fraction, of the weight steps' batches)."""

    config = LTG_SECTION
    config_keys = {"search_epochs": "search_epochs", "search_lr": "search_lr",
                   "search_weight_decay": "search_weight_decay", "arch_lr": "arch_lr",
                   "arch_weight_decay": "arch_weight_decay"}

    def __init__(self, search_epochs: int = LTG_SECTION.default("search_epochs"),
                 search_lr: float = LTG_SECTION.default("search_lr"),
                 search_weight_decay: float = LTG_SECTION.default("search_weight_decay"),
                 arch_lr: float = LTG_SECTION.default("arch_lr"),
                 arch_weight_decay: float = LTG_SECTION.default("arch_weight_decay")):
        super().__init__()
        self.search_epochs = search_epochs
        self.search_lr = search_lr
        self.search_weight_decay = search_weight_decay
        self.arch_lr = arch_lr
        self.arch_weight_decay = arch_weight_decay

    def grow(self, model, task, n_classes, device):
        from par.nets.growing_bodies import _conv

        body = model.body
        if not body.arch:  # the first task: a new conv in every layer
            for i, layer in enumerate(body.layers):
                body.options[i].append(_conv(layer).to(device))
            body.set_task(task, [("new", 0)] * len(body.layers))
            self.trainable = body.task_modules(task)
        else:
            self.trainable = []
        self.add_head(model, task, n_classes, device)

    def search(self, model, task, train, val, config):
        import torch
        from torch import nn

        from par.nets.growing_bodies import _adapter, _conv
        from par.training import Batches

        body = model.body
        if task in body.arch:
            return None
        device = train.images.device
        candidates = nn.ModuleDict({
            "new": nn.ModuleList(_conv(layer) for layer in body.layers),
            "adapt": nn.ModuleList(nn.ModuleList(_adapter(layer) for _ in body.options[i])
                                   for i, layer in enumerate(body.layers))}).to(device)
        for i, layer in enumerate(body.layers):
            body.norms[i][str(task)] = nn.BatchNorm2d(layer[1]).to(device)
        alphas = [torch.rand(2 * len(o) + 1, device=device).requires_grad_(True) for o in body.options]
        norms = [body.norms[i][str(task)] for i in range(len(body.layers))]
        self.set_trainable(model, [candidates, *norms, model.head(task)])
        order = torch.randperm(len(train.labels), generator=train.generator).to(device)
        half = len(order) // 2
        halves = [Batches(train.images[idx], train.labels[idx], train.mean, train.std, train.batch_size, device,
                          shuffle=True, augment=train.augment, config=train.config, generator=train.generator)
                  for idx in (order[:half], order[half:])]
        weights = [p for m in self.trainable for p in m.parameters()]
        opt_w = torch.optim.SGD(weights, lr=self.search_lr, momentum=0.9, weight_decay=self.search_weight_decay)
        opt_a = torch.optim.Adam(alphas, lr=self.arch_lr, betas=(0.5, 0.999), weight_decay=self.arch_weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, T_max=self.search_epochs)
        body.mix = (task, candidates, alphas)
        history = []
        try:
            for epoch in range(self.search_epochs):
                self.set_mode(model, task)
                arch_batches = iter(halves[1])
                total, correct, n, n_arch = 0.0, 0, 0, 0
                for x, y in halves[0]:
                    try:
                        xa, ya = next(arch_batches)
                    except StopIteration:
                        arch_batches = iter(halves[1])
                        xa, ya = next(arch_batches)
                    opt_a.zero_grad(set_to_none=True)
                    loss_a = self.loss(model, task, xa, ya)[0]
                    loss_a.backward()
                    opt_a.step()
                    opt_w.zero_grad(set_to_none=True)
                    for a in alphas:
                        a.grad = None
                    loss, logits = self.loss(model, task, x, y)
                    loss.backward()
                    nn.utils.clip_grad_norm_(weights, config.grad_clip)
                    opt_w.step()
                    total += float(loss_a.detach()) * len(ya)
                    n_arch += len(ya)
                    correct += int((logits.argmax(1) == y).sum())
                    n += len(y)
                schedule.step()
                history.append({"epoch": epoch, "arch_loss": total / max(1, n_arch),
                                "train_accuracy": correct / max(1, n)})
        finally:
            body.mix = None
        choices = []
        for i, a in enumerate(alphas):
            c = len(body.options[i])
            j = int(a.detach().argmax())
            if j < c:
                choices.append(("reuse", j))
            elif j < 2 * c:
                body.adapters[i][str(task)] = candidates["adapt"][i][j - c]
                choices.append(("adapt", j - c))
            else:
                body.options[i].append(candidates["new"][i])
                choices.append(("new", c))
        body.set_task(task, choices)
        self.set_trainable(model, [*body.task_modules(task), model.head(task)])
        return {"alpha_softmax": [[round(float(v), 6) for v in torch.softmax(a.detach(), 0)] for a in alphas],
                "history": history}

    def architecture(self, model, task):
        return model.body.architecture(task)
