#!/usr/bin/python3
"""Stand-in `nvidia-smi` for the test cluster's fake GPU nodes (installed by tests/infra/slurm-cluster.sh).

It REPLAYS real captures from a 2 x H200 machine (tests/data/nvidia-smi/h200x2/, copied from
shared/fixtures) instead of inventing numbers. Every node of the test cluster has 4 fake GPUs, so
4 GPUs are synthesized from the 2 captured ones:

    GPU i  <-  captured row (i % 2)      with  index = i,
                                              pci.bus_id = captured GPU 0 bus id + i (00:06.0, 00:07.0, 00:08.0, 00:09.0),
                                              uuid = captured uuid with its last 4 hex digits replaced by
                                                     <node number:02x><i:02x> (unique per node and GPU)
    every other field (name, memory, utilization, power, temperature, ...) is the captured value verbatim.

So under "load", GPUs 0 and 2 show the captured GPU 0 (100 %, 41843 MiB) and GPUs 1 and 3 the captured
GPU 1 (0 %, 72207 MiB). The process list (--query-compute-apps, table) is synthesized the same way.

Which capture is replayed (first match wins):
    env R1C_FAKE_NVIDIA_SMI=idle|load|missing
    file <MODE_DIR>/mode.<node>     (one node only; `slurm-cluster.sh gpu-mode MODE NODE`)
    file <MODE_DIR>/mode            (all nodes;     `slurm-cluster.sh gpu-mode MODE`)
    default: idle
"missing" is really enforced by the cluster's TaskProlog, which drops nvidia-smi's directory from the
task's PATH, so `srun ... nvidia-smi` fails exactly like a node without the driver
(`slurmstepd-node1: error: execve(): nvidia-smi: No such file or directory`). If this file is run by
its full path anyway, it prints `nvidia-smi: command not found` and exits 127.

GPUs shown: those in CUDA_VISIBLE_DEVICES when it is set (Slurm sets it from the job's gres; this mimics
a cluster with ConstrainDevices, where nvidia-smi sees only the job's GPUs, keeping their indexes);
all 4 otherwise.

Supported: no arguments (the table), --query-gpu=FIELDS / --query-compute-apps=FIELDS with
--format=csv[,noheader][,nounits], -i/--id=, -l/--loop=SEC, -L/--list-gpus, --version.
Only the fields present in the captures can be queried; any other field gets nvidia-smi's real error
(`Field "x" is not a valid field to query.`, exit 2), as captured in smi_badfield.txt.
Replayed-but-not-real details: the table's timestamp is the current time; the error text for an
unsupported option is a stand-in's own (exit 2).
"""

import os
import re
import socket
import sys
import time

DATA_DIR = "@DATA_DIR@"
MODE_DIR = "@MODE_DIR@"
GPUS_PER_NODE = int("@GPUS@")
MODES = ("idle", "load", "missing")


def node_name() -> str:
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]


def current_mode(node: str) -> str:
    mode = os.environ.get("R1C_FAKE_NVIDIA_SMI", "").strip()
    if not mode:
        for name in (f"mode.{node}", "mode"):
            try:
                with open(os.path.join(MODE_DIR, name), encoding="utf-8") as fh:
                    mode = fh.read().strip()
            except OSError:
                continue
            if mode:
                break
    mode = mode or "idle"
    if mode not in MODES:
        sys.stderr.write(f"stand-in nvidia-smi: unknown mode {mode!r} (expected one of {', '.join(MODES)})\n")
        sys.exit(2)
    return mode


def read_sections(path: str) -> list[list[str]]:
    """A capture file: blocks of CSV lines separated by '===' lines."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    sections: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() == "===":
            sections.append([])
        elif line.strip():
            sections[-1].append(line)
    return sections


def split_csv(line: str) -> list[str]:
    return [cell.strip() for cell in line.split(",")]


def field_key(header_cell: str) -> str:
    return header_cell.split(" [")[0].strip()


class Capture:
    """The captured GPU rows (with and without units) and compute-app rows of one mode."""

    def __init__(self, mode: str):
        sections = read_sections(os.path.join(DATA_DIR, f"smi_query_{mode}.txt"))
        gpu_units, gpu_plain = sections[0], sections[1]
        self.gpu_header = split_csv(gpu_units[0])
        self.gpu_fields = [field_key(h) for h in self.gpu_header]
        self.gpu_rows = {False: [split_csv(r) for r in gpu_plain], True: [split_csv(r) for r in gpu_units[1:]]}
        self.app_header: list[str] = []
        self.app_fields: list[str] = []
        self.app_rows: dict[bool, list[list[str]]] = {False: [], True: []}
        if len(sections) >= 4:
            self.app_header = split_csv(sections[2][0])
            self.app_fields = [field_key(h) for h in self.app_header]
            self.app_rows = {False: [split_csv(r) for r in sections[3]], True: [split_csv(r) for r in sections[2][1:]]}
        else:  # idle capture has no process query: same columns, no rows
            self.app_header = ["pid", "process_name", "used_gpu_memory [MiB]", "gpu_uuid"]
            self.app_fields = [field_key(h) for h in self.app_header]
        self.captured_uuids = [row[self.gpu_fields.index("uuid")] for row in self.gpu_rows[False]]


def synth_uuid(uuid: str, node_no: int, gpu: int) -> str:
    return uuid[:-4] + f"{node_no % 256:02x}{gpu % 256:02x}"


def synth_bus_id(first_bus_id: str, gpu: int) -> str:
    m = re.match(r"^(.*:)([0-9A-Fa-f]{2})(\.\d+)$", first_bus_id)
    if not m:
        return first_bus_id
    return f"{m.group(1)}{int(m.group(2), 16) + gpu:02X}{m.group(3)}"


def node_number(node: str) -> int:
    digits = re.sub(r"\D", "", node)
    return int(digits) if digits else 0


class Node:
    def __init__(self, mode: str, node: str):
        self.cap = Capture(mode)
        self.node_no = node_number(node)
        self.ncap = len(self.cap.gpu_rows[False])

    def gpu_row(self, gpu: int, units: bool) -> dict[str, str]:
        src = self.cap.gpu_rows[units][gpu % self.ncap]
        row = dict(zip(self.cap.gpu_fields, src))
        row["index"] = str(gpu)
        row["uuid"] = synth_uuid(row["uuid"], self.node_no, gpu)
        first_bus = self.cap.gpu_rows[False][0][self.cap.gpu_fields.index("pci.bus_id")]
        row["pci.bus_id"] = synth_bus_id(first_bus, gpu)
        return row

    def app_rows(self, gpus: list[int], units: bool) -> list[dict[str, str]]:
        out = []
        for gpu in gpus:
            captured_uuid = self.cap.captured_uuids[gpu % self.ncap]
            for src in self.cap.app_rows[units]:
                row = dict(zip(self.cap.app_fields, src))
                if row.get("gpu_uuid") == captured_uuid:
                    row["gpu_uuid"] = synth_uuid(captured_uuid, self.node_no, gpu)
                    row["_gpu"] = str(gpu)
                    out.append(row)
        return out


def visible_gpus() -> list[int]:
    all_gpus = list(range(GPUS_PER_NODE))
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        return all_gpus
    out = []
    for item in cvd.split(","):
        item = item.strip()
        if item.isdigit() and int(item) in all_gpus and int(item) not in out:
            out.append(int(item))
    return out


def die(msg: str, rc: int = 2) -> None:
    sys.stdout.write(msg)
    sys.stdout.flush()
    sys.exit(rc)


def parse_args(argv: list[str]) -> dict:
    opts: dict = {"query": None, "apps": None, "format": None, "ids": None, "loop": None, "list": False,
                  "version": False}
    i = 0

    def value(name: str) -> str:
        nonlocal i
        arg = argv[i]
        if "=" in arg:
            return arg.split("=", 1)[1]
        i += 1
        if i >= len(argv):
            die(f"Option {name} requires a value.\n", 2)
        return argv[i]

    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--query-gpu"):
            opts["query"] = value("--query-gpu")
        elif arg.startswith("--query-compute-apps"):
            opts["apps"] = value("--query-compute-apps")
        elif arg.startswith("--format"):
            opts["format"] = value("--format")
        elif arg in ("-i",) or arg.startswith("--id"):
            opts["ids"] = value("--id")
        elif arg in ("-l",) or arg.startswith("--loop"):
            opts["loop"] = float(value("--loop"))
        elif arg in ("-L", "--list-gpus"):
            opts["list"] = True
        elif arg == "--version":
            opts["version"] = True
        else:
            sys.stderr.write(f"stand-in nvidia-smi (r1console tests): unsupported argument {arg!r}\n")
            die("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n\n", 2)
        i += 1
    return opts


def select_ids(gpus: list[int], ids: str | None) -> list[int]:
    if ids is None:
        return gpus
    wanted = []
    for item in ids.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) not in gpus:
            die("No devices were found\n", 6)  # what nvidia-smi -i <unknown> prints
        wanted.append(int(item))
    return wanted


def csv_out(header: list[str], keys: list[str], rows: list[dict[str, str]], fmt: str) -> str:
    flags = [f.strip() for f in fmt.split(",")]
    if flags[0] != "csv":
        die(f'"{fmt}" is not a valid format.\n', 2)
    lines = []
    if "noheader" not in flags:
        lines.append(", ".join(header))
    for row in rows:
        lines.append(", ".join(row[k] for k in keys))
    return "".join(line + "\n" for line in lines)


def query(node: Node, fields_arg: str, fmt: str | None, gpus: list[int], apps: bool) -> str:
    cap = node.cap
    known_fields, known_header = (cap.app_fields, cap.app_header) if apps else (cap.gpu_fields, cap.gpu_header)
    keys = [f.strip() for f in fields_arg.split(",") if f.strip()]
    for key in keys:
        if key not in known_fields:
            die(f'Field "{key}" is not a valid field to query.\n\n', 2)
    if fmt is None:
        die('"--format" must be specified when querying\n', 2)
    units = "nounits" not in fmt
    header = [known_header[known_fields.index(k)] for k in keys]
    rows = node.app_rows(gpus, units) if apps else [node.gpu_row(g, units) for g in gpus]
    return csv_out(header, keys, rows, fmt)


def table(mode: str, node: Node, gpus: list[int]) -> str:
    with open(os.path.join(DATA_DIR, f"smi_plain_{mode}.txt"), encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    sep = next(i for i, ln in enumerate(lines) if ln.startswith("|===") and i > 2)
    head = lines[1:sep + 1]
    # GPU blocks: 3 lines + a "+---" separator, until the first blank line
    end = next(i for i in range(sep + 1, len(lines)) if not lines[i].strip())
    blocks = [lines[i:i + 4] for i in range(sep + 1, end, 4)]
    tail = lines[end:]
    out = [time.strftime("%a %b %d %H:%M:%S %Y").ljust(len(lines[0]))] + head
    first_bus = None
    for gpu in gpus:
        block = list(blocks[gpu % len(blocks)])
        m = re.match(r"^\|\s*(\d+)(\s.*)$", block[0])
        if m:
            block[0] = "|" + f"{gpu:>4}" + m.group(2)
        bus = re.search(r"[0-9A-Fa-f]{8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d", block[0])
        if bus:
            if first_bus is None:
                first_bus = re.search(r"[0-9A-Fa-f]{8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d", blocks[0][0]).group(0)
            block[0] = block[0].replace(bus.group(0), synth_bus_id(first_bus, gpu))
        out.extend(block)
    # process lines ("|    0   N/A  N/A  570  C  python3  41834MiB |"): one per visible synthesized GPU
    proc_lines = [ln for ln in tail if re.match(r"^\|\s+\d+\s+N/A", ln)]
    if proc_lines:
        first = tail.index(proc_lines[0])
        rest = tail[first + len(proc_lines):]
        tail = tail[:first]
        for gpu in gpus:
            src = proc_lines[gpu % len(proc_lines)]
            m = re.match(r"^\|\s+\d+(\s.*)$", src)
            tail.append("|" + f"{gpu:>5}" + m.group(1) if m else src)
        tail.extend(rest)
    out.extend(tail)
    return "".join(line + "\n" for line in out)


def main(argv: list[str]) -> int:
    node_id = node_name()
    mode = current_mode(node_id)
    if mode == "missing":
        sys.stderr.write("nvidia-smi: command not found\n")
        return 127
    opts = parse_args(argv)
    if opts["version"]:
        with open(os.path.join(DATA_DIR, "meta.txt"), encoding="utf-8") as fh:
            sys.stdout.write("".join(fh.readlines()[1:]))
        return 0
    gpus = visible_gpus()
    if not gpus:
        die("No devices were found\n", 6)
    gpus = select_ids(gpus, opts["ids"])
    node = Node(mode, node_id)
    if opts["list"]:
        for g in gpus:
            row = node.gpu_row(g, True)
            sys.stdout.write(f"GPU {g}: {row['name']} (UUID: {row['uuid']})\n")
        return 0
    while True:
        # the mode is re-read on every loop turn, so `gpu-mode load` shows up in a running `-l` loop
        if opts["loop"]:
            mode = current_mode(node_id)
            if mode == "missing":
                sys.stderr.write("nvidia-smi: command not found\n")
                return 127
        node = Node(mode, node_id)
        if opts["query"] is not None:
            text = query(node, opts["query"], opts["format"], gpus, apps=False)
        elif opts["apps"] is not None:
            text = query(node, opts["apps"], opts["format"], gpus, apps=True)
        else:
            text = table(mode, node, gpus)
        sys.stdout.write(text)
        sys.stdout.flush()
        if not opts["loop"]:
            return 0
        time.sleep(opts["loop"])


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (KeyboardInterrupt, BrokenPipeError):
        sys.exit(0)
