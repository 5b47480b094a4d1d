"""Rule distances: the Nearest-Prototype KL matrix (Eq. 4) as Parquet and a heatmap."""
import pandas as pd

from par.infra import schemas
from par.relatedness.extractor import load_features
from par.infra.io import write_parquet
from par.infra.logs import job_log
from par.results.plots import distance_heatmap
from par.infra.provenance import provenance, provenance_json, read_provenance
from par.relatedness.distances import distance_matrix, load_prototypes, prototype_weights

with job_log(snakemake.log[0]) as log:
    features = sorted((load_features(p) for p in snakemake.input.features), key=lambda tf: tf.task)
    weights = {prototype_weights(p) for p in snakemake.input.prototypes} | {tf.weights for tf in features}
    if len(weights) != 1:
        raise RuntimeError(f"features were made with different extractor weights: {sorted(weights)}; re-run them")
    prototypes = {t: p for path in snakemake.input.prototypes for t, p in load_prototypes(path).items()}
    matrix = distance_matrix([tf.features for tf in features], [tf.labels for tf in features],
                             [prototypes[tf.task] for tf in features], clamp_per_class=snakemake.params.clamp_per_class,
                             epsilon=snakemake.params.epsilon)
    n = len(features)
    frame = pd.DataFrame([{"i": i + 1, "j": j + 1, "kl": matrix[i, j]} for i in range(n) for j in range(n)])
    weights = features[0].weights
    log.info("KL(q_i || q_j), rows i, columns j, extractor %s:\n%s", weights,
             pd.DataFrame(matrix, index=range(1, n + 1), columns=range(1, n + 1)).round(4).to_string())
    write_parquet(snakemake.output.table, frame, schemas.DISTANCES,
                  metadata={"extractor_weights": weights, "split": features[0].split,
                            "provenance": provenance_json(provenance(
                                snakemake.params, "cpu", extractor_weights=weights,
                                upstream=[read_provenance(p) for p in [*snakemake.input.features,
                                                                       *snakemake.input.prototypes]]))})
    bench, seed = snakemake.wildcards.bench, snakemake.wildcards.seed
    distance_heatmap(matrix, snakemake.output.heatmap, f"{bench} seed {seed}: task distances\n({weights})")
