"""Experiments: one TOML config, cached and resumable stages, variants, one summary table."""
