"""Restore a run's checkpoint in one of several processes onto a given mesh and save the shards this process holds.

Usage: python restore_driver.py RUN_DIR OUT_DIR MESH trainer.distributed.KEY=VALUE ...  (the launcher's overrides;
MESH like ``data=2,fsdp=4``). Writes ``OUT_DIR/shards_<process>.npz``: per model array and shard, the shard's values
under ``<path>@<start:stop,...>``.
"""

import sys
from pathlib import Path

import numpy as np


def main(run_dir: str, out_dir: str, mesh: str, *overrides: str) -> None:
    from jax_trainer.parallel.runtime import DistributedConfig, initialize

    fields = dict(item.removeprefix("trainer.distributed.").split("=", 1) for item in overrides)
    initialize(DistributedConfig(coordinator_address=fields["coordinator_address"],
                                 num_processes=int(fields["num_processes"]), process_id=int(fields["process_id"]),
                                 initialization_timeout=int(fields["initialization_timeout"])))
    import jax

    from jax_trainer.checkpoint.trees import flatten
    from jax_trainer.trainer import TrainerModule

    axes = {name: int(size) for name, size in (item.split("=") for item in mesh.split(","))}
    trainer = TrainerModule.load_from_checkpoint(run_dir, mesh=axes)
    shards = {}
    for key, array in flatten(trainer.backend.model_state_dict(trainer.model_state)).items():
        for shard in array.addressable_shards:
            where = ",".join(f"{s.start or 0}:{s.stop if s.stop is not None else n}"
                             for s, n in zip(shard.index, array.shape))
            shards[f"{'/'.join(map(str, key))}@{where}"] = np.asarray(shard.data)
    np.savez(Path(out_dir) / f"shards_{jax.process_index()}.npz", **shards)


if __name__ == "__main__":
    main(*sys.argv[1:])
