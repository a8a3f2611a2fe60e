"""Experiments: grids of fully resolved configs run as resumable, shardable sweeps (no jax here;
the train stage gets its trainers from the CLI)."""
