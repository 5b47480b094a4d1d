"""Make the image-folder archives the tests and CPU demos read, from torchvision's downloads.

    python tools/shared_data.py ../shared/data

downloads CIFAR-10 and MNIST with torchvision (into ``<out>/torchvision``; or reads them
there when already present) and writes, beside it:

- ``cifar10-jpg.tar.gz``: ``cifar10-jpg/{train,test}/<class name>/NNNN.jpg``, all 60 000
  CIFAR-10 images as 32×32 JPEG (5 000 train and 1 000 test per class);
- ``mnist-t10k-png.tar.gz``: ``mnist-t10k/<digit>/NNNNN.png``, MNIST's 10 000 test digits.

The tests find the folder as ``../shared/data`` beside the checkout or through
``PAR_SHARED_DATA`` (tests/conftest.py). Each archive is written to a temporary file and
renamed into place when complete; its sha256 is printed.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
from pathlib import Path
from typing import Iterable

from PIL import Image


def write_archive(members: Iterable[tuple[str, Image.Image]], out: Path, image_format: str) -> str:
    """Write ``(path inside the archive, image)`` pairs as a ``.tar.gz`` at ``out``
    (atomically) with the folders listed first; returns the archive's sha256."""
    from par.infra.io import atomic_path

    with atomic_path(out) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            folders = set()
            for name, image in members:
                parts = Path(name).parts
                for depth in range(1, len(parts)):
                    folder = "/".join(parts[:depth])
                    if folder not in folders:
                        folders.add(folder)
                        info = tarfile.TarInfo(folder)
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        tar.addfile(info)
                buffer = io.BytesIO()
                image.save(buffer, format=image_format)
                info = tarfile.TarInfo(name)
                info.size, info.mode = buffer.tell(), 0o644
                buffer.seek(0)
                tar.addfile(info, buffer)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def cifar10_members(root: Path) -> Iterable[tuple[str, Image.Image]]:
    """``cifar10-jpg/<split>/<class>/NNNN.jpg`` of torchvision's CIFAR-10 under ``root``
    (downloaded when missing); NNNN counts the images of a class in dataset order."""
    from torchvision.datasets import CIFAR10

    for split in ("train", "test"):
        dataset = CIFAR10(root, train=split == "train", download=True)
        counts: dict[int, int] = {}
        for image, label in dataset:
            index = counts.get(label, 0)
            counts[label] = index + 1
            yield f"cifar10-jpg/{split}/{dataset.classes[label]}/{index:04d}.jpg", image


def mnist_members(root: Path) -> Iterable[tuple[str, Image.Image]]:
    """``mnist-t10k/<digit>/NNNNN.png`` of torchvision's MNIST test split (NNNNN: index in it)."""
    from torchvision.datasets import MNIST

    for index, (image, label) in enumerate(MNIST(root, train=False, download=True)):
        yield f"mnist-t10k/{label}/{index:05d}.png", image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to fill, e.g. ../shared/data")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    downloads = args.out / "torchvision"
    for name, members, image_format in (("cifar10-jpg.tar.gz", cifar10_members, "JPEG"),
                                        ("mnist-t10k-png.tar.gz", mnist_members, "PNG")):
        digest = write_archive(members(downloads), args.out / name, image_format)
        print(f"{args.out / name}  sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
