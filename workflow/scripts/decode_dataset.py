"""Rule decode_dataset: find (or download) a dataset and decode it to images.h5."""
from pathlib import Path

from par.streams.datasets.catalog import decode, locate_source, register_image_folders, save_images
from par.infra.logs import job_log

with job_log(snakemake.log[0]) as log:
    # data_root says where the data lives, not what is computed: it is read from the
    # config rather than params so that moving the data does not invalidate anything.
    register_image_folders(snakemake.config["datasets"])  # a user's image folders (config key datasets)
    source = locate_source(snakemake.wildcards.dataset, snakemake.config["data_root"])
    log.info("reading %s", source.describe())
    arrays = decode(source, scratch_dir=Path(snakemake.output[0]).parent)
    log.info("%d train and %d test images of shape %s, %d classes%s%s", len(arrays.train_labels),
             len(arrays.test_labels), arrays.image_shape, len(arrays.class_names),
             f", {len(arrays.coarse_names)} coarse classes" if arrays.coarse_names else "",
             f", {len(arrays.user_names)} users" if arrays.user_names else "")
    save_images(snakemake.output[0], arrays)
