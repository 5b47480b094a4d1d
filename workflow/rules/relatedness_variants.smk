"""Distances of a run whose `relatedness` settings differ from the global ones
(the switch ablation of SPEC §1-2). Same scripts as relatedness.smk; the default
files there are untouched."""


def _global_split(wildcards):
    return RELATEDNESS_VARIANTS[wildcards.variant]["distance_split"] == config["relatedness"]["distance_split"]


def variant_features(wildcards):
    """The variant's features: the default files for the global split, else its own split's."""
    split = RELATEDNESS_VARIANTS[wildcards.variant]["distance_split"]
    if _global_split(wildcards):
        return task_features(wildcards)
    return [results(f"features/{wildcards.bench}/seed{wildcards.seed}/split-{split}/task{t}.h5")
            for t in range(1, n_tasks(wildcards.bench) + 1)]


def variant_prototypes(wildcards):
    """The default prototypes for the global split, else the variant's own."""
    folder = f"relatedness/{wildcards.bench}/seed{wildcards.seed}"
    if _global_split(wildcards):
        return results(f"features/{wildcards.bench}/seed{wildcards.seed}/prototypes.h5")
    return results(f"{folder}/variants/{wildcards.variant}/prototypes.h5")


rule extract_features_split:
    """ResNet18 features (n, 512) of one task's `split` images, for a relatedness variant (SPEC §1)."""
    input:
        images=images_path,
        stream=stream_path,
    output:
        results("features/{bench}/seed{seed}/split-{split}/task{task}.h5"),
    params:
        weights=config["extractor"]["weights"],
        weights_seed=config["extractor"]["seed"],
        split=lambda w: w.split,
    threads: config["threads"]
    resources:
        gpu=gpu_request,
        mem_mb=4000,
        runtime=30,
    log:
        results("logs/extract_features/{bench}/seed{seed}/split-{split}/task{task}.log"),
    benchmark:
        results("benchmarks/extract_features/{bench}/seed{seed}/split-{split}/task{task}.tsv")
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/extract_features.py"


rule prototypes_split:
    """Class prototypes of a relatedness variant's features (Eq. 2)."""
    input:
        variant_features,
    output:
        results("relatedness/{bench}/seed{seed}/variants/{variant}/prototypes.h5"),
    localrule: True
    log:
        results("logs/prototypes/{bench}/seed{seed}/variants/{variant}.log"),
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/prototypes.py"


rule variant_distances:
    """KL(q_i || q_j) of every pair of tasks under a run's relatedness settings (Eq. 4)."""
    input:
        features=variant_features,
        prototypes=variant_prototypes,
    output:
        table=results("relatedness/{bench}/seed{seed}/variants/{variant}/distances.parquet"),
        heatmap=results("relatedness/{bench}/seed{seed}/variants/{variant}/distances.png"),
    params:
        clamp_per_class=lambda w: RELATEDNESS_VARIANTS[w.variant]["clamp_per_class"],
        zero_is_far=lambda w: RELATEDNESS_VARIANTS[w.variant]["zero_is_far"],
        epsilon=lambda w: RELATEDNESS_VARIANTS[w.variant]["epsilon"],
    localrule: True
    log:
        results("logs/distances/{bench}/seed{seed}/variants/{variant}.log"),
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/distances.py"
