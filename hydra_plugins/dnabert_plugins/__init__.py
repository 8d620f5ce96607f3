"""dnabert's Hydra plugins: the study sweeper (`hydra/sweeper=study`) and the checked SLURM launcher
(`hydra/launcher=submitit_slurm`)."""
