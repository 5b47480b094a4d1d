"""A throwaway single-node SLURM cluster for tests (see local_cluster.py)."""
