"""Interpreting fine-tuned models: attention and attributions per nucleotide, motifs, variant effects, plots."""
