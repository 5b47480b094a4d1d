"""Transforms applied when a task's images are read (docs/spec.md §8, CTrL streams).

A task of a stream (see :mod:`par.streams.spec`) lists its transforms as data, e.g.
``[{"rainbow": "red"}]``; :func:`apply_transforms` turns a batch of decoded
images into the stream's common format: (n, H, W, 3) uint8 at the stream's
image size.  Every image first becomes 3-channel (grayscale copied to the three
channels, as CTrL's ``expand_channels``) and is resized to the stream's size;
then the task's own transforms run in the listed order.

Label transforms (``permute_labels``, CTrL S_out) act on the task's class list
when the task is prepared, not on pixels: see :func:`permute_labels`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

# CTrL's Rainbow-MNIST background colours (ctrl/transformations/rainbow_transformation.py,
# COLORS); rotation 0 and scale 1 are the only other levels of its tree, i.e. identity.
RAINBOW_COLOURS: dict[str, tuple[int, int, int]] = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def normalize(x, mean, std):
    """Channel-wise (x − mean) / std of (n, C, H, W) float images in [0, 1] (a torch tensor).

    Shared by the frozen extractor (docs/spec.md §1) and the training loop (docs/spec.md §5); it
    lives here so that a change of the training loop does not re-run features.
    """
    import torch

    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def to_rgb(images: np.ndarray) -> np.ndarray:
    """(n, H, W) or (n, H, W, 1|3) uint8 → (n, H, W, 3) uint8; a grayscale channel is copied."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        return np.repeat(images, 3, axis=-1)
    if images.shape[-1] != 3:
        raise ValueError(f"images of shape {images.shape} have neither 1 nor 3 channels")
    return images


def resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (n, H, W, 3) uint8 to (n, size[0], size[1], 3) with torchvision's
    bilinear, antialiased resize (as CTrL's ``img_size`` and the CelebA 32×32 of
    CAT); images already at ``size`` are returned unchanged."""
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    import torch
    from torchvision.transforms import functional as TF

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    out = TF.resize(x, list(size), antialias=True)
    return out.permute(0, 2, 3, 1).contiguous().numpy()


def rainbow(images: np.ndarray, colour: str) -> np.ndarray:
    """Rainbow-MNIST background colouring (CTrL ``change_background_color``):
    out = x + (max − x) · colour, on images in [0, 1] with max = 1, i.e. a black
    background becomes ``colour`` and white strokes stay white.  (n, H, W, 3) uint8
    → same shape uint8.  Raises KeyError for a colour not in RAINBOW_COLOURS."""
    c = np.asarray(RAINBOW_COLOURS[colour], dtype=np.float64) / 255.0
    x = images.astype(np.float64) / 255.0
    out = x + (1.0 - x) * c
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def permute_labels(n_classes: int, seed) -> list[int]:
    """A seeded permutation π of 0..n_classes−1 that moves every label (a
    derangement, so that no class keeps its label; CTrL S_out's new head must
    relearn every output).  Local label y of the source task becomes π[y]."""
    if n_classes < 2:
        raise ValueError("a label permutation needs at least 2 classes")
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n_classes)
        if (perm != np.arange(n_classes)).all():
            return [int(p) for p in perm]


# Pixel transforms by name: each maps (images, argument) → images.
PIXEL_TRANSFORMS: dict[str, Callable[[np.ndarray, object], np.ndarray]] = {
    "rainbow": rainbow,
}
# Transforms that act on the labels when a task is prepared (par.streams.spec).
LABEL_TRANSFORMS = ("permute_labels",)


def transform_name(entry) -> tuple[str, object]:
    """``"name"`` or ``{"name": argument}`` → (name, argument)."""
    if isinstance(entry, str):
        return entry, None
    (name, argument), = entry.items()
    return name, argument


def apply_transforms(images: np.ndarray, transforms: list, image_size: tuple[int, int] | None) -> np.ndarray:
    """The task's pixels as the stream sees them: 3 channels, ``image_size``
    (or native size when None), then each pixel transform of ``transforms``.

    images: (n, H, W[, C]) uint8.  Returns (n, H', W', 3) uint8.
    Raises KeyError naming an unknown transform."""
    out = to_rgb(images)
    if image_size is not None:
        out = resize(out, tuple(image_size))
    for entry in transforms:
        name, argument = transform_name(entry)
        if name in LABEL_TRANSFORMS:
            continue
        if name not in PIXEL_TRANSFORMS:
            raise KeyError(f"unknown transform {name!r}; known: {sorted(PIXEL_TRANSFORMS) + list(LABEL_TRANSFORMS)}")
        out = PIXEL_TRANSFORMS[name](out, argument)
    return out


def channel_statistics(images: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std (population) of (n, H, W, 3) uint8 images scaled
    to [0, 1]: the per-task normalisation of CTrL streams.  A channel with std 0
    gets std 1 so that normalising never divides by zero."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
