"""Build a trainer on 8 forced CPU devices with ``fsdp: 8`` while jax refuses every device-to-device copy, then
print each train-state array's global and per-device shape (JSON). A state made on one device and then spread
over the mesh would need such copies; one made where it lives needs none.

Usage: python sharded_init_driver.py MODE LOG_DIR  (XLA_FLAGS set by the caller before jax loads).
"""

import json
import sys

import jax

from jax_trainer.optimizer import AdamWConfig
from jax_trainer.zoo.configs import MLPClassifierConfig
from trainer_helpers import classifier


def main(mode: str, log_dir: str) -> None:
    with jax.transfer_guard_device_to_device("disallow"):
        trainer = classifier(mode, log_dir, model=MLPClassifierConfig(hidden_dims=[256, 256]),
                             optimizer=AdamWConfig(learning_rate=1e-3), mesh={"data": 1, "fsdp": 8})
        trainer.init_optimizer(1, 10)
    shapes = {
        jax.tree_util.keystr(path): [list(leaf.shape), list(leaf.addressable_shards[0].data.shape)]
        for path, leaf in jax.tree_util.tree_flatten_with_path(trainer.state)[0]
    }
    print(json.dumps(shapes))


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    main(*sys.argv[1:])
