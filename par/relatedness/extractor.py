"""The frozen relatedness extractor (docs/spec.md §1).

torchvision's ``resnet18`` up to and including global average pooling: each
image becomes a 512-d float32 vector.  It sees images at native resolution
with the dataset's own normalisation, is never trained, and is not counted in
any parameter total.

Weights are named by one string, recorded in every output derived from them:

- ``IMAGENET1K_V1``: torchvision's ImageNet weights, loaded (and downloaded
  into torch's hub cache on first use) by torchvision itself;
- ``random``: torchvision's own initialisation under a fixed seed (offline runs);
- any other string: a path to a ``state_dict`` of a torchvision ``resnet18``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torchvision
from torch import nn

from par.streams.datasets.registry import url_reachable
from par.infra.io import atomic_path, read_hdf5
from par.streams.transforms import normalize

FEATURE_DIM = 512
IMAGENET = "IMAGENET1K_V1"
RANDOM = "random"


class ExtractorWeightsUnavailable(RuntimeError):
    """The requested extractor weights cannot be loaded or downloaded."""


def _imagenet_cache_path() -> Path:
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def check_weights(weights: str) -> None:
    """Raise :class:`ExtractorWeightsUnavailable` unless ``weights`` can be loaded.

    ImageNet weights pass when they are in torch's hub cache or the download
    host answers; a path must name an existing file.
    """
    if weights == RANDOM:
        return
    if weights == IMAGENET:
        url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
        cached = _imagenet_cache_path()
        if cached.is_file() or url_reachable(url):
            return
        raise ExtractorWeightsUnavailable(
            f"The extractor weights {IMAGENET} are not in torch's cache ({cached}) and {url} "
            "cannot be reached (offline?). Copy resnet18-f37072fd.pth to that path (or set "
            "TORCH_HOME), point 'extractor.weights' at a resnet18 state_dict file, or set "
            "'extractor.weights: random' for seeded random weights (recorded in every output)."
        )
    if not Path(weights).is_file():
        raise ExtractorWeightsUnavailable(
            f"extractor.weights='{weights}' is neither '{IMAGENET}', '{RANDOM}' nor an existing file."
        )


def weights_provenance(weights: str, seed: int) -> str:
    """One string naming exactly which weights produced the features."""
    if weights == IMAGENET:
        return f"torchvision resnet18 {IMAGENET}"
    if weights == RANDOM:
        return f"torchvision resnet18 random init (seed {seed})"
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    return f"torchvision resnet18 state_dict {weights} (sha256 {digest})"


def build_extractor(weights: str, seed: int = 0) -> nn.Module:
    """The frozen extractor in eval mode; ``forward`` maps (n, 3, H, W) → (n, 512).

    Raises :class:`ExtractorWeightsUnavailable` when the weights cannot be had.
    """
    check_weights(weights)
    if weights == IMAGENET:
        try:
            model = torchvision.models.resnet18(weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
        except Exception as err:  # urllib / hash errors from torch.hub
            raise ExtractorWeightsUnavailable(f"Could not load {IMAGENET} weights: {err}") from err
    elif weights == RANDOM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = torchvision.models.resnet18(weights=None)
    else:
        model = torchvision.models.resnet18(weights=None)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            missing, unexpected = model.load_state_dict(state, strict=False)
        except Exception as err:  # unpickling errors, shape mismatches
            raise ExtractorWeightsUnavailable(f"{weights} is not a resnet18 state_dict: {err}") from err
        if unexpected or [k for k in missing if not k.startswith("fc.")]:
            raise ExtractorWeightsUnavailable(
                f"{weights} is not a resnet18 state_dict (missing {missing[:3]}, unexpected {unexpected[:3]})."
            )
    model.fc = nn.Identity()
    model.eval().requires_grad_(False)
    return model


@torch.no_grad()
def extract_features(model: nn.Module, images: np.ndarray, mean, std, *,
                     batch_size: int = 256, device: torch.device | str = "cpu") -> np.ndarray:
    """Features of ``images`` (n, H, W, 3) uint8 → (n, 512) float32.

    Images are scaled to [0, 1] and normalised with ``mean``/``std`` (3,), at
    native resolution (docs/spec.md §1: no resize, no L2 normalisation).
    """
    model = model.to(device)
    out = np.empty((len(images), FEATURE_DIM), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start:start + batch_size]).to(device)
        x = normalize(batch.permute(0, 3, 1, 2).float() / 255.0, mean, std)
        out[start:start + len(batch)] = model(x).float().cpu().numpy()
    return out


@dataclass
class TaskFeatures:
    """Features of one task's images: ``features`` (n, 512) float32, ``labels``
    (n,) local labels, ``sample_ids`` (n,) indices into the dataset split, and
    ``classes`` (dataset class ids of the task) and ``weights`` (provenance)."""

    task: int
    features: np.ndarray
    labels: np.ndarray
    sample_ids: np.ndarray
    classes: list[int]
    split: str
    weights: str


def save_features(path: str | Path, tf: TaskFeatures, provenance: dict | None = None) -> None:
    """Write :class:`TaskFeatures` to HDF5 (datasets ``features``, ``labels``,
    ``sample_ids``; attributes ``task``, ``classes``, ``split``, ``extractor``,
    ``weights``, and ``provenance``, JSON (:data:`par.infra.schemas.PROVENANCE`), when
    given), atomically."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("features", data=tf.features.astype(np.float32))
        f.create_dataset("labels", data=tf.labels.astype(np.int64))
        f.create_dataset("sample_ids", data=tf.sample_ids.astype(np.int64))
        f.attrs.update({"task": tf.task, "classes": json.dumps(tf.classes), "split": tf.split,
                        "extractor": "torchvision resnet18 to global average pooling", "weights": tf.weights})
        if provenance is not None:
            f.attrs["provenance"] = json.dumps(provenance, sort_keys=True)


def load_features(path: str | Path) -> TaskFeatures:
    """Read a file written by :func:`save_features`; raises
    :class:`par.infra.io.CorruptFileError` naming the file when it is unreadable."""
    with read_hdf5(path) as f:
        return TaskFeatures(int(f.attrs["task"]), f["features"][...], f["labels"][...], f["sample_ids"][...],
                            json.loads(f.attrs["classes"]), str(f.attrs["split"]), str(f.attrs["weights"]))
