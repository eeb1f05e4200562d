"""Moved to :mod:`r1console.demo.vllm.text`; this name stays an alias of that module (the same object) for code
that still imports it from here."""

import sys

from r1console.demo.vllm import text as _moved

sys.modules[__name__] = _moved
