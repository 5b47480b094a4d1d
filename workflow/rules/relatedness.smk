"""Frozen-extractor features, class prototypes and the Nearest-Prototype KL matrix.

One rule per stage, for the global `relatedness` settings and for a run whose
settings differ (the switch ablation of docs/spec.md §1-2): the wildcard `split_folder`
is empty for the global distance split or `split-<split>/`, and `variant_folder`
is empty for the global settings or `variants/<variant>/` (par.infra.config.relatedness_variant)."""


rule extract_features:
    """ResNet18 features (n, 512) of one task's distance split (docs/spec.md §1)."""
    priority: RELATEDNESS_PRIORITY
    input:
        images=get_images_path,
        task=get_task_json,
    output:
        results_path("features"),
    params:
        code=code_version("extract_features.py"),
        weights=config["extractor"]["weights"],
        weights_seed=config["extractor"]["seed"],
        split=get_feature_split,
    threads: config["threads"]
    resources:
        gpu=get_gpu_request,
        mem_mb=mem_mb_per_attempt(4000),
        runtime=30,
    log:
        results("logs/extract_features/{bench}/seed{seed}/{split_folder}task{task}.log"),
    benchmark:
        results("benchmarks/extract_features/{bench}/seed{seed}/{split_folder}task{task}.tsv")
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/extract_features.py"


rule prototypes:
    """Class prototypes (class means of the features) of one task (Eq. 2)."""
    priority: RELATEDNESS_PRIORITY
    localrule: True
    input:
        results_path("features"),
    output:
        results_path("prototypes"),
    params:
        code=code_version("prototypes.py"),
    log:
        results("logs/prototypes/{bench}/seed{seed}/{split_folder}task{task}.log"),
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/prototypes.py"


rule distances:
    """KL(q_i || q_j) for every pair of tasks (Eq. 4), as Parquet and a heatmap."""
    priority: RELATEDNESS_PRIORITY
    localrule: True
    input:
        features=get_variant_features,
        prototypes=get_variant_prototypes,
    output:
        table=results_path("distances"),
        heatmap=results_path("distance_heatmap"),
    params:
        code=code_version("distances.py"),
        clamp_per_class=lambda w: get_relatedness(w)["clamp_per_class"],
        epsilon=lambda w: get_relatedness(w)["epsilon"],
    log:
        results("logs/distances/{bench}/seed{seed}/{variant_folder}distances.log"),
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/distances.py"
