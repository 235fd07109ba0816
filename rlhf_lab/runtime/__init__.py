"""A run's processes: the job a command starts, launching workers (torchrun, DeepSpeed, SLURM), ranks, stop
signals, the run directory's identity and the services it needs over the network."""
