"""Thin adapters over the real tools: argv construction and result parsing, nothing else."""
