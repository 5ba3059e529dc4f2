import sys

from jax_trainer.cli import main

sys.exit(main())
