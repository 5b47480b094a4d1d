"""PAR (Wang et al., CVPR 2023) reproduction pipeline.

    snakemake all_tables --cores 2 --configfile config/demo.yaml       # CPU demo, minutes
    snakemake all_tables --report report.html --configfile config/demo.yaml  # its HTML report
    snakemake all_tables --cores 8 --resources gpu=2                   # paper scale (config/config.yaml)
    snakemake paper --cores 8 --resources gpu=2     # the paper's Tables 1-5 and Fig. 3-6
    snakemake paper --report report.html            # HTML report of the tables and figures

(`--configfile` and `--resources` take several values: put the target first,
or write `--configfile=FILE`, so that `all_tables` is not read as one of them.)
"""

import copy
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from par.learners.discovery import PluginError, discover

min_version("9.0")

# A config file given on the command line replaces config/config.yaml rather than
# being merged into it: every config file describes one whole reproduction.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Run overrides as the user wrote them: validation fills schema defaults into
# them, which must not shadow the global sections when they are merged.
RAW_RUNS = copy.deepcopy(config.get("runs", {}))
# Every method: the built-in ones, installed plugins and the config's method_modules
# (par/learners/discovery.py).  The schema's method list and the methods' sections are
# generated from them; validate() reads a schema from a file, written per working folder.
try:
    CATALOG = discover(config.get("method_modules", []))
except PluginError as err:
    raise WorkflowError(str(err))
validate(config, os.path.abspath(CATALOG.write_config_schema(".snakemake/par/config.schema.json")))


include: "workflow/rules/common.smk"
include: "workflow/rules/common_paper.smk"


rule all_tables:
    """Every table and figure of the configured benchmarks, runs and seeds (the default target).
    Every run's metrics are asked for too: a run added to a finished configuration is then
    learned (the tables alone, already made, would not ask for its metrics)."""
    localrule: True
    input:
        TABLES,
        METRICS,


include: "workflow/rules/data.smk"
include: "workflow/rules/relatedness.smk"
include: "workflow/rules/learning.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/paper.smk"


report: report_description()  # workflow/report/workflow.rst and what `paper` leaves out (common_paper.smk)


# Cheap bookkeeping runs on the submitting machine (under SLURM too); the decode
# job downloads, which compute nodes often cannot.  Only extract_features,
# search_cell and learn_task are submitted: every other rule says `localrule: True`.


rule all_relatedness:
    """Distances and heatmaps only: inspect relatedness before any training."""
    localrule: True
    input:
        [results_path("distances", bench=b, seed=s) for b in BENCHMARK_NAMES for s in SEEDS],


rule all_plans:
    """The plan of every PAR run: groups and strategies, before any training."""
    localrule: True
    input:
        [results_path("plan", bench=b, seed=s, run=r) for b in BENCHMARK_NAMES for s in SEEDS for r in PLAN_RUNS],
