#!/usr/bin/env bash
# CI setup for the real-SLURM tests (marker `slurm`): install and start the test cluster of
# tests/infra/slurm-cluster.sh (2 nodes x 4 fake GPUs, slurmdbd, sshd on 127.0.0.1; Ray in a venv), then check it
# really serves: both nodes idle with gres gpu:4, and an OpenSSH round trip as the test user with the
# host key verified. Any failure stops CI here, loudly, with the daemons' logs.
set -euo pipefail
cd "$(dirname "$0")/../../.."

SCRIPT=tests/infra/slurm-cluster.sh
DIR=${R1C_CLUSTER_DIR:-/var/lib/r1c-cluster}
ENV_FILE=$(mktemp)
trap 'rm -f "$ENV_FILE"' EXIT

show_logs() {
  echo "---- bash $SCRIPT status" >&2
  bash "$SCRIPT" status >&2 || true
  local f
  for f in "$DIR"/log/*.log "$DIR"/log/*.stdio "$DIR"/log/mariadb.err "$DIR"/munge/*/munged.log; do
    [ -s "$f" ] || continue
    echo "---- $f (last 25 lines)" >&2
    tail -n 25 "$f" >&2
  done
}
fail() { echo "ci.d/20-slurm-cluster: FAILED: $*" >&2; show_logs; exit 1; }

t0=$(date +%s.%N)
bash "$SCRIPT" install || fail "bash $SCRIPT install"
# a pristine cluster: whatever a session left behind (killed daemons, jobs it had running, which slurmctld
# would recover and hold nodes with for a while) is wiped; costs ~1 s (user, keys, MariaDB datadir anew)
bash "$SCRIPT" stop --purge || fail "bash $SCRIPT stop --purge"
bash "$SCRIPT" install-ray || fail "bash $SCRIPT install-ray (Ray for the multi-node tests)"
t1=$(date +%s.%N)
# not `eval "$(... start)"`: that would hide a failed start
bash "$SCRIPT" start > "$ENV_FILE" || fail "bash $SCRIPT start"
t2=$(date +%s.%N)
# shellcheck disable=SC1090
source "$ENV_FILE"

[ -s "${SLURM_CONF:-}" ] || fail "start printed no usable SLURM_CONF"
nodes=$(timeout 20 sinfo -h -N -o '%N %T %G' 2>&1) || fail "sinfo: $nodes"
echo "$nodes"
[ "$(grep -cE '^node[12] idle gpu:4$' <<<"$nodes")" = 2 ] ||
  fail "expected node1 and node2 idle with gres gpu:4, sinfo said: $nodes"

# shellcheck disable=SC2016  # expanded on the login node
ssh_out=$(timeout 30 ssh -F "$R1C_TEST_SSH_CONFIG" "$R1C_TEST_SSH_HOST" \
  'printf "%s %s %s\n" "$(hostname)" "$(id -un)" "$SLURM_CONF"; sinfo -h -o %D' 2>&1) ||
  fail "ssh $R1C_TEST_SSH_HOST round trip: $ssh_out"
echo "ssh $R1C_TEST_SSH_HOST: $ssh_out"
if [ "$(head -1 <<<"$ssh_out")" != "r1c-head $R1C_TEST_USER $SLURM_CONF" ] || [ "$(tail -1 <<<"$ssh_out")" != 2 ]; then
  fail "unexpected answer over ssh: $ssh_out"
fi

echo "ci.d/20-slurm-cluster: install $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s," \
  "start $(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.1f", b-a}') s; cluster left running for the tests"
