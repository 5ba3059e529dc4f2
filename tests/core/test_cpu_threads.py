"""``limit_cpu_threads`` / ``--cpu-threads``: XLA's CPU pool gets N compute threads, Python keeps every core.

The pool size is read back from the OS: XLA names its CPU compute threads ``tf_XLAEigen``. Each run is a fresh
process, since a pool is sized once, when jax starts its backends.
"""

import json
import os
import subprocess
import sys

import pytest

from jax_trainer import cli
from jax_trainer.cpu_threads import limit_cpu_threads

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
POOL_REPORT = """
import json, os, sys
import jax.numpy as jnp
{limit}
x = jnp.ones((256, 256))
(x @ x).block_until_ready()
names = [open(f"/proc/self/task/{{t}}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(json.dumps({{"pool": names.count("tf_XLAEigen"), "affinity": sorted(os.sched_getaffinity(0))}}))
"""

needs_cores = pytest.mark.skipif(
    not sys.platform.startswith("linux") or CORES < 2, reason="needs Linux CPU affinity and at least 2 cores"
)


def pool_report(limit: str) -> dict:
    code = POOL_REPORT.format(limit=limit)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_cores
def test_the_pool_gets_n_threads_and_python_keeps_every_core():
    default = pool_report("")
    limited = pool_report("from jax_trainer.cpu_threads import limit_cpu_threads; limit_cpu_threads(1)")
    assert default["pool"] == CORES  # XLA's default: one compute thread per core
    assert limited["pool"] == 1
    assert limited["affinity"] == default["affinity"] == sorted(os.sched_getaffinity(0))


@needs_cores
def test_cli_cpu_threads_limits_the_pool_before_the_command_runs(tmp_path):
    code = (
        "import sys; from jax_trainer import cli, cpu_threads\n"
        "cli.COMMANDS['bench'] = (*cli.COMMANDS['bench'][:2], lambda args: print(cpu_threads.cpu_thread_limit()) or 0)\n"
        "sys.exit(cli.main(['bench', '--cpu-threads', '1']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def test_too_late_once_jax_has_started():
    import jax

    jax.devices()  # this test process has started jax's backends
    with pytest.raises(RuntimeError, match="already started its backends.*--cpu-threads 1"):
        limit_cpu_threads(1)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_a_bad_count_is_refused(bad):
    with pytest.raises(ValueError, match="cpu_threads must be a positive integer"):
        limit_cpu_threads(bad)


def test_cli_refuses_a_bad_count(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", "config.yaml", "--cpu-threads", "0"])
    assert exit_info.value.code == 2
    assert "--cpu-threads: expected a positive integer, got '0'" in capsys.readouterr().err
