"""Per-step and per-epoch time of the project's expert training against a plain
PyTorch loop on the same model and against the authors' expert code.

    python tools/speed.py [--authors PATH] [--channels 16] [--layers 3] [--steps 20] [--threads 1] [--compile]

PATH: a checkout of github.com/WenjinW/PAR (its ``src/models/par_model.py`` and
``src/automl/darts_operation.py`` are read from there; their code is not part of
this repository).  Without it the authors' column is skipped with a message.

Columns, same genotype (DARTS-V2), batch 64, 32x32 images, one CPU thread, CPU
seconds per step (``time.thread_time``, robust to other processes on the machine),
best of ``--repeat`` runs:

- project: ``par.training.Batches`` (uint8 images, on-device augmentation,
  channels_last) and the step of ``par.training.fit``, allocator tuned as in the
  compute jobs (``par.infra.devices.tune_cpu_allocator``);
- plain: the same ``par.nets.cells.Expert``, NCHW-contiguous float batches (what a
  ``DataLoader`` with ``ToTensor`` gives), forward, CE, backward, clip, SGD step;
- project, NCHW-contiguous input: the project's loop with each batch copied to
  NCHW-contiguous before the forward pass: what the explicit channels_last layout of
  ``par.training.to_float_images`` is worth;
- authors: their ``Expert`` (``par_model.py``) with their ``train_epoch`` step
  (it also calls ``loss.item()`` and ``hits.sum().item()`` per batch), fed the
  same NCHW-contiguous batches with no augmentation cost (generous to them: their
  loader augments PIL images per image on the CPU).

Run it before ``tune_cpu_allocator`` matters: the allocator setting is process-wide,
so the script measures plain and authors first, then tunes, then the project.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def load_authors_expert(checkout: Path):
    """The authors' Expert class, read from their files without importing their
    package (which pulls in wandb, seaborn, sklearn, ...)."""
    src = checkout / "src"
    spec = importlib.util.spec_from_file_location("authors_darts_operation", src / "automl" / "darts_operation.py")
    ops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ops)
    text = (src / "models" / "par_model.py").read_text()
    body = text[text.index("class NewCell"):text.index("class PARModel")]
    namespace = {"torch": torch, "nn": nn, "F": F, **{k: getattr(ops, k) for k in dir(ops) if not k.startswith("__")}}
    exec(compile(body, str(src / "models" / "par_model.py"), "exec"), namespace)
    return namespace["Expert"]


def authors_genotype(checkout: Path):
    from collections import namedtuple

    from par.nets.genotypes import DARTS_V2

    genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
    return genotype(list(DARTS_V2.normal), list(DARTS_V2.normal_concat), list(DARTS_V2.reduce),
                    list(DARTS_V2.reduce_concat))


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.thread_time()
        steps = fn()
        times.append((time.thread_time() - start) / steps)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=Path, help="checkout of WenjinW/PAR")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epoch-images", type=int, default=1800, help="training images per epoch (demo: 1800)")
    parser.add_argument("--compile", action="store_true",
                        help="also the project with training.compile (nn.Module.compile of the body): "
                             "its compile wall time and the steps it takes to pay")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from par.nets.cells import Expert
    from par.nets.genotypes import DARTS_V2
    from par.infra.devices import tune_cpu_allocator
    from par.learners.strategies import Finetune
    from par.nets.model import MultiHeadModel
    from par.nets.model import compile_body
    from par.training import Batches, TrainConfig

    n, batch = args.steps * 64, 64
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    dense = ((images.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25).contiguous()

    def plain_steps(body, head, item_syncs):
        params = [*body.parameters(), *head.parameters()]
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=0.003)
        body.train()

        def run():
            for start in range(0, n, batch):
                x, y = dense[start:start + batch], labels[start:start + batch]
                out = head(body(x).view(len(y), -1))
                loss = F.cross_entropy(out, y)
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, 10)
                opt.step()
                if item_syncs:   # the authors' train_epoch bookkeeping
                    loss.item(), (out.max(1)[1] == y).float().sum().item()
            return n // batch
        return run

    rows = {}
    torch.manual_seed(0)
    expert = Expert(DARTS_V2, args.channels, args.layers)
    rows["plain"] = best(plain_steps(expert, nn.Linear(expert.out_features, 2), False), args.repeat)
    if args.authors and (args.authors / "src" / "models" / "par_model.py").is_file():
        AuthorsExpert = load_authors_expert(args.authors)
        torch.manual_seed(0)
        theirs = AuthorsExpert((3, 32, 32), args.layers, args.channels, authors_genotype(args.authors))
        rows["authors"] = best(plain_steps(theirs, nn.Linear(theirs.last_c, 2), True), args.repeat)
    else:
        print(f"authors: skipped (no WenjinW/PAR checkout given with --authors; got {args.authors})")

    tune_cpu_allocator()
    torch.manual_seed(0)
    model = MultiHeadModel({"kind": "expert", "genotype": DARTS_V2.to_json(), "channels": args.channels,
                            "n_layers": args.layers}, {1: 2})
    strategy, config = Finetune(), TrainConfig()
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=0.003)
    train = Batches(images, labels, (0.5,) * 3, (0.25,) * 3, batch, torch.device("cpu"), shuffle=True,
                    augment=True, config=config, generator=g)

    def project(layout=None):   # the body of par.training.fit's batch loop
        model.train()
        total = torch.zeros(())
        for x, y in train:
            if layout is not None:   # the layout row: the same batch, copied to another memory format
                x = x.contiguous(memory_format=layout)
            loss, logits = strategy.loss(model, 1, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            total += loss.detach() * len(y)
        return train.n_batches
    rows["project"] = best(project, args.repeat)
    # The input layout on its own: the same loop fed NCHW-contiguous batches (one copy per
    # batch, included; it is a small part of a step).  Shows what channels_last buys here.
    rows["project, NCHW-contiguous input"] = best(lambda: project(torch.contiguous_format), args.repeat)
    compile_seconds = None
    if args.compile:  # training.compile, as par.learners.job.learn_task applies it
        compile_body(model)
        start = time.perf_counter()
        project()  # the first pass compiles (wall time: inductor compiles in worker processes)
        compile_seconds = time.perf_counter() - start - rows["project"] * train.n_batches
        rows["project + compile"] = best(project, args.repeat)

    steps_per_epoch = args.epoch_images // batch
    print(f"expert C={args.channels} L={args.layers}, batch {batch}, {args.threads} thread(s), CPU s per step "
          f"(best of {args.repeat} x {args.steps} steps); epoch = {steps_per_epoch} steps")
    print("| code | s / step | s / epoch | project is faster by |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.4f} | {seconds * steps_per_epoch:.2f} | {seconds / rows['project']:.2f}x |")
    if compile_seconds is not None:
        saved = rows["project"] - rows["project + compile"]
        pays = f"pays after {compile_seconds / saved:.0f} steps ({compile_seconds / saved / steps_per_epoch:.1f} epochs)" \
            if saved > 0 else "never pays (no step is faster)"
        print(f"compile: {compile_seconds:.1f} s wall on the first pass (beyond its steps); {pays}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
