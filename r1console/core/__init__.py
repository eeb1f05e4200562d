"""The headless core: pure logic, no terminal UI, no network.

Nothing under ``r1console.core`` may import ``textual`` (tests/unit/test_import_boundary.py
enforces it). Parsers here take bytes/str and return typed values; adapters around them do I/O.
"""
