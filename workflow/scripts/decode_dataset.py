"""Rule decode_dataset: find (or download) a dataset and decode it to images.h5."""
from pathlib import Path

from par.datasets import decode, locate_source, save_images
from par.logs import job_log
from par.streams import decode_user_dataset

with job_log(snakemake.log[0]) as log:
    # data_root says where the data lives, not what is computed: it is read from the
    # config rather than params so that moving the data does not invalidate anything.
    name, scratch = snakemake.wildcards.dataset, Path(snakemake.output[0]).parent
    user = snakemake.config["datasets"].get(name)
    if user is not None:
        log.info("reading the user dataset %s from %s", name, user["path"])
        arrays = decode_user_dataset(name, user["path"], scratch)
    else:
        source = locate_source(name, snakemake.config["data_root"])
        log.info("reading %s", source.describe())
        arrays = decode(source, scratch_dir=scratch)
    log.info("%d train and %d test images of %d classes", len(arrays.train_labels), len(arrays.test_labels),
             len(arrays.class_names))
    save_images(snakemake.output[0], arrays)
