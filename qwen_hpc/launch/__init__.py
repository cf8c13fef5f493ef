"""Where a stage runs: local process or a submitit Slurm job; signals → stop flag → requeue."""
