"""The home screen: the user's jobs on the selected cluster, refreshed in the background."""

from __future__ import annotations

import asyncio

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from r1console.core.errors import R1Error
from r1console.core.slurm_parse import JobInfo, format_duration
from r1console.tui.job_actions import JobActions
from r1console.tui.messages import ClusterFailed, JobsRefreshed
from r1console.tui.widgets.status_bar import ResourceUsage

REFRESH_S = 10.0


def group_jobs(jobs: list[JobInfo]) -> tuple[list[JobInfo], dict[str, str]]:
    """The jobs with each named deployment's jobs together (where its first job was), and job ->
    "name · GPU-hours · tokens served" for the profile column (``r1console submit --replicas/--name``, relay)."""
    try:
        from r1console.adapters.deployment_groups import load_all
        from r1console.core.usage import TokenLedger

        groups = load_all()
    except (R1Error, OSError):
        return jobs, {}
    label: dict[str, str] = {}
    held = {j.job_id: j for j in jobs}
    for group in groups:
        tokens = TokenLedger.from_dict(group.tokens).tokens_served
        # GPU-hours of the jobs SLURM still lists (`r1console status` adds the ended ones from sacct)
        gpu_h = sum((held[j].gpus or group.gpus_per_job) * (held[j].time_used or 0) / 3600
                    for j in group.jobs if j in held)
        text = group.name + (f" · {gpu_h:.1f} GPU-h" if gpu_h else "") + (f" · {tokens} tok" if tokens else "") \
            + (" · relay" if group.relay else "")
        for job in group.jobs:
            label[job] = text
    if not label:
        return jobs, {}
    order: list[JobInfo] = []
    placed: set[str] = set()
    for job in jobs:
        if job.job_id in placed:
            continue
        name = label.get(job.job_id)
        mates = [j for j in jobs if name is not None and label.get(j.job_id) == name] or [job]
        for mate in mates:
            placed.add(mate.job_id)
            order.append(mate)
    return order, label
_STAGE_FROM_STATE = {"PENDING": "queued", "CONFIGURING": "starting", "RUNNING": "running", "COMPLETED": "ended",
                     "CANCELLED": "cancelled", "TIMEOUT": "failed", "FAILED": "failed", "NODE_FAIL": "failed",
                     "OUT_OF_MEMORY": "failed", "PREEMPTED": "failed", "BOOT_FAIL": "failed"}


def stage_text(job: JobInfo, known: dict[str, str]) -> str:
    return known.get(job.job_id) or _STAGE_FROM_STATE.get(job.state, job.state.lower())


class JobsScreen(JobActions):
    BINDINGS = [
        Binding("l", "launch", "Launch", id="launch-job"),
        Binding("enter", "open", "Open", id="open-job", show=False),
        Binding("o", "open", "Open", id="open-job-o"),
        Binding("c", "cancel", "Cancel job", id="cancel-job"),
        Binding("t", "chat", "Chat", id="chat-job"),
        Binding("b", "batch", "Batch", id="batch-job"),
        Binding("r", "refresh", "Refresh", id="refresh-jobs"),
        Binding("s", "switch_cluster", "Cluster", id="switch-cluster"),
    ]
    PALETTE_COMMANDS = [
        ("Launch a deployment", "Pick a profile and submit it", "launch"),
        ("Refresh jobs", "Ask SLURM again now", "refresh"),
        ("Cancel the selected job", "scancel, with confirmation", "cancel"),
        ("Switch cluster", "Another cluster from the config (or local)", "switch_cluster"),
    ]

    def __init__(self, session, *, open_job: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.open_job = open_job
        self.jobs: list[JobInfo] = []
        self.deployments: dict = {}
        self.stages: dict[str, str] = {}  # job id -> lifecycle stage reported by job screens

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Jobs", id="jobs-title")
        yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        yield Static("Recently finished", id="history-title")
        yield DataTable(id="history-table", cursor_type="row")
        yield ResourceUsage(id="status-line")
        yield Footer()

    def on_mount(self) -> None:
        for table_id in ("#jobs-table", "#history-table"):
            table = self.query_one(table_id, DataTable)
            table.add_columns("job", "name", "profile", "state", "stage", "reason / nodes", "time", "limit")
        self.query_one("#jobs-table", DataTable).focus()
        self.refresh_loop()

    @work(group="jobs-refresh", exclusive=True, exit_on_error=False, description="Refreshing jobs")
    async def refresh_loop(self) -> None:
        await self.session.connect()
        while True:
            try:
                view = await self.session.jobs()
                self.post_message(JobsRefreshed(view.queue, view.history, view.deployments))
            except R1Error as err:
                self.post_message(ClusterFailed("Refreshing jobs failed", str(err)))
            if self.open_job:
                job, self.open_job = self.open_job, None
                self.app.call_later(self._open, job)
            await asyncio.sleep(REFRESH_S)

    def on_jobs_refreshed(self, message: JobsRefreshed) -> None:
        self.jobs, self.deployments = message.jobs, message.deployments
        self._fill(self.query_one("#jobs-table", DataTable), message.jobs)
        self._fill(self.query_one("#history-table", DataTable), message.history[-20:][::-1])
        self.query_one("#jobs-title", Static).update(
            f"Jobs on {self.session.name} — {len(message.jobs)} in the queue"
            f" ({sum(1 for j in message.jobs if j.job_id in message.deployments)} launched by r1console)")

    def _fill(self, table: DataTable, jobs: list[JobInfo]) -> None:
        selected = table.cursor_row
        table.clear()
        jobs, named = group_jobs(jobs)
        for job in jobs:
            dep = self.deployments.get(job.job_id)
            where = job.reason if job.is_pending else (job.nodes or job.reason)
            profile = dep.profile if dep else ""
            if job.job_id in named:
                profile = f"{profile} ▸ {named[job.job_id]}" if profile else named[job.job_id]
            table.add_row(job.job_id, job.name, profile, job.state, stage_text(job, self.stages),
                          where, format_duration(job.time_used), format_duration(job.time_limit), key=job.job_id)
        if jobs:
            table.move_cursor(row=min(selected, len(jobs) - 1))

    def on_cluster_failed(self, message: ClusterFailed) -> None:
        self.notify(message.error, title=message.title, severity="error", timeout=8)

    def selected_job(self) -> str | None:
        table = self.query_one("#jobs-table", DataTable)
        if self.focused is self.query_one("#history-table", DataTable):
            table = self.query_one("#history-table", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value)

    # ---- actions -----------------------------------------------------------------------------
    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self._open(str(event.row_key.value))

    def action_open(self) -> None:
        job = self.selected_job()
        if job:
            self._open(job)

    def _open(self, job_id: str) -> None:
        from r1console.tui.screens.job import JobScreen

        self.app.push_screen(JobScreen(self.session, job_id, self.deployments.get(job_id), stages=self.stages))

    def action_refresh(self) -> None:
        self.refresh_loop()

    def action_launch(self) -> None:
        from r1console.tui.screens.launch import LaunchScreen

        def launched(deployment) -> None:
            if deployment is not None:
                self.notify(f"Submitted job {deployment.job_id} ({deployment.profile})")
                self.refresh_loop()
                self._open(deployment.job_id)

        self.app.push_screen(LaunchScreen(self.session, self.app.config), launched)

    def action_cancel(self) -> None:
        job = self.selected_job()
        if job:
            self.confirm_cancel(job)

    def after_cancel(self, job_id: str) -> None:
        self.refresh_loop()

    def action_chat(self) -> None:
        job = self.selected_job()
        if job:
            self.open_chat(job)

    def action_batch(self) -> None:
        job = self.selected_job()
        if job:
            self.open_batch(job, self.deployments.get(job))

    def action_switch_cluster(self) -> None:
        from r1console.tui.screens.dialogs import ChoiceDialog

        names = sorted(self.app.config.clusters)
        if "local" not in names:
            names.append("local")
        current = self.session.name

        def chosen(name: str | None) -> None:
            if name and name != current:
                self.app.switch_cluster(name)

        self.app.push_screen(ChoiceDialog("Switch to cluster", names, current), chosen)
