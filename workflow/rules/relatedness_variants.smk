"""Distances of a run whose `relatedness` settings differ from the global ones
(the switch ablation of SPEC §1-2). Same scripts as relatedness.smk; the default
files there are untouched."""


rule extract_features_split:
    """ResNet18 features (n, 512) of one task's `split` images, for a relatedness variant (SPEC §1)."""
    input:
        images=images_path,
        task=task_json,
    output:
        results("features/{bench}/seed{seed}/split-{split}/task{task}.h5"),
    params:
        code=code_version("extract_features.py"),
        weights=config["extractor"]["weights"],
        weights_seed=config["extractor"]["seed"],
        split=lambda w: w.split,
    threads: config["threads"]
    resources:
        gpu=gpu_request,
        mem_mb=mem_mb_per_attempt(4000),
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
    """Class prototypes of one task's `split` features, for a relatedness variant (Eq. 2)."""
    input:
        results("features/{bench}/seed{seed}/split-{split}/task{task}.h5"),
    output:
        results("features/{bench}/seed{seed}/split-{split}/prototypes/task{task}.h5"),
    params:
        code=code_version("prototypes.py"),
    localrule: True
    log:
        results("logs/prototypes/{bench}/seed{seed}/split-{split}/task{task}.log"),
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
        code=code_version("distances.py"),
        clamp_per_class=lambda w: RELATEDNESS_VARIANTS[w.variant]["clamp_per_class"],
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
