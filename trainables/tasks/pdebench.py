"""PDEBench tasks (Takamoto et al., NeurIPS 2022): HDF5 files, single step u(t0) -> u(T)."""
