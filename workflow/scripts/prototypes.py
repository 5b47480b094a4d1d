"""Rule prototypes: class means of every task's features (Eq. 2)."""
from par.extractor import load_features
from par.logs import job_log
from par.provenance import provenance, read_provenance
from par.relatedness import class_prototypes, save_prototypes

with job_log(snakemake.log[0]) as log:
    prototypes, weights = {}, set()
    for path in snakemake.input:
        tf = load_features(path)
        prototypes[tf.task] = (tf.classes, class_prototypes(tf.features, tf.labels, len(tf.classes)))
        weights.add(tf.weights)
        log.info("task %d: %d prototypes from %d features", tf.task, len(tf.classes), len(tf.labels))
    if len(weights) != 1:
        raise RuntimeError(f"features were made with different extractor weights: {sorted(weights)}; re-run them")
    weights = weights.pop()
    save_prototypes(snakemake.output[0], prototypes, weights,
                    provenance(snakemake.params, "cpu", extractor_weights=weights,
                               upstream=[read_provenance(p) for p in snakemake.input]))
