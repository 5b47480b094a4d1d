"""Datasets decoded once, and each benchmark's task stream per seed."""


rule decode_dataset:
    """Find (or download) a dataset under data_root and decode it into uint8 arrays."""
    output:
        results("data/{dataset}/images.h5"),
    params:
        code=code_version("decode_dataset.py"),
    log:
        results("logs/decode_dataset/{dataset}.log"),
    benchmark:
        results("benchmarks/decode_dataset/{dataset}.tsv")
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/decode_dataset.py"


rule prepare_stream:
    """Tasks of a benchmark for one seed: classes and train/val/test indices (SPEC §8)."""
    input:
        images=images_path,
    output:
        results("data/{bench}/seed{seed}/stream.json"),
    params:
        code=code_version("prepare_stream.py"),
        stream=config["stream"],
    log:
        results("logs/prepare_stream/{bench}/seed{seed}.log"),
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/prepare_stream.py"
