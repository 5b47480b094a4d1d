"""Datasets decoded once, and each task of a benchmark's stream per seed."""


rule decode_dataset:
    """Find (or download) a dataset under data_root and decode it into uint8 arrays."""
    localrule: True
    output:
        results_path("images"),
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
    """One task of a stream for one seed: classes, train/val/test indices, normalisation
    and transforms (docs/spec.md §8). Per task, so that appending a task to a stream leaves
    the earlier tasks' files (and everything computed from them) as they are."""
    localrule: True
    input:
        unpack(get_prepare_task_input),
    output:
        results_path("task"),
    params:
        task=get_task_spec,
        code=code_version("prepare_stream.py"),
        stream=as_param(config["stream"]),
    log:
        results("logs/prepare_stream/{bench}/seed{seed}/task{task}.log"),
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/prepare_stream.py"
