"""Run a few train steps and save the final parameters, the val accuracy, the losses, the bytes each device holds
of the train state and how often the train step compiled; the tests run it with 1 and 8 CPU devices, replicated or sharded.

Usage: python data_parallel_driver.py MODE OUT_NPZ LOG_DIR [MESH]  (XLA_FLAGS set by the caller before jax loads;
MESH like ``data=1,fsdp=8``, default the trainer's: one data axis over all devices).
"""

import sys

import jax
import numpy as np

from jax_trainer.bench import count_compilations
from jax_trainer.optimizer import AdamWConfig
from jax_trainer.zoo.configs import MLPClassifierConfig
from trainer_helpers import classifier, digits_splits, model_weights


def main(mode: str, out: str, log_dir: str, mesh: str = "") -> None:
    splits = digits_splits(batch_size=64)
    axes = {name: int(size) for name, size in (item.split("=") for item in mesh.split(","))} if mesh else None
    trainer = classifier(
        mode, log_dir, model=MLPClassifierConfig(hidden_dims=[64]), optimizer=AdamWConfig(learning_rate=1e-2),
        splits=splits, train_epochs=1, max_steps=8, mesh=axes, log_steps_every=1,
    )
    with count_compilations() as compiles:
        results = trainer.train_model(splits.train, splits.val)
    arrays = model_weights(trainer)
    per_device: dict = {}
    total = 0
    for leaf in jax.tree.leaves(trainer.state):
        total += leaf.nbytes
        for shard in leaf.addressable_shards:
            per_device[shard.device.id] = per_device.get(shard.device.id, 0) + shard.data.nbytes
    arrays["__devices__"] = np.array(jax.device_count())
    arrays["__train_step_compiles__"] = np.array(compiles["jit(train_step)"])
    arrays["__val_acc__"] = np.array(results[1]["val/acc"])
    arrays["__val_loss__"] = np.array(results[1]["val/loss"])
    arrays["__state_bytes__"] = np.array(total)
    arrays["__max_device_bytes__"] = np.array(max(per_device.values()))
    np.savez(out, **arrays)


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    main(*sys.argv[1:])
