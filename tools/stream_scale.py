"""Speed at CTrL S_long scale (100 tasks): resolving the stream and the 100×100 distance matrix.

    python tools/stream_scale.py

Prints seconds for resolving ctrl-s-long for 3 seeds (what the workflow does at
parse time) and for the Nearest-Prototype KL matrix of 100 five-way tasks with
S_long-like validation sizes (15 or 2500 images, 512-d features), vectorised
(par.relatedness.distances.distance_matrix) against the pair-by-pair loop; the two agree exactly.
"""
import time

import numpy as np

from par.relatedness.distances import class_prototypes, distance_matrix, nearest_prototype_kl
from par.streams.spec import load_spec, resolve_tasks

start = time.perf_counter()
spec = load_spec("ctrl-s-long")
tasks = [resolve_tasks(spec, seed) for seed in (0, 1, 2)]
print(f"resolve ctrl-s-long, 3 seeds: {time.perf_counter() - start:.3f} s")

rng = np.random.default_rng(0)
features, labels, protos = [], [], []
for t in tasks[0]:
    n = 5 * (500 if t["sizes"]["val"] == 500 else 3)
    lab = np.repeat(np.arange(5), n // 5)
    f = rng.normal(size=(n, 512)).astype(np.float32)
    features.append(f), labels.append(lab), protos.append(class_prototypes(f, lab, 5))
print(f"{sum(map(len, features))} validation features over {len(features)} tasks")
start = time.perf_counter()
fast = distance_matrix(features, labels, protos)
print(f"vectorised 100×100 matrix: {time.perf_counter() - start:.1f} s")
start = time.perf_counter()
slow = np.array([[nearest_prototype_kl(features[i], labels[i], protos[i], protos[j]) for j in range(100)]
                 for i in range(100)])
print(f"pair-by-pair 100×100 matrix: {time.perf_counter() - start:.1f} s; identical: {np.array_equal(fast, slow)}")
