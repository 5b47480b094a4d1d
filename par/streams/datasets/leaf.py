"""F-CelebA from LEAF's CelebA json files and images."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from par.streams.datasets.sources import DataSource, DatasetInfo, DatasetUnavailable, ImageArrays


# ---- F-CelebA (LEAF) ----------------------------------------------------------------------

FCELEBA_CLASSES = ["not smiling", "smiling"]
_LEAF_JSON_DIRS = (Path("data"), Path("small") / "iid")   # LEAF's output, CAT's copy
_LEAF_IMAGES = Path("data") / "raw" / "img_align_celeba"


def _leaf_json_dir(celeba: Path) -> Path | None:
    """The folder whose ``train/`` and ``test/`` both hold ``*.json`` files."""
    for sub in _LEAF_JSON_DIRS:
        if all((celeba / sub / split).is_dir() and any((celeba / sub / split).glob("*.json"))
               for split in ("train", "test")):
            return celeba / sub
    return None


def _read_leaf(info: DatasetInfo, source: DataSource, scratch: Path, size: tuple[int, int] = (32, 32)
               ) -> ImageArrays:
    """LEAF's CelebA JSON (``users``, ``user_data`` {user: {x: image files, y: 0/1}})
    as CAT reads it: every user of every ``*.json`` of ``train/`` and ``test/``;
    images from ``data/raw/img_align_celeba/`` resized to ``size`` (W, H) (PIL
    bilinear = CAT's ``transforms.Resize((32, 32))``)."""
    from PIL import Image

    celeba = Path(source.path)
    json_dir, image_dir = _leaf_json_dir(celeba), celeba / _LEAF_IMAGES
    records: dict[str, list[tuple[str, str, int]]] = {}
    for split in ("train", "test"):
        records[split] = []
        for path in sorted((json_dir / split).glob("*.json")):
            try:
                data = json.loads(path.read_text())
                for user in data["users"]:
                    xs, ys = data["user_data"][user]["x"], data["user_data"][user]["y"]
                    if len(xs) != len(ys):
                        raise ValueError(f"user {user} has {len(xs)} images and {len(ys)} labels")
                    records[split] += [(user, x, int(y)) for x, y in zip(xs, ys)]
            except (ValueError, KeyError, TypeError) as err:
                raise DatasetUnavailable(f"{path} is not a LEAF JSON file (users, user_data x/y): {err!r}") from err
    users = sorted({user for rs in records.values() for user, _, _ in rs})
    user_index = {u: i for i, u in enumerate(users)}
    out = {}
    for split, rs in records.items():
        images = np.empty((len(rs), size[1], size[0], 3), dtype=np.uint8)
        for i, (_, name, _) in enumerate(rs):
            try:
                with Image.open(image_dir / name) as img:
                    images[i] = np.asarray(img.convert("RGB").resize(size, Image.BILINEAR))
            except OSError as err:
                raise DatasetUnavailable(f"{image_dir / name} is unreadable: {err}") from err
        labels = np.array([y for _, _, y in rs], dtype=np.int64)
        if len(labels) and not set(np.unique(labels)) <= {0, 1}:
            raise DatasetUnavailable(f"{json_dir / split}: F-CelebA labels must be 0/1 (smiling)")
        out[split] = images, labels, np.array([user_index[u] for u, _, _ in rs], dtype=np.int64)
    return ImageArrays(out["train"][0], out["train"][1], out["test"][0], out["test"][1],
                       list(FCELEBA_CLASSES), f"LEAF CelebA at {celeba}",
                       user_names=users, train_users=out["train"][2], test_users=out["test"][2])


def fceleba_info() -> DatasetInfo:
    def locate(root: Path) -> DataSource | None:
        celeba = root / "celeba"
        if _leaf_json_dir(celeba) is not None and (celeba / _LEAF_IMAGES).is_dir():
            return DataSource("fceleba", "leaf", str(celeba))
        return None

    def placement(root: Path) -> list[str]:
        celeba = root / "celeba"
        return [f"LEAF's CelebA (small/iid) as LEAF writes it: {celeba}/data/train/*.json and "
                f"{celeba}/data/test/*.json (users, user_data {{x: image files, y: smiling 0/1}}; CAT's copy "
                f"{celeba}/small/iid/{{train,test}}/*.json also works) with the images in "
                f"{celeba / _LEAF_IMAGES}/*.jpg"]

    return DatasetInfo("fceleba", 2, (32, 32, 3), locators=(locate,), readers={"leaf": _read_leaf},
                       placement=placement)
