"""Frozen-extractor features, class prototypes and the Nearest-Prototype KL matrix."""


rule extract_features:
    """ResNet18 features (n, 512) of one task's distance split (SPEC §1)."""
    input:
        images=images_path,
        task=task_json,
    output:
        results("features/{bench}/seed{seed}/task{task}.h5"),
    params:
        code=code_version("extract_features.py"),
        weights=config["extractor"]["weights"],
        weights_seed=config["extractor"]["seed"],
        split=config["relatedness"]["distance_split"],
    threads: config["threads"]
    resources:
        gpu=gpu_request,
        mem_mb=mem_mb_per_attempt(4000),
        runtime=30,
    log:
        results("logs/extract_features/{bench}/seed{seed}/task{task}.log"),
    benchmark:
        results("benchmarks/extract_features/{bench}/seed{seed}/task{task}.tsv")
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/extract_features.py"


rule prototypes:
    """Class prototypes (class means of the features) of one task (Eq. 2)."""
    input:
        results("features/{bench}/seed{seed}/task{task}.h5"),
    output:
        results("features/{bench}/seed{seed}/prototypes/task{task}.h5"),
    params:
        code=code_version("prototypes.py"),
    log:
        results("logs/prototypes/{bench}/seed{seed}/task{task}.log"),
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/prototypes.py"


rule distances:
    """KL(q_i || q_j) for every pair of tasks (Eq. 4), as Parquet and a heatmap."""
    input:
        features=task_features,
        prototypes=task_prototypes,
    output:
        table=results("relatedness/{bench}/seed{seed}/distances.parquet"),
        heatmap=results("relatedness/{bench}/seed{seed}/distances.png"),
    params:
        code=code_version("distances.py"),
        clamp_per_class=config["relatedness"]["clamp_per_class"],
        epsilon=config["relatedness"]["epsilon"],
    log:
        results("logs/distances/{bench}/seed{seed}.log"),
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/distances.py"
