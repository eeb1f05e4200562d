"""Shared pytest configuration. Fixtures that start real services live in tests/plugins/."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

# Each plugin module provides session fixtures for one real service (see tests/plugins/*.py).
pytest_plugins = [
    name
    for name in ("plugins.slurm_cluster", "plugins.vllm_server")
    if os.path.exists(os.path.join(os.path.dirname(__file__), *name.split(".")) + ".py")
]
