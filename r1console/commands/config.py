"""`r1console config path|show|check|init`: the user config file."""

from __future__ import annotations

import argparse
import sys

import yaml

from r1console.commands._common import add_json_flag, print_json
from r1console.core import paths
from r1console.core.userconfig import load_user_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="where the config file is, what it holds, whether it is valid")
    psub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    psub.add_parser("path", help="print the config file's path").set_defaults(func=run_path)
    show = psub.add_parser("show", help="print the effective config")
    add_json_flag(show)
    show.set_defaults(func=run_show)
    psub.add_parser("check", help="validate the config file").set_defaults(func=run_check)
    init = psub.add_parser("init", help="write a commented starter config file (refuses to overwrite one)")
    init.add_argument("--force", action="store_true", help="overwrite an existing config file")
    init.set_defaults(func=run_init)


def run_path(args: argparse.Namespace) -> int:
    print(paths.config_file())
    return 0


def run_show(args: argparse.Namespace) -> int:
    data = load_user_config().model_dump(mode="json")
    if args.json:
        print_json(data)
    else:
        print(f"# {paths.config_file()}" + ("" if paths.config_file().exists() else " (not created yet: defaults)"))
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    return 0


def run_check(args: argparse.Namespace) -> int:
    config = load_user_config()
    path = paths.config_file()
    if not path.exists():
        print(f"{path}: no config file yet (defaults apply)")
        return 0
    print(f"{path}: ok ({len(config.clusters)} cluster(s), default: {config.default_cluster or 'none'})")
    return 0


STARTER = """\
# r1console config ({path}); `r1console config check` validates it, `config show` prints the result.
# Everything is optional. Lines starting with # are comments: uncomment and edit what you need.

# The cluster `r1console` and the commands use when --cluster is not given.
# default_cluster: mycluster

# clusters:
#   mycluster:
#     ssh_host: mylogin          # a Host alias from ~/.ssh/config (HostName, User, Port, IdentityFile,
#                                # ProxyJump apply) or a host name; default: the cluster's name
#     workdir: ~/r1console       # on the cluster: scripts, logs and API keys of your deployments
#     partition: gpu             # defaults for profiles that set none
#     account: my_lab
#     env: {{SLURM_CONF: /etc/slurm/slurm.conf}}   # environment of the SLURM commands run there
#   here:
#     transport: local           # when r1console runs on the login node itself

# Extra directories with your own profiles (searched before the shipped ones).
profile_dirs: []

# Key bindings: binding id -> keys (ids are listed in the console's help, ? or F1).
# keymap:
#   cancel-job: ctrl+k

theme: textual-dark
"""


def run_init(args: argparse.Namespace) -> int:
    from r1console.core.errors import R1Error

    path = paths.config_file()
    if path.exists() and not args.force:
        raise R1Error(f"{path}: a config file exists already; not overwritten",
                      hint="`r1console config init --force` replaces it; `r1console config show` prints it")
    text = STARTER.format(path=path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        raise R1Error(f"{path}: cannot write the config: {err.strerror or err}") from None
    load_user_config(path)  # the starter must itself be valid
    print(f"wrote {path}; edit it, then `r1console config check`")
    return 0
