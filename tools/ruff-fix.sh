#!/usr/bin/env bash
# Apply the lint rules ruff can fix by itself (import order I001, unused imports F401, f-strings
# without placeholders F541, and any other [*] fix of the rule set in pyproject.toml), then list
# what is left for a person. Run from anywhere after merging branches; it edits files in place.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check --fix --no-cache . || true
echo "== left for a person (not auto-fixable):"
python3 -m ruff check --no-cache --output-format concise .
