"""SLURM's filename patterns (``--output``/``--error``): ``%j``, ``%N``, ``%x``... filled for one job.

One implementation for the client (where a job's logs are, from ``scontrol show job``) and the
simulator (the paths its jobs write). The codes, as ``man sbatch`` "filename pattern" gives them:

``%%`` a percent sign; ``%j`` / ``%A`` the job id (of the array's first job); ``%a`` the array task id
(4294967294 outside an array); ``%N`` the short name of the batch host; ``%x`` the job name;
``%u`` the user; ``%n`` / ``%t`` the node / task id of the batch step (0). A number between ``%``
and the letter zero-pads: ``%5j`` -> ``00042``. Unknown codes stay as written. A relative result
is taken from the job's working directory.
"""

from __future__ import annotations

#: ``%a`` outside a job array (SLURM's NO_VAL).
NO_ARRAY_TASK = "4294967294"


def expand_filename(pattern: str, *, job_id: str, name: str, user: str, host: str | None,
                    workdir: str | None, keep_unknown_host: bool = False) -> str | None:
    """Fill ``pattern`` for one job; ``job_id`` may be ``ID_TASK`` for an array task.

    ``host`` is the batch host (None while SLURM has not placed the job): then the result is None,
    or, with ``keep_unknown_host``, ``%N`` stays in the path. An empty pattern gives None.
    """
    if not pattern:
        return None
    base, _, task = job_id.partition("_")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch != "%" or i + 1 >= len(pattern):
            out.append(ch)
            i += 1
            continue
        j = i + 1
        while j < len(pattern) and "0" <= pattern[j] <= "9":  # %5j: zero-padded width
            j += 1
        width = int(pattern[i + 1:j]) if j > i + 1 else 0
        code = pattern[j] if j < len(pattern) else ""
        values = {"j": base, "A": base, "a": task or NO_ARRAY_TASK, "x": name, "u": user, "n": "0", "t": "0"}
        if code == "%":
            out.append("%")
        elif code == "N":
            if host:
                out.append(host.split(".")[0])
            elif keep_unknown_host:
                out.append(pattern[i:j + 1])
            else:
                return None
        elif code in values:
            value = values[code]
            out.append(value.zfill(width) if code in "jAant" else value)
        else:
            out.append(pattern[i:j + 1])
        i = j + 1
    path = "".join(out)
    if path and not path.startswith("/") and workdir:
        path = workdir.rstrip("/") + "/" + path
    return path
