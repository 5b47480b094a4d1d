"""Image datasets: locate a source, download it when online, decode it once.

Every dataset the paper's benchmarks need (docs/spec.md §8) is an entry of the
registry :data:`DATASETS`; a user's own image folder joins it through
:func:`register_image_folder`.  Whatever the source, :func:`decode` turns it
into :class:`ImageArrays` (uint8 ``(n, H, W, C)`` images at the dataset's
native shape, int64 labels) and :func:`save_images` writes them once to
``images.h5``, which every later stage reads.

=================  ==========  =========================================================
name               images      sources under ``data_root``, tried in this order
=================  ==========  =========================================================
``cifar10``        32×32×3     torchvision's ``cifar-10-batches-py/`` (or
                               ``cifar-10-python.tar.gz``); image-folder tree
                               ``data_root`` itself or ``cifar10-jpg/``; its ``.tar.gz``;
                               download
``cifar100``       32×32×3     as CIFAR-10 (``cifar-100-python/``); adds the 20
                               superclass ("coarse") labels (CIFAR100-coarse)
``mnist``          28×28×1     torchvision's ``MNIST/raw/{train,t10k}-{images-idx3,
                               labels-idx1}-ubyte`` (plain or ``.gz``); tree; download
``fashion-mnist``  28×28×1     as MNIST in ``FashionMNIST/raw/``
``svhn``           32×32×3     ``train_32x32.mat`` and ``test_32x32.mat``; tree; download
``dtd``            32×32×3     ``dtd/dtd/{images,labels}`` (torchvision) or
                               ``dtd/{images,labels}`` (the extracted archive) or
                               ``dtd-r1.0.1.tar.gz``; download
``miniimagenet``   84×84×3     ``mini-imagenet-cache-{train,val,test}.pkl`` (in
                               ``data_root`` or ``miniimagenet/``); image folder
                               ``miniimagenet/<class>/*.jpg`` or
                               ``miniimagenet/{train,val,test}/<class>/*.jpg``; its ``.tar.gz``
``fceleba``        32×32×3     LEAF's CelebA: ``celeba/data/{train,test}/*.json`` (or
                               ``celeba/small/iid/{train,test}/*.json``, CAT's copy) and
                               ``celeba/data/raw/img_align_celeba/*.jpg``
=================  ==========  =========================================================

Every dataset also accepts an image-folder tree ``<name>-jpg/`` or ``<name>-png/``
(``train/<class>/*`` and ``test/<class>/*``) and a ``.tar.gz`` of it.

Conventions:

* Class order: torchvision's (CIFAR, MNIST, F-MNIST), or folder names sorted
  (image folders, DTD, as :class:`torchvision.datasets.ImageFolder` and CTrL),
  or WordNet ids sorted (MiniImageNet).  SVHN's digit 0 is label 0 (torchvision
  maps the file's 10 to 0); SVHN's class names are MNIST's, as in CTrL.
* Datasets with no official test split (MiniImageNet, a single-folder user
  dataset) put every image in the train split; the test arrays are empty,
  ``(0, H, W, C)``.  The benchmark cuts its own splits from train
  (MiniImageNet-20: 480/60/60 per class).
* DTD images vary in size; like CTrL (``ctrl/instances/DTD.py``) they are
  scaled (bicubic) so that the shorter side is 32, then centre-cropped to
  32×32 at decode time; train = ``train1.txt`` + ``val1.txt``, test =
  ``test1.txt``.  MNIST / F-MNIST stay 28×28×1: CTrL's bilinear resize to
  32×32 and channel expansion are the stream's transforms.
* F-CelebA: as CAT's loader (``dataloaders/mixceleba.py``): binary "smiling"
  labels, each image resized to 32×32 by ``transforms.Resize((32, 32))``
  (PIL bilinear).  Per-sample user ids index ``user_names``, which are sorted
  in string order, so CAT's "first 10 users" are user indices 0–9.

One module per source format (``image_folder``, ``cifar``, ``mnist``, ``svhn``,
``dtd``, ``miniimagenet``, ``leaf``), the registry and decoding in ``registry``,
and ``images.h5`` I/O in ``hdf5``; this module (the built-in datasets registered in
:data:`DATASETS`) is the API.

Nothing here imports torch or torchvision at module level (parsing the
workflow stays fast); the functions that decode or download import them.
"""

from par.streams.datasets.cifar import cifar100_coarse_table, cifar_info
from par.streams.datasets.dtd import DTD_ARCHIVE, dtd_info
from par.streams.datasets.hdf5 import LabelInfo, load_images, load_label_info, load_labels, save_images
from par.streams.datasets.image_folder import register_image_folder, register_image_folders
from par.streams.datasets.leaf import fceleba_info
from par.streams.datasets.miniimagenet import miniimagenet_info
from par.streams.datasets.mnist import MNIST_RAW_FILES, mnist_info
from par.streams.datasets.registry import (DATASETS, DatasetInfo, DatasetUnavailable, DataSource, ImageArrays, decode,
                                   locate_source, url_reachable)
from par.streams.datasets.svhn import svhn_info

DATASETS.update({
    "cifar10": cifar_info("cifar10"),
    "cifar100": cifar_info("cifar100"),
    "mnist": mnist_info("mnist"),
    "fashion-mnist": mnist_info("fashion-mnist"),
    "svhn": svhn_info(),
    "dtd": dtd_info(),
    "miniimagenet": miniimagenet_info(),
    "fceleba": fceleba_info(),
})

__all__ = ["DATASETS", "DTD_ARCHIVE", "MNIST_RAW_FILES", "DataSource", "DatasetInfo", "DatasetUnavailable",
           "ImageArrays", "LabelInfo", "cifar100_coarse_table", "decode", "load_images", "load_label_info",
           "load_labels", "locate_source", "register_image_folder", "register_image_folders",
           "save_images", "url_reachable"]
