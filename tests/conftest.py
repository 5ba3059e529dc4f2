"""Shared test setup: make ``tests/`` importable so backend folders can share scenario helpers."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
