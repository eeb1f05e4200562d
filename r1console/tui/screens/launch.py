"""Launch: pick a profile, override the common fields, see the memory plan and the script, submit.

A profile the planner says cannot load is refused unless the user ticks "submit anyway".
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Footer, Header, Input, Label, Select, Static, TextArea

from r1console.adapters.session import ClusterSession
from r1console.core.errors import ConfigError, R1Error
from r1console.core.plan import Plan, make_plan
from r1console.core.plan.local import resolve_model
from r1console.core.plan.text import render_text
from r1console.core.profiles import LoadedProfile, list_profiles, load_profile_for_cluster
from r1console.core.render import RenderPlan, key_file_for, render_script
from r1console.core.userconfig import ClusterSpec, UserConfig
from r1console.tui.messages import PreviewReady

# (label, profile field) for the fields users change most; an empty input keeps the profile's value.
FIELDS = [
    ("nodes", "slurm.nodes"),
    ("GPUs per node", "slurm.gpus_per_node"),
    ("partition", "slurm.partition"),
    ("account", "slurm.account"),
    ("time limit", "slurm.time"),
    ("vLLM version", "vllm.version"),
    ("max_num_seqs", "vllm.max_num_seqs"),
    ("max_num_batched_tokens", "vllm.max_num_batched_tokens"),
    ("gpu_memory_utilization", "vllm.gpu_memory_utilization"),
    ("max_model_len", "vllm.max_model_len"),
]


#: Seconds of quiet after a keystroke before the preview is made again.
PREVIEW_DEBOUNCE_S = 0.25


def _input_id(field: str) -> str:
    return "field-" + field.replace(".", "-")


def build_preview(key: tuple[str, tuple[str, ...]], cluster: ClusterSpec, dirs: list[Path]) -> PreviewReady:
    """Load the profile with the overrides, render its script and plan it (reads files: not on the UI thread)."""
    ref, overrides = key
    try:
        loaded = load_profile_for_cluster(ref, cluster, overrides=overrides, dirs=dirs)
    except ConfigError as err:
        return PreviewReady(key, None, "\n".join(err.problems), None, None, "")
    errors = "\n".join(f"warning: {w}" for w in loaded.warnings)
    workdir = loaded.profile.workdir
    script = render_script(loaded.profile, RenderPlan(workdir, key_file_for(loaded.profile, workdir, "<id>")))
    try:
        model, _config, note = resolve_model(loaded.profile.model.path, None)
        plan = make_plan(loaded.profile, model)
    except R1Error as err:
        return PreviewReady(key, loaded, errors, script, None, f"no memory plan: {err}")
    return PreviewReady(key, loaded, errors, script, plan, render_text(plan, loaded.warnings) + (f"\n{note}" if note else ""))


class LaunchScreen(Screen):
    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit", id="launch-submit"),
        Binding("escape", "dismiss_none", "Back", id="back"),
    ]

    def __init__(self, session: ClusterSession, config: UserConfig) -> None:
        super().__init__()
        self.session = session
        self.config = config
        self.loaded: LoadedProfile | None = None
        self.plan: Plan | None = None
        self.preview_key: tuple[str, tuple[str, ...]] | None = None  # the inputs loaded/plan were made for
        self._preview_timer: Timer | None = None
        self._pending_key: tuple[str, tuple[str, ...]] | None = None  # the preview a worker is making

    def compose(self) -> ComposeResult:
        profiles = sorted(list_profiles(self.config.profile_search_dirs()))
        yield Header()
        with Horizontal(id="launch-body"):
            with VerticalScroll(id="launch-form"):
                yield Label("profile")
                yield Select([(p, p) for p in profiles], value=profiles[0] if profiles else Select.BLANK,
                             id="profile-select", allow_blank=False)
                for label, field in FIELDS:
                    yield Label(label)
                    yield Input(placeholder="(from the profile)", id=_input_id(field))
                yield Checkbox("submit even if the plan says it cannot load", id="override")
                yield Static("", id="launch-errors")
                yield Button("Submit (ctrl+s)", variant="primary", id="submit")
            with Vertical(id="launch-preview"):
                with VerticalScroll(id="launch-plan-box"):
                    yield Static("", id="launch-plan")
                yield TextArea("", id="launch-script", read_only=True, language="bash")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"launch on {self.session.name}"
        self.refresh_preview()

    def overrides(self) -> list[str]:
        out = []
        for _label, field in FIELDS:
            value = self.query_one(f"#{_input_id(field)}", Input).value.strip()
            if value:
                out.append(f"{field}={value}")
        return out

    @on(Select.Changed)
    @on(Input.Changed)
    def _changed(self, event: Select.Changed | Input.Changed) -> None:
        """Debounced: the preview reads the profile chain and config.json, so not on every keystroke."""
        if self._preview_timer is not None:
            self._preview_timer.stop()
        self._preview_timer = self.set_timer(PREVIEW_DEBOUNCE_S, self.refresh_preview)

    def _preview_key(self) -> tuple[str, tuple[str, ...]] | None:
        ref = self.query_one("#profile-select", Select).value
        return (ref, tuple(self.overrides())) if isinstance(ref, str) else None

    def refresh_preview(self) -> None:
        """Start making the preview for the current inputs (in a thread; :class:`PreviewReady` shows it)."""
        self._preview_timer = None
        key = self._preview_key()
        if key is None:
            self.loaded = self.plan = None
            return
        if key in (self.preview_key, self._pending_key):
            return  # shown or being made (e.g. the Select's first Changed, right after mounting)
        self._pending_key = key
        self.preview_worker(key, self.config.profile_search_dirs())

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False, description="Planning")
    def preview_worker(self, key: tuple[str, tuple[str, ...]], dirs: list[Path]) -> None:
        self.post_message(build_preview(key, self.session.spec, dirs))

    def on_preview_ready(self, message: PreviewReady) -> None:
        if message.key != self._preview_key():
            return  # the inputs changed since: a newer preview is on its way
        self.apply_preview(message)

    def apply_preview(self, preview: PreviewReady) -> None:
        self.loaded, self.plan, self.preview_key = preview.loaded, preview.plan, preview.key
        if self._pending_key == preview.key:
            self._pending_key = None
        self.query_one("#launch-errors", Static).update(preview.errors)
        if preview.script is not None:
            self.query_one("#launch-script", TextArea).text = preview.script
        if preview.loaded is None:
            return
        self.query_one("#launch-plan", Static).update(preview.plan_text)
        self.query_one("#launch-plan-box").set_class(preview.plan is not None and not preview.plan.fits, "refused")

    @on(Button.Pressed, "#submit")
    def _submit_pressed(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        key = self._preview_key()
        if key is not None and key != self.preview_key:  # typed faster than the preview: make it now
            self.apply_preview(build_preview(key, self.session.spec, self.config.profile_search_dirs()))
        if self.loaded is None:
            self.notify("Fix the profile errors first.", severity="error")
            return
        if self.plan is not None and not self.plan.fits and not self.query_one("#override", Checkbox).value:
            self.notify(f"The plan says this cannot load: {self.plan.summary}. Tick 'submit even if…' to override.",
                        severity="error", timeout=8)
            return
        self.submit(self.loaded)

    @work(group="submit", exclusive=True, exit_on_error=False, description="Submitting")
    async def submit(self, loaded) -> None:
        try:
            deployment = await self.session.submit(loaded)
        except R1Error as err:
            from r1console.tui.screens.dialogs import ErrorDialog

            self.app.push_screen(ErrorDialog("sbatch failed", str(err)))
            return
        self.dismiss(deployment)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
