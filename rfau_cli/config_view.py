"""`rfau config`: the settings a command would run with, and where each one comes from.

The command's own context is built from the same command line, with the config file as
click's `default_map`, exactly as a run builds it, so what this shows is what a run gets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from rfau_cli.config_file import output_pattern, planned_output
from rfau_cli.errors import InputError
from rfau_cli.options import CONFIG_META

COMMANDS = ("unlearn", "audit", "retrain", "bench")
_NOT_SETTINGS = ("json_out", "quiet", "config_file", "help")  # how to print, not what to run
_OUT_SUFFIX = {"unlearn": "", "retrain": "-retrain"}  # commands whose --out has a default


def resolve_settings(ctx: typer.Context, command: str, args: list[str]) -> dict[str, Any]:
    """{"command", "config_file", "settings": {name: {"flag", "value", "from"}}} for `command`
    run with `args`; "from" is "flag", the config file's label, or "default".

    Raises:
        InputError: an unknown command (a bad config file fails earlier, in its callback).
    """
    if command not in COMMANDS:
        raise InputError(f"rfau config: COMMAND must be one of {', '.join(COMMANDS)}, not {command!r}")
    cmd = ctx.find_root().command.get_command(ctx, command)  # type: ignore[attr-defined]
    # resilient: a required flag that nothing gives shows as unset instead of failing
    sub = cmd.make_context(command, list(args), parent=ctx, resilient_parsing=True)
    config = ctx.meta.get(CONFIG_META)
    settings: dict[str, Any] = {}
    for param in cmd.params:
        if param.name in _NOT_SETTINGS or not getattr(param, "opts", None) or not param.expose_value:
            continue
        source = getattr(sub.get_parameter_source(param.name), "name", "")
        value = sub.params.get(param.name)
        origin = {"COMMANDLINE": "flag", "DEFAULT_MAP": config.label if config else "file"}.get(source, "default")
        if param.required and value is None:
            origin = "missing: required"
        # keyed as the file spells it (`set`, not the parameter's `set_`)
        settings[param.name.rstrip("_")] = {"flag": max(param.opts, key=len), "value": _plain(value), "from": origin}
    out = settings.get("out")
    if command in _OUT_SUFFIX and out is not None and out["value"] is None:
        out.update(_default_out(config, sub.params, _OUT_SUFFIX[command]))
    return {"command": command, "config_file": str(config.path) if config else None, "settings": settings}


def _default_out(config: Any, params: dict[str, Any], suffix: str) -> dict[str, str]:
    """The output a run would choose: filled in when the forget list is a file, else the pattern."""
    forget, model = params.get("forget"), params.get("model")
    from_file = config is not None and config.out_template is not None and not suffix
    origin = config.label if from_file else "default"
    if forget and forget != "-" and model is not None:
        out = planned_output(config, Path(model), forget, suffix)
        # the run would refuse it (exit 2): say so here, where a script asks where the answer goes
        taken = " (exists already: a run stops; give --out)" if out.exists() else ""
        return {"value": str(out), "from": origin + taken}
    return {"value": output_pattern(config, suffix), "from": origin}


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def settings_table(view: dict[str, Any]) -> str:
    """The view as aligned text: option, value, where it came from."""
    rows = [("option", "value", "from")]
    for item in view["settings"].values():
        value = item["value"]
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        shown = "-" if value is None or value == [] else shown
        rows.append((item["flag"], shown, item["from"]))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    head = f"rfau {view['command']}: config file {view['config_file'] or '(none found)'}"
    return "\n".join([head] + [f"  {a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows])
