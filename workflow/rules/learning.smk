"""The plan (checkpoint), cell searches and one learn-task job per (run, task)."""


checkpoint plan:
    """Groups and a strategy per task from distances and training-set sizes (docs/spec.md §3)."""
    priority: RELATEDNESS_PRIORITY
    localrule: True
    input:
        distances=get_run_distances,
        tasks=get_all_task_jsons,
    output:
        plan=results_path("plan"),
    params:
        code=code_version("plan.py"),
        planning=lambda w: as_param(RUNS[w.run]["planning"]),
        zero_is_far=lambda w: RUNS[w.run]["relatedness"]["zero_is_far"],
    log:
        results("logs/plan/{bench}/seed{seed}/{run}.log"),
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/plan.py"


rule search_cell:
    """MDL search of a cell for an allocate-search task (docs/spec.md §4)."""
    input:
        images=get_images_path,
        task=get_task_json,
    output:
        results_path("cell"),
    params:
        code=code_version("search_cell.py"),
        search=get_search_params,
    threads: config["threads"]
    priority: get_priority
    resources:
        gpu=get_gpu_request,
        mem_mb=mem_mb_per_attempt(8000),
        runtime=240,
    log:
        results("logs/search_cell/{bench}/seed{seed}/{run}/task{task}.log"),
    benchmark:
        results("benchmarks/search_cell/{bench}/seed{seed}/{run}/task{task}.tsv")
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/search_cell.py"


rule learn_task:
    """Learn one task from its predecessor's state and test the new state (docs/spec.md §5, §7)."""
    input:
        unpack(get_learn_task_input),
    output:
        state=results_path("state"),
        record=results_path("record"),
    params:
        code=get_learn_code,
        modules=get_learn_modules,
        assignment=get_assignment,
        training=get_training_params,
        strategy=get_strategy_params,
    threads: config["threads"]
    priority: get_priority
    resources:
        gpu=get_gpu_request,
        mem_mb=mem_mb_per_attempt(8000),
        runtime=360,
    log:
        results("logs/learn_task/{bench}/seed{seed}/{run}/task{task}.log"),
    benchmark:
        results("benchmarks/learn_task/{bench}/seed{seed}/{run}/task{task}.tsv")
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/learn_task.py"
