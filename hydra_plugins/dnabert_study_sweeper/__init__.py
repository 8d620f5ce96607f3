"""dnabert's study sweeper for Hydra (`hydra/sweeper=study`)."""
