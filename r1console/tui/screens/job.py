"""One job: stage banner, shard progress with ETA, per-GPU memory, server metrics, and its logs.

All I/O runs in workers driving a headless JobWatch (adapters/job_watch.py); they post
coalesced messages and the handlers re-render from the watch's state.
"""

from __future__ import annotations

import asyncio
import contextlib

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, ProgressBar, Static, TabbedContent, TabPane

from r1console.adapters.deployments import Deployment
from r1console.adapters.job_watch import JobWatch, WatchEvent
from r1console.adapters.session import ClusterSession
from r1console.core.errors import R1Error
from r1console.core.lifecycle import Stage
from r1console.core.plan import Plan
from r1console.tui.job_actions import JobActions
from r1console.tui.messages import GpusSampled, LifecycleChanged, LogGrew, MetricsSampled
from r1console.tui.screens.dialogs import TextInputDialog
from r1console.tui.widgets.gpu_panel import GpuPanel
from r1console.tui.widgets.log_view import LogView
from r1console.tui.widgets.metrics_panel import MetricsPanel
from r1console.tui.widgets.stage_banner import StageBanner


def _plan_for(deployment: Deployment | None) -> Plan | None:
    """The memory plan of the deployment's profile, to compare with what vLLM logged."""
    if deployment is None or not deployment.profile_source:
        return None
    try:
        from r1console.core.plan import make_plan
        from r1console.core.plan.local import resolve_model
        from r1console.core.profiles import load_profile

        profile = load_profile(deployment.profile_source).profile
        model, _config, _note = resolve_model(profile.model.path, None)
        return make_plan(profile, model)
    except (R1Error, OSError, ValueError):
        return None


class JobScreen(JobActions):
    BINDINGS = [
        Binding("slash", "search", "Search", id="log-search"),
        Binding("f", "filter", "Filter", id="log-filter"),
        # the log panes' navigation: bound here once, so a focused LogView and the screen share one id
        Binding("n", "next_match", "Next match", id="log-next", show=False),
        Binding("N", "previous_match", "Prev match", id="log-previous", show=False),
        Binding("end,G", "follow", "Follow", id="log-follow", show=False),
        Binding("c", "cancel", "Cancel job", id="cancel-this-job"),
        Binding("t", "chat", "Chat", id="chat-this-job"),
        Binding("b", "batch", "Batch", id="batch-this-job"),
        Binding("escape", "app.pop_screen", "Back", id="back"),
    ]

    def __init__(self, session: ClusterSession, job_id: str, deployment: Deployment | None = None, *,
                 stages: dict[str, str] | None = None) -> None:
        super().__init__()
        self.session = session
        self.job_id = job_id
        self.deployment = deployment
        self.stages = stages if stages is not None else {}
        self.watch = JobWatch(session, job_id)
        self._plan: Plan | None = None  # made by load_plan once vLLM has logged figures to compare
        self._plan_requested = False

    def compose(self) -> ComposeResult:
        yield Header()
        title = f"Job {self.job_id}"
        if self.deployment is not None:
            title += f" · profile {self.deployment.profile} · port {self.deployment.port}"
        yield Static(title, id="job-title")
        yield StageBanner("◷ waiting for SLURM…", id="stage-banner")
        with Vertical(id="shard-progress"):
            yield ProgressBar(total=None, show_eta=False, id="shard-bar")
            yield Static("", id="plan-compare")
        with Horizontal(id="job-top"):
            yield GpuPanel(id="gpu-panel")
            yield MetricsPanel(id="metrics-panel")
        with TabbedContent(id="log-tabs"):
            with TabPane(".err (progress, warnings)", id="tab-err"):
                yield LogView(self.watch.buffers["err"], id="log-err")
            with TabPane(".out (vLLM log)", id="tab-out"):
                yield LogView(self.watch.buffers["out"], id="log-out")
        yield Static("", id="log-status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"job {self.job_id}"
        notify = self._notify
        self.run_loop(self.watch.state_loop(notify), "state")
        self.run_loop(self.watch.follow_log("out", notify), "log .out")
        self.run_loop(self.watch.follow_log("err", notify), "log .err")
        self.run_loop(self.watch.gpu_loop(notify), "GPU sampling")
        self.run_loop(self.watch.server_loop(notify), "server checks")

    async def on_unmount(self) -> None:
        """Stop this screen's watch loops and let their clean-up (killing a log follow's ``tail``)
        finish now, rather than after the event loop has gone."""
        mine = [w for w in self.app.workers if w.node is self]
        for worker in mine:
            worker.cancel()
        for worker in mine:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(worker.wait(), 5)

    def run_loop(self, coro, what: str) -> None:
        self.run_worker(coro, group="job-watch", exit_on_error=False, description=f"Watching job {self.job_id}: {what}")

    @work(thread=True, exclusive=True, group="job-plan", exit_on_error=False, description="Planning")
    def load_plan(self) -> None:
        """The deployment's memory plan, off the UI thread; the lifecycle view then compares it with vLLM's log."""
        plan = _plan_for(self.deployment)
        if plan is not None:
            self.app.call_from_thread(self._plan_loaded, plan)

    def _plan_loaded(self, plan: Plan) -> None:
        self._plan = plan
        self.post_message(LifecycleChanged(self.job_id))

    def _notify(self, what: WatchEvent) -> None:
        if what.stream is not None:
            self.post_message(LogGrew(self.job_id, what.stream))
            self.post_message(LifecycleChanged(self.job_id))
        elif what is WatchEvent.GPUS:
            report = self.watch.gpus
            self.post_message(GpusSampled(self.job_id, list(report.nodes) if report else [], self.watch.gpu_error))
        elif what is WatchEvent.METRICS:
            self.post_message(MetricsSampled(self.job_id, self.watch.metrics,
                                             self.watch.tok_s[-1] if self.watch.tok_s else None))
        else:
            self.post_message(LifecycleChanged(self.job_id))

    # ---- rendering -----------------------------------------------------------------------------
    def on_log_grew(self, message: LogGrew) -> None:
        view = self.query_one(f"#log-{message.stream}", LogView)
        view.refresh_lines()
        self._log_status()

    def on_lifecycle_changed(self, message: LifecycleChanged) -> None:
        state = self.watch.snapshot()
        self.stages[self.job_id] = state.stage.value
        self.query_one(StageBanner).show(state)
        bar = self.query_one("#shard-bar", ProgressBar)
        if state.shards_total:
            bar.update(total=state.shards_total, progress=state.shards_loaded or 0)
        logged = state.model_load_gib is not None or state.kv_cache_tokens is not None
        if logged and not self._plan_requested:
            self._plan_requested = True
            self.load_plan()
        if self._plan is not None and logged:
            from r1console.core.plan import compare_with_observed

            comparison = compare_with_observed(self._plan, state.model_load_gib, state.kv_cache_tokens)
            self.query_one("#plan-compare", Static).update("plan vs vLLM: " + " · ".join(comparison.lines))
        if state.stage is Stage.READY and self.watch.server_error:
            self.query_one("#plan-compare", Static).update(self.watch.server_error)

    def on_gpus_sampled(self, message: GpusSampled) -> None:
        panel = self.query_one(GpuPanel)
        if message.samples:
            panel.show(message.samples)
        elif message.error:
            panel.show_message(message.error)

    def on_metrics_sampled(self, message: MetricsSampled) -> None:
        self.query_one(MetricsPanel).show(message.metrics, list(self.watch.tok_s))

    def _active_log(self) -> LogView:
        active = self.query_one(TabbedContent).active
        return self.query_one("#log-out" if active == "tab-out" else "#log-err", LogView)

    def _log_status(self) -> None:
        view = self._active_log()
        index, count = view.match_position()
        bits = [f"{view.line_count} lines", "following" if view.follow else "paused (End to follow)"]
        if view.search_result.pattern:
            bits.append(f"search '{view.search_result.pattern}': {index}/{count}")
        if view.filter:
            bits.append(f"filter '{view.filter}'")
        path = self.watch.log_paths.get("out" if view.id == "log-out" else "err")
        if path:
            bits.append(path)
        self.query_one("#log-status", Static).update(" · ".join(bits))

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._log_status()

    # ---- actions ---------------------------------------------------------------------------------
    def action_search(self) -> None:
        view = self._active_log()

        def apply(pattern: str | None) -> None:
            if pattern is not None:
                result = view.search(pattern)
                if pattern and not result.count:
                    self.notify(f"'{pattern}' not found")
                self._log_status()

        self.app.push_screen(TextInputDialog("Search the log (regex; n / N for next / previous)",
                                             view.search_result.pattern), apply)

    def action_filter(self) -> None:
        view = self._active_log()

        def apply(pattern: str | None) -> None:
            if pattern is not None:
                view.set_filter(pattern)
                self._log_status()

        self.app.push_screen(TextInputDialog("Show only lines matching (empty: all)", view.filter), apply)

    def action_next_match(self) -> None:
        self._active_log().action_next_match()
        self._log_status()

    def action_previous_match(self) -> None:
        self._active_log().action_previous_match()
        self._log_status()

    def action_follow(self) -> None:
        self._active_log().action_follow()
        self._log_status()

    def action_cancel(self) -> None:
        self.confirm_cancel(self.job_id)

    def action_chat(self) -> None:
        self.open_chat(self.job_id)

    def action_batch(self) -> None:
        self.open_batch(self.job_id, self.deployment)
