"""``jax-trainer ARGS`` with every checkpoint's final rename delayed by DELAY seconds, so that a test can kill the
run while a save is in flight (tests/core/test_resume_kill.py).

Usage: python slow_save_fit.py DELAY ARGS...
"""

import asyncio
import sys

# orbax has no public hook into the commit of a save; patching its rename step is for this test driver only.
from orbax.checkpoint._src.path import atomicity

from jax_trainer import cli


def main(delay: str, *args: str) -> int:
    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def delayed_finalize(self, *a, **kw):
        await asyncio.sleep(float(delay))
        return await finalize(self, *a, **kw)

    atomicity.AtomicRenameTemporaryPath.finalize = delayed_finalize
    return cli.main(list(args))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
