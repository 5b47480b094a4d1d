"""The plan (checkpoint), cell searches and one learn-task job per (run, task)."""
from par.learners import STRATEGIES


checkpoint plan:
    """Groups and a strategy per task from distances and training-set sizes (SPEC §3)."""
    input:
        distances=results("relatedness/{bench}/seed{seed}/distances.parquet"),
        stream=stream_path,
    output:
        plan=results("runs/{bench}/seed{seed}/{run}/plan.json"),
    params:
        planning=lambda w: RUNS[w.run]["planning"],
    log:
        results("logs/plan/{bench}/seed{seed}/{run}.log"),
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/plan.py"


rule search_cell:
    """MDL search of a cell for an allocate-search task (SPEC §4)."""
    input:
        images=images_path,
        stream=stream_path,
    output:
        results("runs/{bench}/seed{seed}/{run}/cells/task{task}.json"),
    params:
        search=lambda w: RUNS[w.run]["search"],
    threads: config["threads"]
    resources:
        gpu=gpu_request,
        mem_mb=8000,
        runtime=240,
    log:
        results("logs/search_cell/{bench}/seed{seed}/{run}/task{task}.log"),
    benchmark:
        results("benchmarks/search_cell/{bench}/seed{seed}/{run}/task{task}.tsv")
    script:
        "../scripts/search_cell.py"


def training_params(wildcards):
    """The run's training settings that matter for this task's strategy."""
    settings = dict(RUNS[wildcards.run]["training"])
    if not STRATEGIES[assignment(wildcards)["strategy"]].early_stopping:
        settings.pop("patience")
    return settings


def strategy_params(wildcards):
    """Fresh-body spec and LwF settings, only where the strategy uses them."""
    a = assignment(wildcards)
    strategy = a["strategy"]
    return {
        "body": body_spec(wildcards) if STRATEGIES[strategy].fresh_body or a["predecessor"] is None else None,
        "lwf": RUNS[wildcards.run]["lwf"] if strategy == "regularize" else None,
    }


rule learn_task:
    """Learn one task from its predecessor's state and test the new state (SPEC §5, §7)."""
    input:
        unpack(learn_task_input),
    output:
        state=results("runs/{bench}/seed{seed}/{run}/states/task{task}.pt"),
        record=results("runs/{bench}/seed{seed}/{run}/states/task{task}.json"),
    params:
        assignment=assignment,
        training=training_params,
        strategy=strategy_params,
    threads: config["threads"]
    resources:
        gpu=gpu_request,
        mem_mb=8000,
        runtime=360,
    log:
        results("logs/learn_task/{bench}/seed{seed}/{run}/task{task}.log"),
    benchmark:
        results("benchmarks/learn_task/{bench}/seed{seed}/{run}/task{task}.tsv")
    script:
        "../scripts/learn_task.py"
