"""Launching one command as N cooperating jax processes on this machine: loopback coordinator on a free port, CPU
collectives (gloo), forced CPU devices per process. Bounded in time; every process is killed on the way out."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from trainer_helpers import subprocess_env


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], tmp_path: Path, processes: int = 2, devices: int = 4,
          program: tuple[str, ...] = ("-m", "jax_trainer")) -> list[subprocess.Popen]:
    """``python -m jax_trainer *args`` (or ``python *program *args``) in ``processes`` processes of ``devices`` CPU
    devices each, joined through ``trainer.distributed`` overrides."""
    port, procs = free_port(), []
    env = {**subprocess_env(tmp_path), "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_PLATFORMS": "cpu", "PYTHONFAULTHANDLER": "1"}
    for index in range(processes):
        joined = [f"trainer.distributed.coordinator_address=127.0.0.1:{port}",
                  f"trainer.distributed.num_processes={processes}", f"trainer.distributed.process_id={index}",
                  "trainer.distributed.initialization_timeout=120"]
        procs.append(subprocess.Popen([sys.executable, *program, *args, *joined], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    return procs


def wait(procs: list[subprocess.Popen], timeout: float = 300) -> list[str]:
    """Wait for all processes; their stderr. Any still running at the timeout (or on an error) is killed; at the
    timeout the error shows where each process was (Python's faulthandler dumps its threads on SIGABRT)."""
    deadline = time.monotonic() + timeout
    try:
        return [proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))[1] for proc in procs]
    except subprocess.TimeoutExpired:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGABRT)
        stacks = [proc.communicate(timeout=30)[1] for proc in procs]
        raise AssertionError(f"still running after {timeout} s:\n" + "\n---\n".join(s[-6000:] for s in stacks))
    finally:
        stop(procs)


def stop(procs: list[subprocess.Popen]) -> None:
    """Kill whatever still runs (SIGKILL) and reap it."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        proc.wait(timeout=30)


def run(args: list[str], tmp_path: Path, processes: int = 2, devices: int = 4, timeout: float = 300,
        program: tuple[str, ...] = ("-m", "jax_trainer")) -> None:
    """Run to the end; fail with the processes' stderr when any exits non-zero."""
    procs = start(args, tmp_path, processes, devices, program)
    errors = wait(procs, timeout)
    codes = [proc.returncode for proc in procs]
    assert codes == [0] * processes, f"exit codes {codes}:\n" + "\n---\n".join(e[-3000:] for e in errors)
