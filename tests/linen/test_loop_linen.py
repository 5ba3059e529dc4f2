"""Step-loop contracts under the linen backend alone (the shared ones: tests/core/test_backends_loop.py).

The compilation cache does not depend on the backend; its test runs here only.
"""

import os
import subprocess
import sys
from pathlib import Path


CACHE_SCRIPT = """
import sys
from trainer_helpers import classifier, fixed_batches
trainer = classifier(sys.argv[1], sys.argv[2], train_epochs=1, compilation_cache_dir=sys.argv[3])
trainer.train_model(fixed_batches(2, batch_size=16))
"""


def test_compilation_cache_is_used(mode, tmp_path):
    """trainer.compilation_cache_dir reaches jax: the compiled steps land there. A fresh process, since jax reads
    the setting at its first compilation; the minimum compile time is lowered so that small steps count."""
    cache = tmp_path / "cache"
    env = {**os.environ, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    tests = Path(__file__).parents[1]
    subprocess.run(
        [sys.executable, "-c", CACHE_SCRIPT, mode, str(tmp_path / "run"), str(cache)], env=env, cwd=tests, check=True
    )
    assert cache.is_dir() and any(cache.iterdir())
