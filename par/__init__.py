"""PAR (Wang et al., CVPR 2023) as a library: relatedness, planning, cells, MDL
search, learners, metrics.  Plain Python + PyTorch; the Snakemake workflow in
``workflow/`` only wires these functions together."""

__version__ = "0.1.0"
