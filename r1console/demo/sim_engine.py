"""Moved to :mod:`r1console.demo.vllm.engine`; this name stays an alias of that module (the same object) for code
that still imports it from here."""

import sys

from r1console.demo.vllm import engine as _moved

sys.modules[__name__] = _moved
