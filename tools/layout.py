"""CPU seconds per step of the light ResNet18 and the expert with channels_last against
NCHW-contiguous input (train batch 64, eval batch 100, one thread, best of 3):

    python tools/layout.py

The README's Speed section quotes its output (the input layout made deliberate)."""
import time

import torch
import torch.nn.functional as F

from par.nets.genotypes import DARTS_V2
from par.infra.devices import tune_cpu_allocator
from par.nets.model import MultiHeadModel

NETWORKS = {
    "light_resnet18 w32": {"kind": "light_resnet18", "width": 32},
    "expert C16 L3": {"kind": "expert", "genotype": DARTS_V2.to_json(), "channels": 16, "n_layers": 3},
}


def seconds_per_step(spec: dict, memory_format, train: bool, steps: int = 8, repeats: int = 3) -> float:
    """Best-of-``repeats`` CPU seconds (``time.thread_time``) of one training step (batch 64)
    or one evaluation forward pass (batch 100) on random 32×32 input in ``memory_format``."""
    torch.manual_seed(0)
    model = MultiHeadModel(spec, {1: 2})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(64 if train else 100, 3, 32, 32).contiguous(memory_format=memory_format)
    y = torch.randint(0, 2, (len(x),))
    model.train(train)
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(steps):
            if train:
                loss = F.cross_entropy(model(x, 1), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            else:
                with torch.no_grad():
                    model(x, 1)
        best = min(best, (time.thread_time() - start) / steps)
    return best


def main() -> None:
    torch.set_num_threads(1)
    tune_cpu_allocator()
    for name, spec in NETWORKS.items():
        for train in (True, False):
            cl = seconds_per_step(spec, torch.channels_last, train)
            nchw = seconds_per_step(spec, torch.contiguous_format, train)
            print(f"{name} {'train64' if train else 'eval100'}: channels_last {cl:.4f} s, NCHW {nchw:.4f} s, "
                  f"NCHW/CL {nchw / cl:.2f}")


if __name__ == "__main__":
    main()
