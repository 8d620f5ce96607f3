"""Interpreting fine-tuned models: attention and attributions per nucleotide, motifs, variant effects, plots."""

MOTIF_METHODS = ("modisco", "attention")
"""`dnabert motifs --method` values, the default first (the better one on experiments/motif_recovery)."""
