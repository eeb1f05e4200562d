"""What the jobs screen and the job screen both do to one job: cancel it (confirmed), chat, batch.

A mixin for a :class:`~textual.screen.Screen` with a ``session``; the cancel runs in a worker and
ends in one :class:`~r1console.tui.messages.CancelFinished` message, handled here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.screen import Screen

from r1console.core.errors import R1Error
from r1console.tui.messages import CancelFinished
from r1console.tui.screens.dialogs import ConfirmDialog, ErrorDialog

if TYPE_CHECKING:
    from r1console.adapters.deployments import Deployment
    from r1console.adapters.session import ClusterSession


class JobActions(Screen):
    """Cancel / chat / batch on one job of ``self.session``; override :meth:`after_cancel` to react."""

    session: ClusterSession

    def confirm_cancel(self, job_id: str) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.cancel_job(job_id)

        self.app.push_screen(ConfirmDialog(f"Cancel job {job_id} on {self.session.name}?", yes="Cancel job",
                                           no="Keep it"), confirmed)

    @work(group="cancel", exit_on_error=False, description="Cancelling")
    async def cancel_job(self, job_id: str) -> None:
        try:
            info = await self.session.cancel(job_id)
        except R1Error as err:
            self.post_message(CancelFinished(job_id, None, str(err)))
            return
        self.post_message(CancelFinished(job_id, info.state))

    def on_cancel_finished(self, message: CancelFinished) -> None:
        if message.error is not None:
            self.app.push_screen(ErrorDialog(f"Cancelling job {message.job_id} failed", message.error))
            return
        self.notify(f"Job {message.job_id}: {message.state}")
        self.after_cancel(message.job_id)

    def after_cancel(self, job_id: str) -> None:
        """Called once SLURM has taken the cancel (the jobs screen refreshes)."""

    def open_chat(self, job_id: str) -> None:
        from r1console.tui.screens.chat import ChatScreen

        self.app.push_screen(ChatScreen(f"job {job_id}", lambda: self.session.open_server(job_id)))

    def open_batch(self, job_id: str, deployment: Deployment | None) -> None:
        from r1console.tui.screens.batch import BatchScreen

        self.app.push_screen(BatchScreen(f"job {job_id}", lambda: self.session.open_server(job_id),
                                         deployment=deployment))
