"""Run a few train steps and save the final parameters; the test runs it with 1 and 8 CPU devices.

Usage: python data_parallel_driver.py MODE OUT_NPZ LOG_DIR  (XLA_FLAGS set by the caller before jax loads).
"""

import sys

import jax
import numpy as np

from jax_trainer.optimizer import SGDConfig
from jax_trainer.zoo.configs import MLPClassifierConfig
from trainer_helpers import classifier, digits_splits, model_weights


def main(mode: str, out: str, log_dir: str) -> None:
    splits = digits_splits(batch_size=64)
    trainer = classifier(
        mode, log_dir, model=MLPClassifierConfig(hidden_dims=[32]), optimizer=SGDConfig(learning_rate=0.1),
        splits=splits, train_epochs=1, max_steps=8,
    )
    results = trainer.train_model(splits.train, splits.val)
    arrays = model_weights(trainer)
    arrays["__devices__"] = np.array(jax.device_count())
    arrays["__val_acc__"] = np.array(results[1]["val/acc"])
    np.savez(out, **arrays)


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    main(*sys.argv[1:])
