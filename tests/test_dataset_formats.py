"""Every dataset of the paper's benchmarks, read from a small fake in its real
on-disk format (torchvision's files, DTD's label lists, the MiniImageNet pickle
cache, LEAF's JSON), user image folders, and the real MNIST-test PNG archive."""
import gzip
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets as tvd
from PIL import Image

from conftest import REPO, SHARED_DATA
from par.streams import datasets
from par.streams.datasets.catalog import (DATASETS, DatasetUnavailable, decode, load_images, load_label_info, load_labels,
                          locate_source, register_image_folder, save_images)

MNIST_ARCHIVE = SHARED_DATA / "mnist-t10k-png.tar.gz"
# CTrL's taxonomy (ctrl/instances/taxonomies.py): an independent copy of the CIFAR-100 superclasses
CTRL_CIFAR100 = {
    "aquatic mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit and vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household electrical devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large man-made outdoor things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large natural outdoor scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large omnivores and herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium-sized mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles 1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles 2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}
DTD_CLASSES = ["banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked",
               "crosshatched", "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy",
               "grid", "grooved", "honeycombed", "interlaced", "knitted", "lacelike", "lined", "marbled",
               "matted", "meshed", "paisley", "perforated", "pitted", "pleated", "polka-dotted", "porous",
               "potholed", "scaly", "smeared", "spiralled", "sprinkled", "stained", "stratified", "striped",
               "studded", "swirly", "veined", "waffled", "woven", "wrinkled", "zigzagged"]
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.fixture
def registry():
    """The dataset registry, restored after the test, so registered folders do not leak."""
    saved = dict(DATASETS)
    yield DATASETS
    DATASETS.clear()
    DATASETS.update(saved)


@pytest.fixture
def md5_is_existence(monkeypatch):
    """torchvision checks the md5 of CIFAR pickles and SVHN .mat files against
    the real files'; for the fakes, only that check becomes an existence check."""
    existence = lambda fpath, md5=None: os.path.isfile(fpath)  # noqa: E731
    monkeypatch.setattr(tvd.cifar, "check_integrity", existence)
    monkeypatch.setattr(tvd.svhn, "check_integrity", existence)


def solid(size_wh, colour, mode="RGB"):
    return Image.new(mode, size_wh, colour)


def stripes(size_wh, colours, vertical=True):
    """Three equal stripes (left→right, or top→bottom with vertical=False)."""
    w, h = size_wh
    array = np.zeros((h, w, 3), np.uint8)
    for i, colour in enumerate(colours):
        if vertical:
            array[:, i * w // 3:(i + 1) * w // 3] = colour
        else:
            array[i * h // 3:(i + 1) * h // 3] = colour
    return Image.fromarray(array)


# ---- import stays light ---------------------------------------------------------------------

def test_importing_datasets_does_not_import_torch():
    code = ("import sys, par.streams.datasets; "
            "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_download_addresses_are_torchvisions():
    assert datasets.cifar._CIFAR["cifar10"][1:] == (tvd.CIFAR10.base_folder, tvd.CIFAR10.filename, tvd.CIFAR10.url)
    assert datasets.cifar._CIFAR["cifar100"][1:] == (tvd.CIFAR100.base_folder, tvd.CIFAR100.filename, tvd.CIFAR100.url)
    for name, (cls, url) in datasets.mnist._MNIST_LIKE.items():
        assert [f + ".gz" for f in datasets.MNIST_RAW_FILES] == [r[0] for r in getattr(tvd, cls).resources]
        assert url == getattr(tvd, cls).mirrors[0] + "train-images-idx3-ubyte.gz"
    assert datasets.svhn.SVHN_FILES == (tvd.SVHN.split_list["train"][1], tvd.SVHN.split_list["test"][1])
    assert DATASETS["svhn"].download_url == tvd.SVHN.split_list["train"][0]
    assert datasets.dtd.DTD_URL == tvd.DTD._URL and datasets.dtd.DTD_URL.endswith(datasets.DTD_ARCHIVE)


# ---- CIFAR-10 / CIFAR-100 (torchvision's python pickles) -------------------------------------

def write_cifar_pickles(folder: Path, batches: dict[str, dict], meta_name: str, meta: dict):
    folder.mkdir(parents=True)
    for name, content in batches.items():
        with open(folder / name, "wb") as f:
            pickle.dump(content, f)
    with open(folder / meta_name, "wb") as f:
        pickle.dump(meta, f)


def cifar_batch(rng, labels, key="labels", **extra):
    return {"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8), key: list(labels), **extra}


def test_cifar10_pickles(tmp_path, md5_is_existence):
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": cifar_batch(rng, [(i + j) % 10 for j in range(3)]) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(rng, [9, 8])
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    write_cifar_pickles(tmp_path / "cifar-10-batches-py", batches, "batches.meta", {"label_names": names})
    source = locate_source("cifar10", tmp_path, probe_network=False)
    assert source.kind == "torchvision"
    a = decode(source, tmp_path / "scratch")
    assert a.train_images.shape == (15, 32, 32, 3) and a.test_images.shape == (2, 32, 32, 3)
    assert a.train_labels.tolist() == [1, 2, 3, 2, 3, 4, 3, 4, 5, 4, 5, 6, 5, 6, 7]
    assert a.class_names == names and a.coarse_names is None
    # CHW rows of the pickle -> HWC: pixel (0, 0) of image 0 has its R, G, B at offsets 0, 1024, 2048
    row = batches["data_batch_1"]["data"][0]
    assert a.train_images[0, 0, 0].tolist() == [row[0], row[1024], row[2048]]
    assert a.train_images[0, 1, 2, 1] == row[1024 + 32 + 2]


def test_cifar100_pickles_give_coarse_labels(tmp_path, md5_is_existence):
    rng = np.random.default_rng(1)
    fine_to_coarse, fine_names, coarse_names = datasets.cifar100_coarse_table()
    train_fine, test_fine = list(range(100)), [0, 1, 99, 54]
    write_cifar_pickles(
        tmp_path / "cifar-100-python",
        {"train": cifar_batch(rng, train_fine, "fine_labels", coarse_labels=fine_to_coarse[train_fine].tolist()),
         "test": cifar_batch(rng, test_fine, "fine_labels", coarse_labels=fine_to_coarse[test_fine].tolist())},
        "meta", {"fine_label_names": fine_names, "coarse_label_names": coarse_names})
    a = decode(locate_source("cifar100", tmp_path, probe_network=False), tmp_path / "scratch")
    assert a.train_images.shape == (100, 32, 32, 3) and a.class_names[:2] == ["apple", "aquarium_fish"]
    assert a.test_labels.tolist() == test_fine
    # apple -> fruit and vegetables (4), aquarium_fish -> fish (1), worm -> non-insect invertebrates (13),
    # orchid -> flowers (2): the official pickles' coarse_labels
    assert a.test_coarse_labels.tolist() == [4, 1, 13, 2]
    assert a.coarse_names[4] == "fruit_and_vegetables" and len(a.coarse_names) == 20
    assert np.bincount(a.train_coarse_labels).tolist() == [5] * 20


def test_coarse_table_is_the_standard_superclass_assignment():
    fine_to_coarse, fine_names, coarse_names = datasets.cifar100_coarse_table()
    assert fine_names == sorted(fine_names) and len(set(fine_names)) == 100   # CIFAR-100 label order
    assert coarse_names[9] == "large_man-made_outdoor_things" and coarse_names[18] == "vehicles_1"
    ctrl = {k.replace("medium-sized", "medium").replace(" ", "_"): v for k, v in CTRL_CIFAR100.items()}
    assert list(ctrl) == coarse_names
    for c, name in enumerate(coarse_names):
        assert sorted(fine_names[f] for f in np.flatnonzero(fine_to_coarse == c)) == sorted(ctrl[name])


def test_cifar100_image_folder_uses_the_coarse_table(tmp_path):
    _, fine_names, _ = datasets.cifar100_coarse_table()
    for split in ("train", "test"):
        for i, name in enumerate(fine_names):
            (tmp_path / "cifar100-jpg" / split / name).mkdir(parents=True)
            solid((32, 32), (i, 0, 0)).save(tmp_path / "cifar100-jpg" / split / name / "0.png")
    source = locate_source("cifar100", tmp_path, probe_network=False)
    assert source.kind == "image_folder"
    a = decode(source, tmp_path / "scratch")
    assert a.train_labels.tolist() == list(range(100))
    assert a.train_images[:, 5, 5, 0].tolist() == list(range(100))
    by_name = dict(zip(a.class_names, a.train_coarse_labels))
    assert (by_name["apple"], by_name["whale"], by_name["tractor"], by_name["woman"]) == (4, 0, 19, 14)
    assert a.coarse_names[by_name["skunk"]] == "medium_mammals"
    np.testing.assert_array_equal(a.test_coarse_labels, a.train_coarse_labels)


# ---- MNIST / Fashion-MNIST (idx files) -------------------------------------------------------

def write_idx(path: Path, array: np.ndarray, compress: bool):
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    opener = gzip.open if compress else open
    with opener(f"{path}.gz" if compress else path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist_raw(raw: Path, rng, n_train=12, n_test=7, compress=False):
    raw.mkdir(parents=True)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": np.arange(n_train) % 10,
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10}
    for name, array in arrays.items():
        write_idx(raw / name, array, compress)
    return arrays


@pytest.mark.parametrize("name,folder,compress", [("mnist", "MNIST", True), ("fashion-mnist", "FashionMNIST", False)])
def test_mnist_like_idx_files(tmp_path, name, folder, compress):
    arrays = write_mnist_raw(tmp_path / "data" / folder / "raw", np.random.default_rng(2), compress=compress)
    source = locate_source(name, tmp_path / "data", probe_network=False)
    assert source.kind == "torchvision"
    a = decode(source, tmp_path / "scratch")
    assert a.train_images.shape == (12, 28, 28, 1) and a.test_images.shape == (7, 28, 28, 1)
    np.testing.assert_array_equal(a.train_images[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(a.test_images[..., 0], arrays["t10k-images-idx3-ubyte"])
    assert a.test_labels.tolist() == [0, 3, 6, 9, 2, 5, 8]
    assert a.class_names[0] == {"mnist": "0 - zero", "fashion-mnist": "T-shirt/top"}[name]
    assert a.class_names[9] == {"mnist": "9 - nine", "fashion-mnist": "Ankle boot"}[name]
    assert not list((tmp_path / "scratch").iterdir())          # gunzipped copies removed
    assert not (tmp_path / "data" / folder / "processed").exists()   # data_root left as it was


def test_mnist_with_a_missing_raw_file_is_not_found(tmp_path):
    write_mnist_raw(tmp_path / "MNIST" / "raw", np.random.default_rng(3), compress=True)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetUnavailable, match="t10k-labels-idx1-ubyte"):
        locate_source("mnist", tmp_path, probe_network=False)


# ---- SVHN (.mat files) ------------------------------------------------------------------------

def test_svhn_mat_files(tmp_path, md5_is_existence):
    from scipy.io import savemat

    rng = np.random.default_rng(4)
    mats = {}
    for split, n in (("train", 6), ("test", 4)):
        mats[split] = {"X": rng.integers(0, 256, (32, 32, 3, n)).astype(np.uint8),
                       "y": (np.arange(n) % 10 + 1).astype(np.uint8)[:, None]}   # SVHN writes 10 for a 0
        savemat(tmp_path / f"{split}_32x32.mat", mats[split])
    source = locate_source("svhn", tmp_path, probe_network=False)
    assert source.kind == "torchvision"
    a = decode(source, tmp_path / "scratch")
    assert a.train_images.shape == (6, 32, 32, 3) and a.test_images.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(a.train_images[2], mats["train"]["X"][..., 2])
    assert a.train_labels.tolist() == [1, 2, 3, 4, 5, 6]
    mats["test"]["y"][:] = 10
    savemat(tmp_path / "test_32x32.mat", mats["test"])
    assert decode(source, tmp_path / "scratch").test_labels.tolist() == [0, 0, 0, 0]
    assert a.class_names[0] == "0 - zero"


# ---- DTD (images/ + labels/{train,val,test}1.txt) --------------------------------------------

def write_dtd(folder: Path):
    """One image per class in each of train1/val1/test1; the first class's
    train image is a 96x32 (w x h) blue|red|green stripe, its test image a
    40x80 blue/red/green stack, the rest solid colours of odd sizes."""
    lines = {"train1.txt": [], "val1.txt": [], "test1.txt": []}
    for c, cls in enumerate(DTD_CLASSES):
        (folder / "images" / cls).mkdir(parents=True)
        for k, split in enumerate(lines):
            name = f"{cls}_{k:04d}.jpg"
            img = solid((45 + k, 37 + c % 5), (c * 5, k * 80, 0))
            if c == 0 and split == "train1.txt":
                img = stripes((96, 32), (BLUE, RED, GREEN))
            if c == 0 and split == "test1.txt":
                img = stripes((40, 80), (BLUE, RED, GREEN), vertical=False)
            img.save(folder / "images" / cls / name, format="PNG")   # lossless, whatever the suffix
            lines[split].append(f"{cls}/{name}")
    (folder / "labels").mkdir()
    for split, entries in lines.items():
        # real DTD lists are not sorted by class; reverse so order is taken from the file
        (folder / "labels" / split).write_text("\n".join(reversed(entries)) + "\n")


def test_dtd_resized_and_center_cropped_as_ctrl(tmp_path):
    write_dtd(tmp_path / "dtd" / "dtd")   # torchvision's layout
    source = locate_source("dtd", tmp_path, probe_network=False)
    assert source.kind == "dtd_folder"
    a = decode(source, tmp_path / "scratch")
    assert a.class_names == DTD_CLASSES
    assert a.train_images.shape == (94, 32, 32, 3) and a.test_images.shape == (47, 32, 32, 3)
    # train = train1 (in file order) then val1
    assert a.train_labels.tolist() == list(range(46, -1, -1)) * 2 and a.test_labels[-1] == 0
    # 96x32 stripes: already 32 high, so no scaling; the centre crop keeps the red middle third
    assert (a.train_images[46] == RED).all()
    # 40x80 stack -> scaled to 32x64, centre rows 16..47 = original rows 20..59: red in the middle
    # (bicubic blends only near the stripe borders at original rows 26 and 53)
    tall = a.test_images[-1].astype(int)
    assert (np.abs(tall[10:22] - RED).max(axis=-1) <= 3).all()
    assert tall[0, :, 2].mean() > 100 and tall[-1, :, 1].mean() > 100   # blue on top, green below
    # a solid image stays its colour
    assert (a.test_images[0] == (46 * 5, 160, 0)).all()


def test_dtd_archive_and_extracted_folder_agree(tmp_path):
    write_dtd(tmp_path / "extracted" / "dtd")     # the archive extracted into data_root
    (tmp_path / "archived").mkdir()
    with tarfile.open(tmp_path / "archived" / datasets.DTD_ARCHIVE, "w:gz") as tar:
        tar.add(tmp_path / "extracted" / "dtd", arcname="dtd")
    folder = locate_source("dtd", tmp_path / "extracted", probe_network=False)
    archive = locate_source("dtd", tmp_path / "archived", probe_network=False)
    assert (folder.kind, archive.kind) == ("dtd_folder", "dtd_archive")
    a, b = decode(folder, tmp_path / "s1"), decode(archive, tmp_path / "s2")
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    (tmp_path / "extracted" / "dtd" / "labels" / "val1.txt").unlink()
    with pytest.raises(DatasetUnavailable, match="val1.txt"):
        decode(folder, tmp_path / "s1")


# ---- MiniImageNet (pickle cache, image folder) ------------------------------------------------

WNIDS = [f"n{1000000 + 37 * i:08d}" for i in range(100)]


def test_miniimagenet_pickle_cache(tmp_path):
    order = np.random.default_rng(5).permutation(100)   # classes spread over the files out of order
    for part, classes in (("train", order[:64]), ("val", order[64:80]), ("test", order[80:])):
        n = len(classes)
        images = np.zeros((3 * n, 84, 84, 3), np.uint8)
        class_dict = {}
        for j, c in enumerate(classes):
            idx = [j, n + j, 2 * n + j]       # interleaved, as indices into image_data
            images[idx, 0, 0, 0] = c
            images[idx, 0, 0, 1] = [0, 1, 2]
            class_dict[WNIDS[c]] = idx
        with open(tmp_path / f"mini-imagenet-cache-{part}.pkl", "wb") as f:
            pickle.dump({"image_data": images, "class_dict": class_dict}, f, protocol=4)
    source = locate_source("miniimagenet", tmp_path, probe_network=False)
    assert source.kind == "pickle_cache"
    a = decode(source, tmp_path / "scratch")
    assert a.class_names == WNIDS and a.train_images.shape == (300, 84, 84, 3)
    assert a.test_images.shape == (0, 84, 84, 3) and a.test_labels.shape == (0,)
    assert np.bincount(a.train_labels).tolist() == [3] * 100
    np.testing.assert_array_equal(a.train_images[:, 0, 0, 0], a.train_labels)   # each image under its class
    assert a.train_images[:6, 0, 0, 1].tolist() == [0, 1, 2, 0, 1, 2]          # class_dict order kept
    save_images(tmp_path / "images.h5", a)
    assert load_label_info(tmp_path / "images.h5").image_shape == (84, 84, 3)


def test_miniimagenet_image_folder_is_resized_to_84(tmp_path):
    for i, wnid in enumerate(WNIDS):
        (tmp_path / "miniimagenet" / wnid).mkdir(parents=True)
        solid((100, 90), (i, 255 - i, 7)).save(tmp_path / "miniimagenet" / wnid / f"{wnid}_0001.png")
    source = locate_source("miniimagenet", tmp_path, probe_network=False)
    assert source.kind == "image_folder"
    a = decode(source, tmp_path / "scratch")
    assert a.train_images.shape == (100, 84, 84, 3) and a.class_names == WNIDS and len(a.test_labels) == 0
    assert a.train_images[42, 40, 40].tolist() == [42, 213, 7]


def test_miniimagenet_class_split_folders_are_joined(tmp_path):
    parts = {"train": WNIDS[:64:2] + WNIDS[1:64:2], "val": WNIDS[64:80], "test": WNIDS[80:]}
    for part, wnids in parts.items():
        for wnid in wnids:
            i = WNIDS.index(wnid)
            (tmp_path / "miniimagenet" / part / wnid).mkdir(parents=True)
            for k in range(2):
                solid((84, 84), (i, k, 0)).save(tmp_path / "miniimagenet" / part / wnid / f"{k}.png")
    a = decode(locate_source("miniimagenet", tmp_path, probe_network=False), tmp_path / "scratch")
    assert a.class_names == WNIDS and len(a.test_labels) == 0
    assert a.train_labels.tolist() == np.repeat(np.arange(100), 2).tolist()
    assert a.train_images[:, 0, 0, 0].tolist() == a.train_labels.tolist()
    assert a.train_images[:6, 0, 0, 1].tolist() == [0, 1] * 3


# ---- F-CelebA (LEAF JSON) ---------------------------------------------------------------------

def write_leaf(celeba: Path, json_dir=Path("data")):
    """Users "0", "1", "10", "2" (string order 0, 1, 10, 2); images 2 per user
    and split; the first train image of user "10" is black|white halves."""
    images = celeba / "data" / "raw" / "img_align_celeba"
    images.mkdir(parents=True)
    k = 0
    for split in ("train", "test"):
        user_data = {}
        for u, user in enumerate(["2", "10", "0", "1"]):        # file order is not string order
            xs, ys = [], []
            for j in range(2):
                name = f"{k:06d}.jpg"
                img = solid((178, 218), (int(user) * 10, j * 100, 50))
                if (split, user, j) == ("train", "10", 0):
                    halves = np.zeros((64, 64, 3), np.uint8)
                    halves[:, 32:] = 255
                    img = Image.fromarray(halves)
                img.save(images / name, format="PNG")
                xs.append(name)
                ys.append((u + j) % 2)
                k += 1
            user_data[user] = {"x": xs, "y": ys}
        (celeba / json_dir / split).mkdir(parents=True)
        (celeba / json_dir / split / f"all_data_iid_{split}.json").write_text(
            json.dumps({"users": list(user_data), "num_samples": [2] * 4, "user_data": user_data}))


def test_fceleba_leaf_json(tmp_path):
    write_leaf(tmp_path / "celeba")
    source = locate_source("fceleba", tmp_path, probe_network=False)
    assert source.kind == "leaf"
    a = decode(source, tmp_path / "scratch")
    assert a.user_names == ["0", "1", "10", "2"]     # CAT: users.sort(); first 10 = indices 0..9
    assert a.train_images.shape == (8, 32, 32, 3) and a.test_images.shape == (8, 32, 32, 3)
    assert a.class_names == ["not smiling", "smiling"]
    assert a.train_users.tolist() == [3, 3, 2, 2, 0, 0, 1, 1]
    assert a.train_labels.tolist() == [0, 1, 1, 0, 0, 1, 1, 0]
    assert a.test_users.tolist() == a.train_users.tolist()
    assert a.train_images[0, 16, 16].tolist() == [20, 0, 50]            # user "2", j=0
    halves = a.train_images[2].astype(int)                              # user "10": squashed, not cropped
    assert (halves[:, :15] == 0).all() and (halves[:, 17:] == 255).all()
    save_images(tmp_path / "images.h5", a)
    info = load_label_info(tmp_path / "images.h5")
    assert info.user_names == a.user_names and info.train_users.tolist() == a.train_users.tolist()
    assert info.coarse_names is None and info.train_coarse_labels is None


def test_fceleba_cat_copy_layout(tmp_path):
    write_leaf(tmp_path / "celeba", Path("small") / "iid")
    source = locate_source("fceleba", tmp_path, probe_network=False)
    assert decode(source, tmp_path / "scratch").train_labels.shape == (8,)


# ---- user image folders and the real MNIST-test PNGs ------------------------------------------

def write_tree(root: Path, classes, per_class, size=(20, 16), mode="RGB"):
    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for k in range(per_class):
            solid(size, (c * 40, k, 9) if mode == "RGB" else c * 40, mode).save(root / cls / f"{k:03d}.png")


def test_user_split_tree_single_folder_and_archive(tmp_path, registry):
    write_tree(tmp_path / "shapes" / "train", ["circle", "square", "star"], 4)
    write_tree(tmp_path / "shapes" / "test", ["circle", "square", "star"], 2)
    register_image_folder("shapes", "shapes")                     # relative to data_root
    a = decode(locate_source("shapes", tmp_path, probe_network=False), tmp_path / "scratch")
    assert a.class_names == ["circle", "square", "star"] and a.image_shape == (16, 20, 3)
    assert a.train_labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and a.test_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert a.train_images[5, 0, 0].tolist() == [40, 1, 9]

    write_tree(tmp_path / "gray" / "gray", ["a", "b"], 3, size=(12, 10), mode="L")
    with tarfile.open(tmp_path / "gray.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "gray" / "gray", arcname="gray")
    register_image_folder("gray", tmp_path / "gray.tar.gz", image_shape=(8, 8, 3))   # absolute, resized
    source = locate_source("gray", tmp_path / "elsewhere", probe_network=False)
    assert source.kind == "image_folder_archive"
    g = decode(source, tmp_path / "scratch")
    assert g.train_images.shape == (6, 8, 8, 3) and g.test_images.shape == (0, 8, 8, 3)
    assert (g.train_images[3] == 40).all()    # class b, grey 40 in all three channels
    assert not any((tmp_path / "scratch").iterdir())
    assert "gray" in registry   # the fixture removes it again after the test

    write_tree(tmp_path / "shapes" / "val", ["circle", "square", "star"], 1)      # val joins train
    v = decode(locate_source("shapes", tmp_path, probe_network=False), tmp_path / "scratch")
    assert v.train_labels.tolist() == a.train_labels.tolist() + [0, 1, 2] and len(v.test_labels) == 6
    write_tree(tmp_path / "shapes" / "val" / "hexagon", ["x"], 1)
    with pytest.raises(DatasetUnavailable, match="share some class folders"):
        decode(locate_source("shapes", tmp_path, probe_network=False), tmp_path / "scratch")


def test_real_mnist_test_png_slice(tmp_path, registry):
    if not MNIST_ARCHIVE.is_file():
        pytest.fail(f"the real MNIST-test copy is missing: {MNIST_ARCHIVE} (set PAR_SHARED_DATA)")
    taken = {}
    with tarfile.open(MNIST_ARCHIVE) as tar:     # the first 20 of each digit: mnist-t10k/<digit>/NNNNN.png
        for member in tar:
            parts = Path(member.name).parts
            if member.isfile() and len(parts) == 3 and taken.get(parts[1], 0) < 20:
                (tmp_path / "src" / parts[0] / parts[1]).mkdir(parents=True, exist_ok=True)
                (tmp_path / "src" / member.name).write_bytes(tar.extractfile(member).read())
                taken[parts[1]] = taken.get(parts[1], 0) + 1
    with tarfile.open(tmp_path / "mnist-t10k-png.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "mnist-t10k", arcname="mnist-t10k")
    register_image_folder("mnist-t10k", "mnist-t10k-png.tar.gz")
    a = decode(locate_source("mnist-t10k", tmp_path, probe_network=False), tmp_path / "scratch")
    assert a.class_names == [str(d) for d in range(10)]
    assert a.train_images.shape == (200, 28, 28, 1) and a.test_images.shape == (0, 28, 28, 1)
    assert np.bincount(a.train_labels).tolist() == [20] * 10
    ink = [a.train_images[a.train_labels == d].mean() for d in range(10)]
    assert 15 < np.mean(ink) < 60 and ink[1] < ink[0] and ink[1] < ink[8]   # a "1" has the least ink
    assert (a.train_images[:, 0, 0] == 0).all()                            # black borders


def test_user_folder_errors(tmp_path, registry):
    with pytest.raises(ValueError, match="built-in"):
        register_image_folder("cifar10", tmp_path)
    register_image_folder("mine", tmp_path / "mine")
    register_image_folder("mine", tmp_path / "mine")                  # same again: fine
    with pytest.raises(ValueError, match="already registered"):
        register_image_folder("mine", tmp_path / "other")
    with pytest.raises(ValueError, match="image_shape"):
        register_image_folder("bad", tmp_path, image_shape=(8, 8, 2))
    with pytest.raises(DatasetUnavailable) as err:
        locate_source("mine", tmp_path, probe_network=False)
    assert str(tmp_path / "mine") in str(err.value) and "no public download" in str(err.value)
    write_tree(tmp_path / "mine" / "a", ["x"], 1, size=(10, 10))
    write_tree(tmp_path / "mine" / "b", ["y"], 1, size=(12, 10))
    with pytest.raises(DatasetUnavailable, match="expected 10x10"):
        decode(locate_source("mine", tmp_path, probe_network=False), tmp_path / "scratch")
    shapes = datasets.register_image_folders({"f1": "a/b", "f2": {"path": "/c", "image_shape": [4, 4, 1]}})
    assert [(i.user_path, i.image_shape) for i in shapes] == [("a/b", None), ("/c", (4, 4, 1))]
    with pytest.raises(ValueError, match="needs a 'path'"):
        datasets.register_image_folders({"f3": {"image_shape": [4, 4, 1]}})
    with pytest.raises(KeyError, match="known: .*fceleba"):
        locate_source("nope", tmp_path)


def test_builtin_folders_must_hold_the_datasets_classes_and_shape(tmp_path):
    write_tree(tmp_path / "cifar10-jpg" / "train", ["cat", "dog"], 1, size=(32, 32))
    write_tree(tmp_path / "cifar10-jpg" / "test", ["cat", "dog"], 1, size=(32, 32))
    with pytest.raises(DatasetUnavailable, match="has 2 classes; cifar10 has 10"):
        decode(locate_source("cifar10", tmp_path, probe_network=False), tmp_path / "scratch")
    write_tree(tmp_path / "svhn-png" / "train", [str(d) for d in range(10)], 1, size=(30, 32))
    write_tree(tmp_path / "svhn-png" / "test", [str(d) for d in range(10)], 1, size=(30, 32))
    with pytest.raises(DatasetUnavailable, match="30x32 pixels; expected 32x32"):   # not silently resized
        decode(locate_source("svhn", tmp_path, probe_network=False), tmp_path / "scratch")


# ---- offline: one message per missing dataset --------------------------------------------------

@pytest.mark.parametrize("name,needles", [
    ("cifar100", ["cifar-100-python.tar.gz", "cifar-100-python/", "cifar100-jpg.tar.gz"]),
    ("mnist", ["MNIST/raw/", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", ".gz", "mnist-png"]),
    ("fashion-mnist", ["FashionMNIST/raw/", "train-labels-idx1-ubyte"]),
    ("svhn", ["train_32x32.mat", "test_32x32.mat"]),
    ("dtd", ["dtd-r1.0.1.tar.gz", "dtd/images/<class>", "train1,val1,test1"]),
    ("miniimagenet", ["mini-imagenet-cache-train.pkl", "mini-imagenet-cache-test.pkl", "miniimagenet/<wnid>",
                      "no public download"]),
    ("fceleba", ["celeba/data/train/*.json", "celeba/data/test/*.json", "data/raw/img_align_celeba",
                 "small/iid", "no public download"]),
])
def test_offline_message_names_what_to_place_where(tmp_path, monkeypatch, name, needles):
    monkeypatch.setattr(datasets.registry, "url_reachable", lambda url, timeout_seconds=5.0: False)
    with pytest.raises(DatasetUnavailable) as err:
        locate_source(name, tmp_path / "nowhere")
    message = str(err.value)
    for needle in [name, str(tmp_path / "nowhere"), "data_root", *needles]:
        assert needle in message, (needle, message)
    if DATASETS[name].download_url:
        assert "offline" in message
        monkeypatch.setattr(datasets.registry, "url_reachable", lambda url, timeout_seconds=5.0: True)
        assert locate_source(name, tmp_path / "nowhere").kind == "download"


# ---- images.h5 ----------------------------------------------------------------------------------

def test_cache_keeps_shapes_coarse_labels_and_old_readers(tmp_path):
    rng = np.random.default_rng(6)
    a = datasets.ImageArrays(
        rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8), np.array([0, 1, 2, 1, 0]),
        rng.integers(0, 256, (2, 28, 28, 1), dtype=np.uint8), np.array([2, 2]), ["a", "b", "c"], "test",
        coarse_names=["ab", "c"], train_coarse_labels=np.array([0, 0, 1, 0, 0]), test_coarse_labels=np.array([1, 1]))
    save_images(tmp_path / "images.h5", a)
    back = load_images(tmp_path / "images.h5")
    np.testing.assert_array_equal(back.train_images, a.train_images)
    assert back.image_shape == (28, 28, 1) and back.coarse_names == ["ab", "c"] and back.user_names is None
    assert back.train_coarse_labels.tolist() == [0, 0, 1, 0, 0] and back.test_users is None
    train, test, names = load_labels(tmp_path / "images.h5")
    assert test.tolist() == [2, 2] and names == ["a", "b", "c"]
    users = [f"user{i:05d}" for i in range(10000)]    # as many as LEAF's full CelebA has
    a.user_names, a.train_users, a.test_users = users, np.array([0, 9999, 5, 5, 0]), np.array([7, 7])
    save_images(tmp_path / "users.h5", a)
    info = load_label_info(tmp_path / "users.h5")
    assert info.user_names == users and info.train_users.tolist() == [0, 9999, 5, 5, 0]
    assert info.coarse_names == ["ab", "c"] and info.image_shape == (28, 28, 1)
    with pytest.raises(ValueError, match="go together"):
        datasets.ImageArrays(a.train_images, a.train_labels, a.test_images, a.test_labels, a.class_names, "x",
                             coarse_names=["ab", "c"])
    with pytest.raises(ValueError, match="labels outside"):
        datasets.ImageArrays(a.train_images, a.train_labels + 5, a.test_images, a.test_labels, a.class_names, "x")
