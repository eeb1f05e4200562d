"""SLURM job states in one place: the names, their compact codes, and what each means for a deployment.

``slurm_parse`` classifies jobs with the state sets (pending / active / finished); the stage
machine (``lifecycle``) maps a state to a stage (waiting -> queued, running, ended) or to a failure
with its kind, explanation and what to try (``SLURM_FAILED``).
"""

from __future__ import annotations

# ---- states ------------------------------------------------------------------------------------

PENDING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
ACTIVE_STATES = frozenset({"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING",
                           "STAGE_OUT", "RESIZING"})
FINISHED_STATES = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                             "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"})
COMPACT = {"BF": "BOOT_FAIL", "CA": "CANCELLED", "CD": "COMPLETED", "CF": "CONFIGURING", "CG": "COMPLETING",
           "DL": "DEADLINE", "F": "FAILED", "NF": "NODE_FAIL", "OOM": "OUT_OF_MEMORY", "PD": "PENDING",
           "PR": "PREEMPTED", "R": "RUNNING", "RD": "RESV_DEL_HOLD", "RF": "REQUEUE_FED", "RH": "REQUEUE_HOLD",
           "RQ": "REQUEUED", "RS": "RESIZING", "RV": "REVOKED", "SI": "SIGNALING", "SE": "SPECIAL_EXIT",
           "SO": "STAGE_OUT", "ST": "STOPPED", "S": "SUSPENDED", "TO": "TIMEOUT"}
BASE_STATES = PENDING_STATES | ACTIVE_STATES | FINISHED_STATES


def normalize_state(raw: str) -> tuple[str, str]:
    """``'CANCELLED by 0'`` -> (``CANCELLED``, ``by 0``); ``'CA'`` -> (``CANCELLED``, ``''``)."""
    text = (raw or "").strip()
    if not text:
        return "UNKNOWN", ""
    head, _, rest = text.partition(" ")
    head = head.rstrip("+").upper()  # sacct's default format truncates to "CANCELLED+"
    head = COMPACT.get(head, head)
    return head, rest.strip()


def stage_state(raw: str) -> str | None:
    """A SLURM state as reported (``R``, ``CANCELLED by 0``, ``TIMEOUT+``) -> its long name, or None."""
    text = (raw or "").strip()
    return normalize_state(text)[0] if text else None


# What a state means for the lifecycle stage.
SLURM_WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                  "RESV_DEL_HOLD", "SUSPENDED", "STOPPED", "RESIZING"}
SLURM_RUNNING = {"RUNNING", "SIGNALING", "STAGE_OUT"}
SLURM_ENDED = {"COMPLETING", "COMPLETED"}
# state -> (error kind, explanation, what to try)
SLURM_FAILED = {
    "FAILED": ("slurm_failed", "The job exited with a non-zero code.",
               "Read the last lines of .err and .out (log-status lists the errors it knows)."),
    "TIMEOUT": ("slurm_time_limit", "SLURM stopped the job at its --time limit.",
                "Resubmit with a longer --time (the partition's MaxTime permitting)."),
    "NODE_FAIL": ("slurm_node_failure", "A node of the allocation failed.",
                  "Resubmit, excluding the failed node (--exclude), and tell the admins."),
    "OUT_OF_MEMORY": ("oom_kill", "A job step ran out of host memory (SLURM OUT_OF_MEMORY).",
                      "Request more --mem (or --mem=0 with --exclusive)."),
    "PREEMPTED": ("slurm_preempted", "A higher-priority job preempted this one.",
                  "Resubmit, ideally to a partition or QOS without preemption."),
    "BOOT_FAIL": ("slurm_boot_fail", "A node failed to boot for the job.",
                  "Resubmit; tell the admins if it repeats."),
    "DEADLINE": ("slurm_deadline", "The job reached its --deadline.",
                 "Resubmit with a later --deadline or none."),
    "SPECIAL_EXIT": ("slurm_failed", "The job ended in SPECIAL_EXIT.",
                     "Read the end of .err/.out; resubmit."),
    "REVOKED": ("slurm_revoked", "The job was revoked (federation).", "Resubmit."),
}


# Fatal kinds that are SLURM stopping the job (the teardown errors after them are consequences).
SLURM_STOPS = frozenset({"slurm_time_limit", "slurm_preempted", "slurm_node_failure",
                          "slurm_task_failure", "slurm_signal"})


__all__ = ["ACTIVE_STATES", "BASE_STATES", "COMPACT", "FINISHED_STATES", "PENDING_STATES", "SLURM_ENDED",
           "SLURM_FAILED", "SLURM_RUNNING", "SLURM_STOPS", "SLURM_WAITING", "normalize_state", "stage_state"]
