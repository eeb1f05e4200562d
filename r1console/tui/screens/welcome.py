"""Shown when no cluster is configured: what to put in the config file, and the demo."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Markdown

from r1console.core import paths

WELCOME = """\
# Welcome to r1console

No cluster is configured yet. r1console reaches your cluster's login node over SSH (one connection,
host keys verified) — or runs locally when started on the login node.

Create **`{config}`** with, for example:

```yaml
default_cluster: mycluster
clusters:
  mycluster:
    ssh_host: login.example.edu   # or a Host alias from ~/.ssh/config (ProxyJump etc. apply)
    workdir: ~/r1console
    partition: gpu
    account: my_lab
```

Then start `r1console` again, or `r1console --cluster mycluster`. On the login node itself:
`r1console --cluster local`.

**Try it first:** press **d** for the demo — a simulated 2 × 4 H200 cluster with a DeepSeek-R1
deployment loading its 163 shards, a simulated vLLM server to chat with, and batches to run.
Nothing leaves this machine.
"""


class WelcomeScreen(Screen):
    BINDINGS = [Binding("d", "demo", "Open the demo", id="open-demo")]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Markdown(WELCOME.format(config=paths.config_file()))
        yield Footer()

    def action_demo(self) -> None:
        self.app.exit(result="demo")
