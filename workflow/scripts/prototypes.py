"""Rule prototypes: class means of one task's features (Eq. 2)."""
from par.relatedness.extractor import load_features
from par.infra.logs import job_log
from par.infra.provenance import provenance, read_provenance
from par.relatedness.distances import class_prototypes, save_prototypes

with job_log(snakemake.log[0]) as log:
    tf = load_features(snakemake.input[0])
    prototypes = {tf.task: (tf.classes, class_prototypes(tf.features, tf.labels, len(tf.classes)))}
    log.info("task %d: %d prototypes from %d features", tf.task, len(tf.classes), len(tf.labels))
    save_prototypes(snakemake.output[0], prototypes, tf.weights,
                    provenance(snakemake.params, "cpu", extractor_weights=tf.weights,
                               upstream=[read_provenance(p) for p in snakemake.input]))
