"""CPU seconds per step of the light ResNet18 and the expert with channels_last against NCHW-contiguous
input (train batch 64, eval batch 100, one thread, best of 3):  python benchmarks/layout.py"""
import time

import torch
import torch.nn.functional as F
from par.models import MultiHeadModel
from par.cells import DARTS_V2
from par.devices import tune_cpu_allocator
torch.set_num_threads(1); tune_cpu_allocator()
def bench(spec, fmt, steps=8, eval_=False):
    torch.manual_seed(0)
    m = MultiHeadModel(spec, {1: 2})
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(64 if not eval_ else 100, 3, 32, 32).contiguous(memory_format=fmt); y = torch.randint(0, 2, (len(x),))
    best = 1e9
    for r in range(3):
        c = time.thread_time()
        for _ in range(steps):
            if eval_:
                m.eval()
                with torch.no_grad(): m(x, 1)
            else:
                loss = F.cross_entropy(m(x, 1), y); opt.zero_grad(); loss.backward(); opt.step()
        best = min(best, (time.thread_time() - c) / steps)
    return best
for name, spec in [("light_resnet18 w32", {"kind": "light_resnet18", "width": 32}),
                   ("expert C16 L3", {"kind": "expert", "genotype": DARTS_V2.to_json(), "channels": 16, "n_layers": 3})]:
    for ev in (False, True):
        a = bench(spec, torch.channels_last, eval_=ev); b = bench(spec, torch.contiguous_format, eval_=ev)
        print(f"{name} {'eval100' if ev else 'train64'}: channels_last {a:.4f} s, NCHW {b:.4f} s, NCHW/CL {b/a:.2f}")
