"""Pure parsers for SLURM client output, and the job state model.

Everything here works on text that SLURM printed; nothing runs a command. The SLURM client
(``r1console.adapters.slurm_client``) runs the commands and hands their stdout to these functions.

Formats handled (verbatim captures from SLURM 22.05 are the unit-test fixtures):

* ``squeue --json`` in both schema shapes: 21.08–22.05 (openapi v0.0.37/38: ``job_state`` a string,
  times and counts plain ints) and ≥ 23.02 (data_parser v0.0.39+: ``job_state`` a flag array such as
  ``["PENDING", "REQUEUED"]``, numbers as ``{"set": bool, "infinite": bool, "number": int}``);
* ``squeue -h -o FORMAT`` with :data:`SQUEUE_FORMAT` (fields joined by an ASCII unit separator, the
  free-text job name last), for Slurm without the JSON plugin and for cheap one-job polls;
* ``scontrol show job -o`` (``Key=Value`` tokens; values with spaces only in known free-text keys);
* ``sacct -P`` / ``sacct -c -P`` with a header line;
* ``sbatch --parsable`` (``jobid[;cluster]``).

SLURM leaves ``%N`` unexpanded in StdOut/StdErr (scontrol up to 24.11, squeue --json always), so
:meth:`JobInfo.stdout_path` expands the patterns itself from BatchHost.

The parsers live in one module per client (``slurm_squeue``, ``slurm_scontrol``, ``slurm_sacct``,
``slurm_replies``), the job record in ``slurm_jobinfo``, hostlists in ``slurm_hostlist`` and small
values in ``slurm_values``; this module re-exports their names.
"""

from __future__ import annotations

from r1console.core.slurm_hostlist import MAX_HOSTS as MAX_HOSTS
from r1console.core.slurm_hostlist import expand_hostlist
from r1console.core.slurm_jobinfo import JobInfo
from r1console.core.slurm_replies import (
    SrunProblem,
    classify_srun_error,
    is_accounting_disabled,
    is_invalid_job_id,
    is_json_unsupported,
    parse_sbatch_parsable,
)
from r1console.core.slurm_sacct import SACCT_FIELDS, SACCT_JOBCOMP_FIELDS, SACCT_SEP, parse_sacct, sacct_select_args
from r1console.core.slurm_scontrol import SCONTROL_FREE_TEXT as SCONTROL_FREE_TEXT
from r1console.core.slurm_scontrol import (
    SCONTROL_KEYS,
    job_from_scontrol,
    job_gpus,
    parse_scontrol_jobs,
    parse_scontrol_record,
    tres_gpus,
)
from r1console.core.slurm_squeue import (
    SQUEUE_FIELDS,
    SQUEUE_FORMAT,
    SQUEUE_SEP,
    job_from_json,
    parse_squeue_format,
    parse_squeue_json,
    squeue_json_version,
)
from r1console.core.slurm_squeue import _epoch_iso as _epoch_iso
from r1console.core.slurm_squeue import _num as _num
from r1console.core.slurm_squeue import _state_from_json as _state_from_json
from r1console.core.slurm_squeue import _str as _str
from r1console.core.slurm_states import ACTIVE_STATES, FINISHED_STATES, PENDING_STATES, normalize_state
from r1console.core.slurm_values import SlurmParseError, format_duration, parse_duration
from r1console.core.slurm_values import _clip as _clip

# _clip, _epoch_iso, _num, _state_from_json, _str: private helpers slurm_json imports from here, kept
# importable ('x as x' marks a re-export); MAX_HOSTS, SCONTROL_FREE_TEXT: module constants, kept too.
__all__ = [
    "ACTIVE_STATES", "FINISHED_STATES", "PENDING_STATES", "JobInfo", "SACCT_FIELDS", "SACCT_JOBCOMP_FIELDS",
    "SACCT_SEP", "sacct_select_args",
    "SCONTROL_KEYS", "SQUEUE_FIELDS", "SQUEUE_FORMAT", "SQUEUE_SEP", "SlurmParseError", "SrunProblem",
    "classify_srun_error", "expand_hostlist", "format_duration", "is_accounting_disabled",
    "is_invalid_job_id", "is_json_unsupported", "job_from_json", "job_from_scontrol", "normalize_state",
    "parse_duration", "parse_sacct", "parse_sbatch_parsable", "parse_scontrol_jobs", "parse_scontrol_record",
    "parse_squeue_format", "parse_squeue_json", "squeue_json_version", "tres_gpus", "job_gpus",
]
