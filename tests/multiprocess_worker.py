"""One process of a 2-process CPU training run (tests/test_multiprocess.py starts two).

Usage: python multiprocess_worker.py PROCESS_ID PORT CONFIG [key=value ...]
Each process has 2 simulated CPU devices; gloo carries the collectives.
"""

from __future__ import annotations

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")


def main() -> None:
    """Join the run, train, and exit."""
    process_id, port, config, *overrides = sys.argv[1:]
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=int(process_id))
    from jaxalign.algos.dpo import train
    from jaxalign.config import load_config

    train(load_config(config, overrides), progress=False)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
