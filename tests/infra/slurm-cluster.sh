#!/usr/bin/env bash
# slurm-cluster.sh — r1console's real test cluster on ONE Linux machine (run as root, no systemd needed).
#
#   2 compute nodes (node1, node2) x 4 fake GPUs. Each node is its own network namespace (address on a
#   private bridge) + mount namespace + UTS namespace (hostname = node name) running its own slurmd and
#   munged. The "head" (slurmctld, slurmdbd + MariaDB for sacct, and an OpenSSH login server on
#   127.0.0.1) runs in the root network namespace; slurmctld/slurmdbd/sshd get their own mount + UTS
#   namespace (hostname r1c-head) whose /etc/hosts, nsswitch.conf and resolv.conf are the cluster's own.
#   Jobs run as the unprivileged test user r1ctest, like on a real login node.
#
#   bash tests/infra/slurm-cluster.sh install          # apt: slurmctld slurmd slurm-client munge slurmdbd
#                                                       #      mariadb-*-core openssh-server (idempotent)
#   bash tests/infra/slurm-cluster.sh start > e.env && source e.env
#                                                       # start what is not running (flock), wait for both
#                                                       # nodes idle + an ssh round trip, print exports
#   bash tests/infra/slurm-cluster.sh env               # print the exports again
#   bash tests/infra/slurm-cluster.sh check-packages    # exit 1 and list them if packages are missing
#   bash tests/infra/slurm-cluster.sh install-ray       # Ray in ${R1C_RAY_HOME:-/opt/r1c-ray}/venv (pip, system
#                                                       # python3, so the test user can run it) ~15 s, 284 MB
#   bash tests/infra/slurm-cluster.sh status            # exit 0 = everything up; 3 = stopped; 1 = partly up
#   bash tests/infra/slurm-cluster.sh stop [--purge]    # cancel jobs, stop daemons by pidfile, remove the
#                                                       # namespaces and the /etc/hosts block; --purge also
#                                                       # deletes the state dir and the test user
#   bash tests/infra/slurm-cluster.sh gpu-mode [idle|load|missing|clear] [NODE]
#                                                       # what the stand-in nvidia-smi replays (all nodes or one)
#   bash tests/infra/slurm-cluster.sh exec NODE|head CMD...   # run CMD inside a node's (or the head's) namespaces
#   bash tests/infra/slurm-cluster.sh drop-ssh          # kill every sshd session (not the listener)
#   bash tests/infra/slurm-cluster.sh ctld-pause|ctld-resume   # SIGSTOP / SIGCONT slurmctld
#
# Do not use `eval "$(... start)"`: it hides a failed start. Write to a file and `source` it.
#
# Everything lives under ${R1C_CLUSTER_DIR:-/var/lib/r1c-cluster} except: the network namespaces
# (/run/netns/r1c-nodeK), the bridge r1cbr0 + veths, a guard route, a marked block in /etc/hosts, the
# test user in /etc/passwd, and /run/sshd (sshd's privilege-separation dir).
#
# Knobs (environment; `stop` first to change them):
#   R1C_CLUSTER_DIR        state dir (default /var/lib/r1c-cluster)
#   R1C_CLUSTER_SUBNET     first three octets of the private /24 (default 10.239.0): head .1, nodeK .(10+K)
#   R1C_CLUSTER_SSH_PORT   sshd port on 127.0.0.1 (default 17822)
#   R1C_CLUSTER_CTLD_PORT / _SLURMD_PORT / _DBD_PORT / _MYSQL_PORT   (17817 / 17818 / 17819 / 17306)
#   R1C_CLUSTER_USER       test user (default r1ctest)
#   R1C_CLUSTER_NODE_CPUS / _NODE_SOCKETS / _NODE_MEM_MB / _NODE_FEATURES
#                          what each node claims (default: this machine's CPUs, 90 % of its memory, no
#                          features); SlurmdParameters=config_overrides lets nodes claim more than exists.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
DIR=${R1C_CLUSTER_DIR:-/var/lib/r1c-cluster}
SUBNET=${R1C_CLUSTER_SUBNET:-10.239.0}
SSH_PORT=${R1C_CLUSTER_SSH_PORT:-17822}
CTLD_PORT=${R1C_CLUSTER_CTLD_PORT:-17817}
SLURMD_PORT=${R1C_CLUSTER_SLURMD_PORT:-17818}
DBD_PORT=${R1C_CLUSTER_DBD_PORT:-17819}
MYSQL_PORT=${R1C_CLUSTER_MYSQL_PORT:-17306}
TUSER=${R1C_CLUSTER_USER:-r1ctest}
NNODES=2
GPUS=4
PREFIX=node
TAG=r1c
CLUSTER=r1c
PARTITION=debug
HEAD=r1c-head
HEAD_ADDR=$SUBNET.1
BRIDGE=${TAG}br0
SSH_ALIAS=r1c-test
CONF=$DIR/etc/slurm.conf
USER_MARK="r1console test user"
HOSTS_BEGIN="# BEGIN r1console slurm-cluster.sh $DIR"
HOSTS_END="# END r1console slurm-cluster.sh $DIR"
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server-core mariadb-client-core
          openssh-server openssh-client iproute2 util-linux passwd python3 python3-venv)
RAY_HOME=${R1C_RAY_HOME:-/opt/r1c-ray}
RAY_VERSION=${R1C_RAY_VERSION:-2.60.0}

log() { printf '[slurm-cluster %s] %s\n' "$(date +%T.%3N)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

node_name() { echo "$PREFIX$1"; }
node_addr() { echo "$SUBNET.$((10 + $1))"; }
node_ns() { echo "$TAG-$(node_name "$1")"; }
node_veth() { echo "${TAG}v$1"; }
all_nodes() { local k; for ((k = 1; k <= NNODES; k++)); do node_name "$k"; done; }

# ---------------------------------------------------------------- helpers
pid_of() { if [ -s "$1" ]; then tr -dc '0-9' < "$1"; fi; }
proc_state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true; }
# PID 1 here reaps orphans late, so a killed daemon can linger as a zombie: treat state Z as dead
proc_gone() { [ ! -d "/proc/$1" ] || [ "$(proc_state "$1")" = Z ]; }
# pid_alive PIDFILE COMM -> 0 if the pid in PIDFILE is alive (not a zombie) and its comm is COMM
pid_alive() {
  local pid; pid=$(pid_of "$1")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  [ "$(proc_state "$pid")" != Z ]
}
kill_pid() { # kill_pid PID NAME [TIMEOUT_S]: TERM, wait, KILL — this one pid only
  local pid=$1 name=$2 t=${3:-15} i
  proc_gone "$pid" && return 0
  kill -CONT "$pid" 2>/dev/null || true   # a SIGSTOPped daemon (ctld-pause) would never act on TERM
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do proc_gone "$pid" && return 0; sleep 0.1; done
  log "$name (pid $pid) still alive after ${t}s, sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do proc_gone "$pid" && return 0; sleep 0.1; done
}
stop_pidfile() { # PIDFILE COMM [TIMEOUT]
  if pid_alive "$1" "$2"; then
    log "stopping $2 (pid $(pid_of "$1"))"
    kill_pid "$(pid_of "$1")" "$2" "${3:-15}"
  fi
  rm -f "$1"
}
# run a daemonising command with stdio detached from ours; it must not inherit the flock'd fd 9
# (munged/mariadbd/slurmdbd keep inherited fds open, so the lock would stay held while they live)
daemon() {
  local name=$1; shift
  if ! "$@" </dev/null >>"$DIR/log/$name.stdio" 2>&1 9>&-; then
    log "$name failed to start: $(tail -5 "$DIR/log/$name.stdio")"; return 1
  fi
}
wait_for() { # wait_for SECONDS DESCRIPTION CMD... (retried every 0.1 s until the deadline)
  local secs=$1 what=$2 deadline; shift 2
  deadline=$((SECONDS + secs))
  while [ $SECONDS -lt $deadline ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "timed out after ${secs}s waiting for $what"
  return 1
}
# every Slurm client call: SLURM_CONF always set (without it a client does a DNS SRV lookup), bounded time
# (a client blocks for MessageTimeout per retry while slurmctld does not answer)
sl() { SLURM_CONF=$CONF timeout "${SL_TIMEOUT:-10}" "$@"; }
ns_inode() { stat -L -c %i "/run/netns/$1" 2>/dev/null || true; }
slurmd_pidfile() { echo "$DIR/run/slurmd-$(node_name "$1").pid"; }
slurmd_ok() { # node K's slurmd is alive and inside node K's network namespace
  local k=$1 pf pid; pf=$(slurmd_pidfile "$k")
  pid_alive "$pf" slurmd || return 1
  pid=$(pid_of "$pf")
  [ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" = "$(ns_inode "$(node_ns "$k")")" ]
}
need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }
user_home() { echo "$DIR/home/$TUSER"; }

missing_packages() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  echo "${missing[*]}"
}

export_lines() {
  local addrs="" k
  for ((k = 1; k <= NNODES; k++)); do addrs+="$(node_addr "$k") "; done
  cat <<EOF
export R1C_CLUSTER_DIR=$DIR
export SLURM_CONF=$CONF
export R1C_TEST_SLURM_CONF=$CONF
export R1C_TEST_SSH_CONFIG=$DIR/client/ssh_config
export R1C_TEST_SSH_HOST=$SSH_ALIAS
export R1C_TEST_SSH_ADDR=127.0.0.1
export R1C_TEST_SSH_PORT=$SSH_PORT
export R1C_TEST_USER=$TUSER
export R1C_TEST_KEY=$DIR/client/id_ed25519
export R1C_TEST_KNOWN_HOSTS=$DIR/client/known_hosts
export R1C_TEST_HOME=$(user_home)
export R1C_TEST_WORKDIR=$(user_home)/work
export R1C_TEST_NODES="$(all_nodes | tr '\n' ' ' | sed 's/ $//')"
export R1C_TEST_NODE_ADDRS="${addrs% }"
export R1C_TEST_HEAD_NODE=$(node_name 1)
export R1C_TEST_HEAD_NODE_ADDR=$(node_addr 1)
export R1C_TEST_GPUS_PER_NODE=$GPUS
export R1C_TEST_PARTITION=$PARTITION
export R1C_TEST_ACCOUNTING=slurmdbd
export R1C_TEST_NODE_BIN=$DIR/node-bin
export R1C_TEST_CLUSTER_SCRIPT=$SCRIPT_DIR/slurm-cluster.sh
export R1C_TEST_RAY_VENV=$RAY_HOME/venv
EOF
}

# ---------------------------------------------------------------- install
cmd_install() {
  need_root
  local need; need=$(missing_packages)
  [ -z "$need" ] && { log "packages already installed"; return 0; }
  log "installing: $need"
  local own_policy=0 rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep postinst scripts from starting system services
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1
  fi
  # shellcheck disable=SC2086  # $need is a word list of package names
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need; } >&2 || rc=$?
  [ $own_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || die "apt-get failed (rc=$rc)"
  need=$(missing_packages)
  [ -z "$need" ] || die "still missing after apt-get: $need"
  log "installed"
}

# Ray for multi-node jobs (CPU-only Ray; the nodes declare their 4 fake GPUs with --num-gpus).
# Built from the SYSTEM python3: jobs run as the test user, who cannot execute an interpreter that
# lives under /root (pyenv; /root is mode 0700).
cmd_install_ray() {
  need_root
  if [ -x "$RAY_HOME/venv/bin/ray" ] && [ "$(cat "$RAY_HOME/.installed" 2>/dev/null)" = "$RAY_VERSION" ]; then
    log "ray $RAY_VERSION already installed in $RAY_HOME/venv"; return 0
  fi
  [ -x /usr/bin/python3 ] || die "/usr/bin/python3 missing: run install first"
  log "installing ray $RAY_VERSION into $RAY_HOME/venv"
  rm -rf "$RAY_HOME/venv" "$RAY_HOME/.installed"
  mkdir -p "$RAY_HOME"
  /usr/bin/python3 -m venv "$RAY_HOME/venv" || die "python3 -m venv failed (python3-venv missing? run install)"
  "$RAY_HOME/venv/bin/pip" install -q --disable-pip-version-check "ray==$RAY_VERSION" >&2 || die "pip install ray failed"
  chmod -R a+rX "$RAY_HOME"
  echo "$RAY_VERSION" > "$RAY_HOME/.installed"
  log "ray installed: $("$RAY_HOME/venv/bin/python" -c 'import ray; print(ray.__version__)')"
}

# ---------------------------------------------------------------- test user
ensure_user() {
  local home; home=$(user_home)
  mkdir -p "$DIR/home"; chmod 755 "$DIR/home"
  if id -u "$TUSER" >/dev/null 2>&1; then
    [ "$(getent passwd "$TUSER" | cut -d: -f5)" = "$USER_MARK" ] ||
      die "user $TUSER exists but was not created by this script (set R1C_CLUSTER_USER)"
    [ "$(getent passwd "$TUSER" | cut -d: -f6)" = "$home" ] || usermod -d "$home" "$TUSER"
  else
    log "creating user $TUSER (home $home)"
    useradd -U -m -d "$home" -s /bin/bash -c "$USER_MARK" "$TUSER"
  fi
  # UsePAM no: sshd refuses accounts whose password field is locked ("!"); "*" = no password, not locked
  usermod -p '*' "$TUSER"
  install -d -o "$TUSER" -g "$TUSER" -m 0755 "$home"
  install -d -o "$TUSER" -g "$TUSER" -m 0700 "$home/.ssh"
  install -d -o "$TUSER" -g "$TUSER" -m 0755 "$home/work"
}

# ---------------------------------------------------------------- network
net_up() {
  # Guard: an 'unreachable' route for the /24 with a high metric. While the bridge exists its kernel route
  # (metric 0) wins; once it is gone, traffic to these addresses fails locally instead of following the
  # default route out of the machine. Removed by `stop --purge`.
  local other
  other=$(ip -4 route show to match "$SUBNET.1" | grep -v -E "^default|^unreachable $SUBNET.0/24|dev $BRIDGE( |$)" || true)
  [ -z "$other" ] || die "subnet $SUBNET.0/24 overlaps an existing route: $other (set R1C_CLUSTER_SUBNET)"
  # (no `cmd | grep -q` under pipefail: grep -q exits at the first match and cmd may die of SIGPIPE)
  grep -q "^unreachable $SUBNET.0/24 .*metric 4242" <<<"$(ip route show table main)" ||
    ip route add unreachable "$SUBNET.0/24" metric 4242
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge || die "cannot create bridge $BRIDGE (no CAP_NET_ADMIN or no bridge support?)"
  fi
  [ -e "/proc/sys/net/ipv6/conf/$BRIDGE" ] && sysctl -qw "net.ipv6.conf.$BRIDGE.disable_ipv6=1"
  grep -q "inet $HEAD_ADDR/24" <<<"$(ip addr show dev "$BRIDGE")" || ip addr add "$HEAD_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local k ns veth addr
  for ((k = 1; k <= NNODES; k++)); do
    ns=$(node_ns "$k"); veth=$(node_veth "$k"); addr=$(node_addr "$k")
    [ -e "/run/netns/$ns" ] || ip netns add "$ns" || die "ip netns add $ns failed"
    if ! ip link show "$veth" >/dev/null 2>&1; then
      nsenter --net="/run/netns/$ns" ip link del eth0 2>/dev/null || true
      ip link add "$veth" type veth peer name eth0 netns "$ns" || die "cannot create veth $veth"
    fi
    [ -e "/proc/sys/net/ipv6/conf/$veth" ] && sysctl -qw "net.ipv6.conf.$veth.disable_ipv6=1"
    ip link set "$veth" master "$BRIDGE" up
    # nsenter --net, never `ip netns exec` (it remounts /sys and hides /sys/fs/cgroup from slurmd)
    nsenter --net="/run/netns/$ns" sh -c "
      [ -e /proc/sys/net/ipv6/conf/all ] && sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
      ip addr show dev eth0 | grep -q 'inet $addr/24' || ip addr add $addr/24 dev eth0
      ip link set eth0 up; ip link set lo up" || die "configuring $ns failed"
  done
  for ((k = 1; k <= NNODES; k++)); do  # every node address must route through our bridge
    [ "$(ip -4 route get "$(node_addr "$k")" | awk '{for(i=1;i<NF;i++) if ($i=="dev") print $(i+1); exit}')" = "$BRIDGE" ] ||
      die "route to $(node_addr "$k") does not use $BRIDGE: $(ip -4 route get "$(node_addr "$k")")"
  done
}

net_down() {
  local k ns veth
  for ((k = 1; k <= NNODES; k++)); do
    ns=$(node_ns "$k"); veth=$(node_veth "$k")
    ip link del "$veth" 2>/dev/null || true     # deletes the peer (eth0 in the namespace) too
    if [ -e "/run/netns/$ns" ]; then log "deleting netns $ns"; ip netns del "$ns" || true; fi
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then log "deleting bridge $BRIDGE"; ip link del "$BRIDGE" || true; fi
}

# processes still inside the node namespaces (e.g. daemons that escaped a job), killed by pid
kill_ns_leftovers() {
  local k ns pids all="" p i
  for ((k = 1; k <= NNODES; k++)); do
    ns=$(node_ns "$k")
    [ -e "/run/netns/$ns" ] || continue
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
    [ -n "${pids// /}" ] || continue
    log "killing leftover processes in $ns: $pids"
    for p in $pids; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
    all+="$pids "
  done
  [ -n "${all// /}" ] || return 0
  for ((i = 0; i < 30; i++)); do
    sleep 0.1
    for p in $all; do proc_gone "$p" || continue 2; done
    return 0
  done
  for p in $all; do proc_gone "$p" || kill -KILL "$p" 2>/dev/null || true; done
}

hosts_block() {
  echo "$HEAD_ADDR $HEAD"
  local k; for ((k = 1; k <= NNODES; k++)); do echo "$(node_addr "$k") $(node_name "$k")"; done
}
etc_hosts_remove() {
  grep -qxF "$HOSTS_BEGIN" /etc/hosts 2>/dev/null || return 0
  local tmp; tmp=$(mktemp)
  awk -v b="$HOSTS_BEGIN" -v e="$HOSTS_END" '$0==b{skip=1;next} $0==e{skip=0;next} !skip' /etc/hosts > "$tmp"
  cat "$tmp" > /etc/hosts; rm -f "$tmp"   # rewrite in place: /etc/hosts may be a bind mount
}
etc_hosts_add() { # the root namespace resolves node names too (port-forwards, host-side tools)
  local want; want=$(printf '%s\n' "$HOSTS_BEGIN" "$(hosts_block)" "$HOSTS_END")
  grep -qxF "$HOSTS_BEGIN" /etc/hosts 2>/dev/null &&
    [ "$(awk -v b="$HOSTS_BEGIN" -v e="$HOSTS_END" '$0==b{p=1} p{print} $0==e{p=0}' /etc/hosts)" = "$want" ] && return 0
  etc_hosts_remove
  printf '%s\n' "$want" >> /etc/hosts
}

# ---------------------------------------------------------------- config
write_configs() {
  mkdir -p "$DIR"/{etc,state/ctld,run,log,sshd,client,gpu/bin,gpu/data,gpu/mode,gpu/dev,node-bin}
  chmod 755 "$DIR" "$DIR"/{etc,state,run,log,gpu,gpu/bin,gpu/data,gpu/dev,node-bin}
  chmod 700 "$DIR/sshd" "$DIR/client"
  chmod 755 "$DIR/gpu/mode"
  local k; for ((k = 1; k <= NNODES; k++)); do mkdir -p "$DIR/state/slurmd-$(node_name "$k")"; done

  local hw cpus sockets cores threads mem
  hw=$(slurmd -C); hw=${hw%%$'\n'*}   # (not `| head -1`: under pipefail a SIGPIPE would abort start)
  cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
  sockets=$(sed -n 's/.*SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$hw")
  cores=$(sed -n 's/.*CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$hw")
  threads=$(sed -n 's/.*ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$hw")
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw"); mem=$((mem * 9 / 10))
  if [ -n "${R1C_CLUSTER_NODE_CPUS:-}" ]; then
    cpus=$R1C_CLUSTER_NODE_CPUS; sockets=${R1C_CLUSTER_NODE_SOCKETS:-1}; threads=1; cores=$((cpus / sockets))
  fi
  mem=${R1C_CLUSTER_NODE_MEM_MB:-$mem}
  local features=""; [ -n "${R1C_CLUSTER_NODE_FEATURES:-}" ] && features="Features=$R1C_CLUSTER_NODE_FEATURES"

  { cat <<EOF
# generated by r1console tests/infra/slurm-cluster.sh
ClusterName=$CLUSTER
SlurmctldHost=$HEAD($HEAD_ADDR)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
# one munged per node (one munged decoding the same credential twice reports "Replayed credential");
# inside node K's mount namespace this directory is a bind mount of $DIR/munge/nodeK
AuthInfo=socket=$DIR/munge/socket/munge.socket.2
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/slurmd-%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmdParameters=config_overrides
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# puts the stand-in nvidia-smi on every task's PATH (or takes it off: gpu-mode missing)
TaskProlog=$DIR/etc/task-prolog.sh
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HEAD_ADDR
AccountingStoragePort=$DBD_PORT
# for slurmdbd connections the munge socket comes from here, not from AuthInfo (default /run/munge/...)
AccountingStoragePass=$DIR/munge/socket/munge.socket.2
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# ended jobs leave squeue after 30 s instead of 300, so the "history after squeue forgot it" test is quick
MinJobAge=30
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
EnforcePartLimits=ALL
ReturnToService=2
KillWait=5
MpiDefault=none
SwitchType=switch/none
GresTypes=gpu
EOF
    for ((k = 1; k <= NNODES; k++)); do
      echo "NodeName=$(node_name "$k") NodeAddr=$(node_addr "$k") CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem Gres=gpu:$GPUS $features State=UNKNOWN"
    done
    echo "PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  } > "$CONF.new"
  if [ -s "$CONF" ] && ! cmp -s "$CONF" "$CONF.new" && pid_alive "$DIR/run/slurmctld.pid" slurmctld; then
    rm -f "$CONF.new"
    die "settings differ from the running cluster (see $CONF); run stop first"
  fi
  mv "$CONF.new" "$CONF"; chmod 644 "$CONF"

  cat > "$DIR/etc/slurmdbd.conf" <<EOF
# generated by r1console tests/infra/slurm-cluster.sh
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/socket/munge.socket.2
DbdHost=$HEAD
DbdAddr=$HEAD_ADDR
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
DebugLevel=info
EOF
  chmod 600 "$DIR/etc/slurmdbd.conf"

  # fake GPUs: char devices (same major/minor as /dev/null). With plain files slurmd logs "is not a valid
  # character or block device" and jobs get no CUDA_VISIBLE_DEVICES.
  local i
  for ((i = 0; i < GPUS; i++)); do
    if [ ! -c "$DIR/gpu/dev/nvidia$i" ]; then
      rm -f "$DIR/gpu/dev/nvidia$i"
      mknod -m 666 "$DIR/gpu/dev/nvidia$i" c 1 3 || die "mknod $DIR/gpu/dev/nvidia$i failed (fake GPUs need char devices)"
    fi
  done
  { echo "AutoDetect=off"
    for ((k = 1; k <= NNODES; k++)); do
      echo "NodeName=$(node_name "$k") Name=gpu File=$DIR/gpu/dev/nvidia[0-$((GPUS - 1))]"
    done; } > "$DIR/etc/gres.conf"

  # name resolution for the head and the nodes: files only, so no lookup can reach the machine's resolver
  # (an unknown name fails locally; res_nsearch users like the SRV lookup go to 127.0.0.1 and get refused)
  { echo "127.0.0.1 localhost"; echo "::1 localhost ip6-localhost ip6-loopback"; hosts_block; } > "$DIR/etc/hosts"
  printf '%s\n' "# r1c test cluster: no DNS" "passwd: files" "group: files" "shadow: files" "gshadow: files" \
    "hosts: files" "networks: files" "protocols: files" "services: files" "ethers: files" "rpc: files" \
    > "$DIR/etc/nsswitch.conf"
  printf '%s\n' "# r1c test cluster: no DNS server reachable on purpose" "nameserver 127.0.0.1" \
    "options timeout:1 attempts:1" > "$DIR/etc/resolv.conf"
  chmod 644 "$DIR/etc/hosts" "$DIR/etc/nsswitch.conf" "$DIR/etc/resolv.conf" "$DIR/etc/gres.conf"

  # stand-in nvidia-smi + the captures it replays (copied: the cluster must not depend on the checkout)
  local data=$REPO_DIR/tests/data/nvidia-smi/h200x2
  [ -s "$data/smi_query_idle.txt" ] || die "missing $data (nvidia-smi captures)"
  cp "$data"/*.txt "$DIR/gpu/data/"; chmod 644 "$DIR/gpu/data/"*
  sed -e "s#@DATA_DIR@#$DIR/gpu/data#" -e "s#@MODE_DIR@#$DIR/gpu/mode#" -e "s#@GPUS@#$GPUS#" \
    "$SCRIPT_DIR/nvidia-smi-standin.py" > "$DIR/gpu/bin/nvidia-smi.new"
  chmod 755 "$DIR/gpu/bin/nvidia-smi.new"; mv "$DIR/gpu/bin/nvidia-smi.new" "$DIR/gpu/bin/nvidia-smi"

  # TaskProlog (runs as the job user before every task; "export X=Y" lines set the task's environment).
  # $DIR/node-bin is empty on the login side and a bind mount of $DIR/gpu/bin inside the nodes, so
  # nvidia-smi exists only on compute nodes, like on a real cluster; srun on the login side leaves the
  # command name relative and the node resolves it with the PATH below.
  cat > "$DIR/etc/task-prolog.sh" <<EOF
#!/bin/sh
# generated by r1console tests/infra/slurm-cluster.sh
node=\${SLURMD_NODENAME:-\$(hostname -s)}
mode=\${R1C_FAKE_NVIDIA_SMI:-}
[ -n "\$mode" ] || mode=\$(cat "$DIR/gpu/mode/mode.\$node" 2>/dev/null || true)
[ -n "\$mode" ] || mode=\$(cat "$DIR/gpu/mode/mode" 2>/dev/null || true)
rest=\$(printf '%s' "\${PATH:-/usr/local/bin:/usr/bin:/bin}" | tr ':' '\n' | grep -vxF "$DIR/node-bin" | paste -sd: -)
if [ "\$mode" = missing ]; then echo "export PATH=\$rest"; else echo "export PATH=$DIR/node-bin:\$rest"; fi
EOF
  chmod 755 "$DIR/etc/task-prolog.sh"
}

# ---------------------------------------------------------------- daemons
# head_exec CMD...: run CMD in a private mount + UTS namespace (hostname r1c-head) that sees the
# cluster's hosts/nsswitch/resolv.conf; the network namespace stays the root one (127.0.0.1, the bridge)
head_exec() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  unshare --mount --uts --propagation private bash -c '
    set -e
    mount --bind "$1/etc/hosts" /etc/hosts
    mount --bind "$1/etc/nsswitch.conf" /etc/nsswitch.conf
    mount --bind "$1/etc/resolv.conf" /etc/resolv.conf
    hostname "$2"
    shift 2
    exec "$@"' _ "$DIR" "$HEAD" "$@"
}

start_munged() { # start_munged NAME: a munged whose socket is $DIR/munge/NAME/munge.socket.2
  local name=$1 d=$DIR/munge/$1
  pid_alive "$d/munged.pid" munged && return 0
  install -d -o munge -g munge -m 0755 "$d"
  rm -f "$d/munge.socket.2" "$d/munge.socket.2.lock"
  daemon "munged-$name" runuser -u munge -- /usr/sbin/munged --socket="$d/munge.socket.2" \
    --key-file="$DIR/munge/key/munge.key" --pid-file="$d/munged.pid" --log-file="$d/munged.log" \
    --seed-file="$d/munged.seed" || die "munged ($name) failed"
  wait_for 10 "munged $name" sh -c "munge -S '$d/munge.socket.2' -n | unmunge -S '$d/munge.socket.2'" ||
    die "munged ($name) did not answer: $(tail -3 "$d/munged.log")"
}
start_all_munged() {
  # munged refuses sockets whose parent dirs are not world-searchable, so the key lives in its own 0700 dir
  install -d -o munge -g munge -m 0755 "$DIR/munge" "$DIR/munge/socket"
  install -d -o munge -g munge -m 0700 "$DIR/munge/key"
  [ -s "$DIR/munge/key/munge.key" ] || dd if=/dev/urandom of="$DIR/munge/key/munge.key" bs=1024 count=1 status=none
  chown munge:munge "$DIR/munge/key/munge.key"; chmod 0400 "$DIR/munge/key/munge.key"
  # the head's munged listens on the AuthInfo path itself (socket); nodes bind their own dir over it
  start_munged socket
  local k; for ((k = 1; k <= NNODES; k++)); do start_munged "$(node_name "$k")"; done
}

mysql_cli() { mariadb --no-defaults -S "$DIR/run/mysqld.sock" -uroot "$@"; }
start_mariadb() {
  pid_alive "$DIR/run/mysqld.pid" mariadbd && return 0
  if [ ! -d "$DIR/mysql/mysql" ]; then
    log "initialising the MariaDB datadir"
    rm -rf "$DIR/mysql"; mkdir -p "$DIR/mysql"
    mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root --auth-root-authentication-method=socket \
      --skip-test-db --skip-name-resolve --innodb-log-file-size=16M > "$DIR/log/mariadb-install-db.log" 2>&1 ||
      die "mariadb-install-db failed: see $DIR/log/mariadb-install-db.log"
  fi
  setsid /usr/sbin/mariadbd --no-defaults --datadir="$DIR/mysql" --user=root --skip-name-resolve \
    --bind-address=127.0.0.1 --port="$MYSQL_PORT" --socket="$DIR/run/mysqld.sock" \
    --pid-file="$DIR/run/mysqld.pid" --log-error="$DIR/log/mariadb.err" --innodb-buffer-pool-size=64M \
    --innodb-log-file-size=16M --innodb-lock-wait-timeout=900 </dev/null >>"$DIR/log/mariadbd.stdio" 2>&1 9>&- &
  wait_for 30 mariadbd mysql_cli -e 'select 1' || die "mariadbd did not start: $(tail -5 "$DIR/log/mariadb.err")"
  wait_for 10 "mariadbd pidfile" pid_alive "$DIR/run/mysqld.pid" mariadbd || die "mariadbd pidfile missing"
  mysql_cli -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;" ||
    die "creating the slurm database user failed"
}
start_slurmdbd() {
  pid_alive "$DIR/run/slurmdbd.pid" slurmdbd && return 0
  # slurmdbd reads slurmdbd.conf from the directory of $SLURM_CONF
  daemon slurmdbd head_exec env SLURM_CONF="$CONF" slurmdbd || die "slurmdbd failed"
  wait_for 30 slurmdbd sl sacctmgr -n show cluster || die "slurmdbd not answering: $(tail -5 "$DIR/log/slurmdbd.log")"
}
start_slurmctld() {
  if pid_alive "$DIR/run/slurmctld.pid" slurmctld; then
    [ "$(proc_state "$(pid_of "$DIR/run/slurmctld.pid")")" = T ] && {
      log "slurmctld was stopped (ctld-pause); resuming it"; kill -CONT "$(pid_of "$DIR/run/slurmctld.pid")"; }
    return 0
  fi
  # never start a second one: a new slurmctld kills the running one ("killing old slurmctld[pid]")
  daemon slurmctld head_exec slurmctld -f "$CONF" || die "slurmctld failed"
  wait_for 30 slurmctld sl scontrol ping || die "slurmctld not answering: $(tail -5 "$DIR/log/slurmctld.log")"
}
start_slurmd() {
  local k=$1 name ns
  name=$(node_name "$k"); ns=$(node_ns "$k")
  slurmd_ok "$k" && return 0
  # the node's own mount namespace: its munged socket on the AuthInfo path, its hosts/nsswitch/resolv.conf,
  # the stand-in nvidia-smi in $DIR/node-bin; UTS namespace: hostname = node name (%N in -o/-e is the
  # slurmd host's gethostname(), so job.%N.%j.out becomes job.node1.<id>.out)
  # shellcheck disable=SC2016  # expanded by the inner bash
  daemon "slurmd-$name" nsenter --net="/run/netns/$ns" \
    unshare --mount --uts --propagation private bash -c '
      set -e
      mount --bind "$1/munge/$2" "$1/munge/socket"
      mount --bind "$1/etc/hosts" /etc/hosts
      mount --bind "$1/etc/nsswitch.conf" /etc/nsswitch.conf
      mount --bind "$1/etc/resolv.conf" /etc/resolv.conf
      mount --bind "$1/gpu/bin" "$1/node-bin"
      hostname "$2"
      exec slurmd -f "$3" -N "$2"' _ "$DIR" "$name" "$CONF" || die "slurmd $name failed"
  wait_for 10 "slurmd $name" slurmd_ok "$k" || die "slurmd $name died: $(tail -5 "$DIR/log/slurmd-$name.log")"
}
wait_nodes_idle() {
  local i n st bad
  for ((i = 0; i < 300; i++)); do
    bad=0
    while read -r n st; do
      case $st in
        idle|mixed|allocated|completing) ;;
        down*|drain*|fail*|inval*) bad=1; sl scontrol update nodename="$n" state=resume >/dev/null 2>&1 || true ;;
        *) bad=1 ;;
      esac
    done < <(SL_TIMEOUT=5 sl sinfo -h -N -o '%N %T' 2>/dev/null || echo "? unknown")
    [ $bad = 0 ] && [ "$(SL_TIMEOUT=5 sl sinfo -h -N -o %N | sort -u | wc -l)" = "$NNODES" ] && return 0
    sleep 0.1
  done
  sl sinfo -N -l >&2 || true; sl sinfo -R >&2 || true
  die "nodes not idle after 30 s"
}
ensure_association() { # the test user gets an account, like on a real cluster
  if [ -z "$(sl sacctmgr -n -P show assoc where user="$TUSER" cluster="$CLUSTER" format=user 2>/dev/null)" ]; then
    log "adding accounting association $TUSER -> account r1c"
    sl sacctmgr -i add account r1c cluster="$CLUSTER" description="r1console tests" organization=r1c >/dev/null ||
      true
    sl sacctmgr -i add user "$TUSER" account=r1c cluster="$CLUSTER" >/dev/null || die "sacctmgr add user failed"
  fi
}

strict_modes() { # sshd StrictModes needs every ancestor of the user's home to be non-group/world-writable
  local d; d=$(user_home)
  while [ "$d" != / ]; do
    d=$(dirname "$d")
    [ -n "$(find "$d" -maxdepth 0 -perm /022 2>/dev/null)" ] && { echo no; return; }
  done
  echo yes
}
start_sshd() {
  local s=$DIR/sshd c=$DIR/client home; home=$(user_home)
  [ -s "$s/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$s/ssh_host_ed25519_key" -C r1c-test-host
  [ -s "$c/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$c/id_ed25519" -C r1c-test-client
  install -o "$TUSER" -g "$TUSER" -m 0600 "$c/id_ed25519.pub" "$home/.ssh/authorized_keys"
  local hk; hk=$(awk '{print $1" "$2}' "$s/ssh_host_ed25519_key.pub")
  printf '[127.0.0.1]:%s %s\n[localhost]:%s %s\n' "$SSH_PORT" "$hk" "$SSH_PORT" "$hk" > "$c/known_hosts"
  cat > "$c/ssh_config" <<EOF
# generated by r1console tests/infra/slurm-cluster.sh: use with  ssh -F $c/ssh_config $SSH_ALIAS ...
Host $SSH_ALIAS
    HostName 127.0.0.1
    Port $SSH_PORT
    User $TUSER
    IdentityFile $c/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $c/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    CheckHostIP no
    BatchMode yes
    ConnectTimeout 10
    ServerAliveInterval 5
    ServerAliveCountMax 3
    ExitOnForwardFailure yes
EOF
  chmod 644 "$c/ssh_config" "$c/known_hosts"
  cat > "$s/sshd_config" <<EOF
# generated by r1console tests/infra/slurm-cluster.sh
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $s/ssh_host_ed25519_key
PidFile $DIR/run/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
AllowUsers $TUSER
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
StrictModes $(strict_modes)
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
PrintLastLog no
MaxSessions 64
MaxStartups 64:30:128
# the login environment of a real cluster: SLURM_CONF points at this cluster's slurm.conf
SetEnv SLURM_CONF=$CONF
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
  install -d -m 0755 /run/sshd
  /usr/sbin/sshd -t -f "$s/sshd_config" || die "sshd config test failed"
  if pid_alive "$DIR/run/sshd.pid" sshd; then
    kill -HUP "$(pid_of "$DIR/run/sshd.pid")"   # re-read the config (sshd re-execs itself: same pid)
    sleep 0.3
  else
    daemon sshd head_exec /usr/sbin/sshd -f "$s/sshd_config" -E "$DIR/log/sshd.log" || die "sshd failed"
    wait_for 10 "sshd on port $SSH_PORT" pid_alive "$DIR/run/sshd.pid" sshd ||
      die "sshd did not start: $(tail -5 "$DIR/log/sshd.log")"
  fi
  wait_for 10 "ssh login" ssh -F "$c/ssh_config" "$SSH_ALIAS" true ||
    die "ssh login as $TUSER failed: $(ssh -F "$c/ssh_config" "$SSH_ALIAS" true 2>&1 | tail -3); sshd.log: $(tail -5 "$DIR/log/sshd.log")"
}

# ---------------------------------------------------------------- commands
cmd_start() {
  need_root
  local t0; t0=$(date +%s.%N)
  local need; need=$(missing_packages)
  [ -z "$need" ] || die "packages missing: $need — run: sudo bash $SCRIPT_DIR/slurm-cluster.sh install"
  mkdir -p "$DIR"; chmod 755 "$DIR"
  exec 9>"$DIR/.lock"; flock -w 300 9 || die "another slurm-cluster.sh holds $DIR/.lock"
  mkdir -p "$DIR"/{run,log}
  ensure_user
  net_up
  write_configs
  etc_hosts_add
  start_all_munged
  start_mariadb
  start_slurmdbd
  start_slurmctld
  local k started=()
  for ((k = 1; k <= NNODES; k++)); do
    slurmd_ok "$k" && continue
    start_slurmd "$k"; started+=("$(node_name "$k")")
  done
  wait_nodes_idle
  ensure_association
  start_sshd
  log "cluster ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s" \
      "(started slurmd: ${started[*]:-none}); nodes: $(sl sinfo -h -o '%D %T %N %G' | tr '\n' ' ')"
  export_lines
}

drop_ssh_sessions() { # SIGKILL every sshd below the listener (monitor + user side of each session)
  local master p frontier next all=""
  pid_alive "$DIR/run/sshd.pid" sshd || { echo 0; return 0; }
  master=$(pid_of "$DIR/run/sshd.pid")
  frontier=$master
  while [ -n "$frontier" ]; do   # collect the whole tree first: killed parents orphan their children
    next=""
    for p in $(ps -o pid= --ppid "${frontier// /,}" 2>/dev/null); do
      [ "$(cat "/proc/$p/comm" 2>/dev/null)" = sshd ] && next+="$p "
    done
    all+=$next; frontier=${next% }
  done
  local victims; read -ra victims <<<"$all"
  if [ ${#victims[@]} -gt 0 ]; then kill -KILL "${victims[@]}" 2>/dev/null || true; fi
  echo "${#victims[@]}"
}

cmd_stop() {
  need_root
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"; flock -w 60 9 || log "WARNING: could not take $DIR/.lock; stopping anyway"
  if pid_alive "$DIR/run/slurmctld.pid" slurmctld; then
    kill -CONT "$(pid_of "$DIR/run/slurmctld.pid")" 2>/dev/null || true   # in case a test paused it
    local jobs
    jobs=$(sl squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      log "cancelling jobs: ${jobs//$'\n'/ }"
      # shellcheck disable=SC2086
      sl scancel $jobs || true
      wait_for 30 "jobs to end" sh -c "[ -z \"\$(SLURM_CONF=$CONF timeout 5 squeue -h -o %i)\" ]" || true
    fi
  fi
  drop_ssh_sessions >/dev/null
  stop_pidfile "$DIR/run/sshd.pid" sshd
  local k
  for ((k = 1; k <= NNODES; k++)); do stop_pidfile "$(slurmd_pidfile "$k")" slurmd; done
  stop_pidfile "$DIR/run/slurmctld.pid" slurmctld 30
  stop_pidfile "$DIR/run/slurmdbd.pid" slurmdbd
  stop_pidfile "$DIR/run/mysqld.pid" mariadbd 60
  kill_ns_leftovers
  local f
  for f in "$DIR"/munge/*/munged.pid; do [ -e "$f" ] && stop_pidfile "$f" munged; done
  net_down
  etc_hosts_remove
  if [ "${1:-}" = --purge ]; then
    ip route del unreachable "$SUBNET.0/24" metric 4242 2>/dev/null || true
    if id -u "$TUSER" >/dev/null 2>&1 && [ "$(getent passwd "$TUSER" | cut -d: -f5)" = "$USER_MARK" ]; then
      log "removing user $TUSER"; userdel "$TUSER" 2>/dev/null || log "WARNING: userdel $TUSER failed"
    fi
    log "removing $DIR"; rm -rf "$DIR"
  fi
  log "stopped"
}

cmd_status() {
  local rc=0 up=0 down=0 f c k
  report() { if pid_alive "$1" "$2"; then echo "$3: running (pid $(pid_of "$1"))"; up=$((up + 1));
             else echo "$3: not running"; down=$((down + 1)); fi; }
  report "$DIR/munge/socket/munged.pid" munged "munged (head)"
  for ((k = 1; k <= NNODES; k++)); do report "$DIR/munge/$(node_name "$k")/munged.pid" munged "munged ($(node_name "$k"))"; done
  report "$DIR/run/mysqld.pid" mariadbd mariadbd
  report "$DIR/run/slurmdbd.pid" slurmdbd slurmdbd
  report "$DIR/run/slurmctld.pid" slurmctld slurmctld
  for ((k = 1; k <= NNODES; k++)); do
    if slurmd_ok "$k"; then echo "slurmd ($(node_name "$k")): running (pid $(pid_of "$(slurmd_pidfile "$k")"))"; up=$((up + 1))
    else echo "slurmd ($(node_name "$k")): not running"; down=$((down + 1)); fi
  done
  report "$DIR/run/sshd.pid" sshd "sshd (127.0.0.1:$SSH_PORT)"
  if pid_alive "$DIR/run/slurmctld.pid" slurmctld; then
    if [ "$(proc_state "$(pid_of "$DIR/run/slurmctld.pid")")" = T ]; then
      echo "slurmctld is STOPPED (ctld-pause); run ctld-resume"; down=$((down + 1))
    else
      # (never a Slurm client without SLURM_CONF: it would fall back to a DNS SRV lookup)
      local idle; idle=$(SL_TIMEOUT=5 sl sinfo -h -N -o '%N %T %G' 2>&1 || true)
      echo "$idle"
      [ "$(grep -cE ' (idle|mixed|allocated|completing) gpu:'"$GPUS" <<<"$idle")" -ge "$NNODES" ] || down=$((down + 1))
    fi
  fi
  if [ $down = 0 ]; then rc=0; elif [ $up = 0 ]; then rc=3; else rc=1; fi
  return $rc
}

cmd_gpu_mode() {
  local mode=${1:-} node=${2:-} f
  f=$DIR/gpu/mode/mode${node:+.$node}
  if [ -z "$mode" ]; then
    for f in "$DIR"/gpu/mode/mode*; do [ -e "$f" ] && echo "$(basename "$f"): $(cat "$f")"; done
    return 0
  fi
  case $mode in
    idle|load|missing) printf '%s\n' "$mode" > "$f.new"; chmod 644 "$f.new"; mv "$f.new" "$f" ;;
    clear) rm -f "$f" ;;
    *) die "gpu-mode: expected idle|load|missing|clear, got '$mode'" ;;
  esac
}

cmd_exec() { # exec NODE|head CMD...
  need_root
  local who=${1:?usage: exec NODE|head CMD...}; shift
  local pf=$DIR/run/slurmd-$who.pid comm=slurmd
  [ "$who" = head ] && { pf=$DIR/run/sshd.pid; comm=sshd; }
  pid_alive "$pf" "$comm" || die "$who is not running"
  if [ "$who" = head ]; then exec nsenter -t "$(pid_of "$pf")" -m -u -- "${@:-bash}"; fi
  exec nsenter -t "$(pid_of "$pf")" -n -m -u -- "${@:-bash}"
}

cmd_ctld_signal() {
  need_root
  pid_alive "$DIR/run/slurmctld.pid" slurmctld || die "slurmctld is not running"
  kill "-$1" "$(pid_of "$DIR/run/slurmctld.pid")"
}

case ${1:-} in
  install) cmd_install ;;
  install-ray) cmd_install_ray ;;
  check-packages) m=$(missing_packages); [ -z "$m" ] || { echo "$m"; exit 1; } ;;
  start) cmd_start ;;
  stop) shift; cmd_stop "$@" ;;
  status) cmd_status ;;
  env) export_lines ;;
  gpu-mode) shift; cmd_gpu_mode "$@" ;;
  exec) shift; cmd_exec "$@" ;;
  drop-ssh) need_root; drop_ssh_sessions ;;
  ctld-pause) cmd_ctld_signal STOP ;;
  ctld-resume) cmd_ctld_signal CONT ;;
  *) echo "usage: $0 install|install-ray|check-packages|start|stop [--purge]|status|env|gpu-mode [MODE] [NODE]|exec NODE|head CMD...|drop-ssh|ctld-pause|ctld-resume" >&2
     exit 2 ;;
esac
