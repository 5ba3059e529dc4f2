"""Peak host memory (resident set) of a process that builds one loop and trains it, MLP-digits."""

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys
from jax_trainer import bench
variant, epochs = sys.argv[1], int(sys.argv[2])
loop = bench.make_loop(bench.bench_config(), variant, total_epochs=epochs)
try:
    loop.run_epochs(epochs)
finally:
    loop.close()
print(json.dumps({"peak_mib": bench.peak_host_memory_mib()}))
"""


@pytest.mark.parametrize("variant", ["raw_linen", "trainer_linen", "trainer_nnx"])
def test_peak_host_memory(benchmark, variant, quick):
    if quick and variant != "trainer_nnx":
        pytest.skip("quick run: one variant exercises the measuring script")
    epochs = 1 if quick else 20

    def run() -> float:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, variant, str(epochs)], capture_output=True, text=True, check=True
        )
        return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]

    peak = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["peak_mib"] = peak
    print(f"\n{variant}: peak host memory {peak:.0f} MiB")
    assert peak > 0
