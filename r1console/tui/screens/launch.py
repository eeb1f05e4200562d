"""Launch: pick a profile, override the common fields, see the memory plan and the script, submit.

A profile the planner says cannot load is refused unless the user ticks "submit anyway".
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Header, Input, Label, Select, Static, TextArea

from r1console.core.errors import ConfigError, R1Error
from r1console.core.profiles import list_profiles
from r1console.core.render import RenderPlan, key_file_for, render_script

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


def _input_id(field: str) -> str:
    return "field-" + field.replace(".", "-")


class LaunchScreen(Screen):
    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit", id="launch-submit"),
        Binding("escape", "dismiss_none", "Back", id="back"),
    ]

    def __init__(self, session, config) -> None:
        super().__init__()
        self.session = session
        self.config = config
        self.loaded = None
        self.plan = None

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
    def _changed(self, event) -> None:
        self.refresh_preview()

    def refresh_preview(self) -> None:
        from r1console.adapters.slurm_client import load_profile_for_cluster
        from r1console.commands.plan import render_text, resolve_model
        from r1console.core.planner import make_plan

        errors = self.query_one("#launch-errors", Static)
        plan_box = self.query_one("#launch-plan", Static)
        ref = self.query_one("#profile-select", Select).value
        self.loaded = self.plan = None
        if not isinstance(ref, str):
            return
        try:
            loaded = load_profile_for_cluster(ref, self.session.spec, overrides=self.overrides(),
                                              dirs=self.config.profile_search_dirs())
        except ConfigError as err:
            errors.update("\n".join(err.problems))
            return
        self.loaded = loaded
        errors.update("\n".join(f"warning: {w}" for w in loaded.warnings))
        workdir = loaded.profile.workdir
        script = render_script(loaded.profile, RenderPlan(workdir, key_file_for(loaded.profile, workdir, "<id>")))
        self.query_one("#launch-script", TextArea).text = script
        try:
            model, _config, note = resolve_model(loaded.profile.model.path, None)
            self.plan = make_plan(loaded.profile, model)
            plan_box.update(render_text(self.plan, loaded.warnings) + (f"\n{note}" if note else ""))
            self.query_one("#launch-plan-box").set_class(not self.plan.fits, "refused")
        except R1Error as err:
            plan_box.update(f"no memory plan: {err}")
            self.query_one("#launch-plan-box").set_class(False, "refused")

    @on(Button.Pressed, "#submit")
    def _submit_pressed(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
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
