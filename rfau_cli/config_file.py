"""`rfau.toml`: the settings that stay the same from one deletion request to the next.

Found as `--config PATH`, else `./rfau.toml`, else the `[tool.rfau]` table of
`./pyproject.toml`. Top-level keys mirror the data flags (plus `model` and the `out`
template), `[unlearn]` holds the method's settings and `[audit]` the gates that both
`unlearn` and `audit` apply. The file is checked whole when a command starts (an unknown key
or a wrong type is exit 2 naming the file and the key, before any work) and then feeds
click's `default_map`: every value becomes the default of its flag, so a flag given on the
command line always wins and `ctx.get_parameter_source` tells flag from file from default.
Relative paths in the file are relative to the file's directory.

No click here: options.py attaches a loaded file to a command's context.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import string
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfau_cli.errors import InputError
from rfau_cli.settings import BY_CHOICES, DEVICE_CHOICES, PRECISION_CHOICES, SAVE_CHOICES, choice_list

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (pyproject.toml pulls tomli on 3.10)
    import tomli as tomllib

CONFIG_NAME = "rfau.toml"
PYPROJECT_NAME = "pyproject.toml"
DEFAULT_OUT_ROOT = Path("rfau-out")  # relative to the working directory
SHA_CHARS = 12  # hex digits of the forget list's sha256 in output names
PLACEHOLDERS = ("model", "forget_sha")


@dataclass(frozen=True)
class _Key:
    """One key of the file: its kind (how it is checked and converted) and, for a choice,
    the values allowed."""

    kind: str  # path, str, int, float, choice, list, gates, table, template
    choices: tuple[str, ...] = ()


_DATA_KEYS = {
    "data": _Key("path"),
    "test_data": _Key("path"),
    "split": _Key("str"),
    "id_column": _Key("str"),
    "input_column": _Key("str"),
    "label_column": _Key("str"),
    "by": _Key("choice", BY_CHOICES),
}
SCHEMA: dict[str, dict[str, _Key]] = {
    "": {**_DATA_KEYS, "model": _Key("path"), "out": _Key("template")},
    "unlearn": {
        "method": _Key("str"),
        "epochs": _Key("int"),
        "lr": _Key("float"),
        "rank": _Key("int"),
        "alpha": _Key("float"),
        "gamma": _Key("float"),
        "batch_size": _Key("int"),
        "retain_ratio": _Key("int"),
        "target_modules": _Key("list"),
        "taps": _Key("str"),
        "seed": _Key("int"),
        "save": _Key("choice", SAVE_CHOICES),
        "device": _Key("choice", DEVICE_CHOICES),
        "precision": _Key("choice", PRECISION_CHOICES),
        "cache_mb": _Key("int"),
        "workers": _Key("int"),
        "set": _Key("table"),
    },
    "audit": {"require": _Key("gates"), "attacks": _Key("list")},
}
# Which keys feed which command: (table, keys) pairs, None meaning every key of the table.
# `out` is not here: it is a template, rendered by `output_dir` once the forget list is known.
_DATA = (*_DATA_KEYS, "model")
FEEDS: dict[str, tuple[tuple[str, tuple[str, ...] | None], ...]] = {
    "unlearn": (("", _DATA), ("unlearn", None), ("audit", ("require",))),
    "retrain": (("", _DATA),),
    "bench": (("", _DATA),),
    "audit": (("", tuple(_DATA_KEYS)), ("audit", None)),
}
# The click parameter a key sets, where the names differ.
_PARAM_OF = {"set": "set_"}
# Hints for keys people put in the file that do not belong there.
_HINTS = {"forget": "the forget list changes with each request: give it with --forget"}


@dataclass(frozen=True)
class ConfigFile:
    """A checked config file: its values per table ("" is the top level), in the form click
    takes as defaults (paths joined to the file's directory, lists as the flags spell them)."""

    path: Path
    label: str  # how messages and `rfau config` name it: "rfau.toml", "pyproject.toml [tool.rfau]"
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def defaults_for(self, command: str, params: set[str]) -> dict[str, Any]:
        """click's `default_map` for `command`: the file's values of the keys it reads, by
        parameter name, limited to `params` (the command's own)."""
        defaults: dict[str, Any] = {}
        for table, keys in FEEDS.get(command, ()):
            for key, value in self.values.get(table, {}).items():
                name = _PARAM_OF.get(key, key)
                if (keys is None or key in keys) and name in params:
                    defaults[name] = value
        return defaults

    @property
    def out_template(self) -> str | None:
        return self.values.get("", {}).get("out")


def find_config(explicit: str | Path | None) -> ConfigFile | None:
    """The config file in force: `explicit` (it must exist), else ./rfau.toml, else the
    [tool.rfau] table of ./pyproject.toml, else None. `explicit` may come as the command
    line's text: typer before 0.29 hands the root `--config` over unconverted.

    Raises:
        InputError: the file is missing (explicit), not TOML, or has an unknown key or a
            value of the wrong type.
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise InputError(f"--config file not found: {path}")
        if path.name == PYPROJECT_NAME:
            return _from_pyproject(path, required=True)
    elif Path(CONFIG_NAME).exists():  # a directory of that name is refused (_read_toml), not skipped
        path = Path(CONFIG_NAME)
    elif Path(PYPROJECT_NAME).exists():
        return _from_pyproject(Path(PYPROJECT_NAME), required=False)
    else:
        return None
    return _checked(path, str(path), _read_toml(path, str(path)), "")


def _from_pyproject(path: Path, required: bool) -> ConfigFile | None:
    table = _read_toml(path, str(path)).get("tool", {}).get("rfau")
    if table is None:
        if required:
            raise InputError(f"{path}: no [tool.rfau] table")
        return None
    if not isinstance(table, dict):
        raise InputError(f"{path}: tool.rfau must be a table")
    return _checked(path, f"{path} [tool.rfau]", table, "tool.rfau")


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{label}: not valid TOML: {err}") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{label}: not valid TOML: not UTF-8 text (byte {err.start})") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a directory, not a config file") from None
    except OSError as err:
        raise InputError(f"{label}: cannot be read: {err.strerror or err}") from None


def _checked(path: Path, label: str, raw: Mapping[str, Any], prefix: str) -> ConfigFile:
    """Every key known and of the right type, converted to what its flag takes."""
    name = label.split(" [", 1)[0]
    base = path.parent
    values: dict[str, dict[str, Any]] = {"": {}}
    for key, value in raw.items():
        if key in SCHEMA and key != "":
            if not isinstance(value, dict):
                raise InputError(f"{name}: {_where(prefix, '')}{key}: must be a table ([{key}])")
            values[key] = {
                sub: _convert(SCHEMA[key][sub], v, base, name, _where(prefix, key) + sub)
                for sub, v in value.items()
                if _known(sub, key, name, prefix, isinstance(v, dict))
            }
        elif _known(key, "", name, prefix, isinstance(value, dict)):
            values[""][key] = _convert(SCHEMA[""][key], value, base, name, _where(prefix, "") + key)
    return ConfigFile(path, label, values)


def _where(prefix: str, table: str) -> str:
    """How a message names a key's table: '[unlearn] ', '[tool.rfau.unlearn] ', '' or '[tool.rfau] '."""
    full = ".".join(p for p in (prefix, table) if p)
    return f"[{full}] " if full else ""


def _known(key: str, table: str, name: str, prefix: str, is_table: bool) -> bool:
    """True when `key` belongs in `table`; else InputError with the closest spelling or the
    table it belongs in."""
    if key in SCHEMA[table]:
        return True
    if key in _HINTS:
        hint = _HINTS[key]
    else:
        home = next((t for t, keys in SCHEMA.items() if key in keys and t != table), None)
        tables = [t for t in SCHEMA if t] if table == "" else []
        close = difflib.get_close_matches(key, [*SCHEMA[table], *tables], n=1)
        if home is not None:
            hint = f"it belongs in [{home}]" if home else "it belongs at the top level, before any table"
        elif close:
            hint = f"did you mean {close[0]}?"
        else:
            hint = "known: " + ", ".join(SCHEMA[table]) + (", " + ", ".join(f"[{t}]" for t in tables) if tables else "")
    what = f"[{key}]: unknown table" if is_table and table == "" else f"{key}: unknown key"
    raise InputError(f"{name}: {_where(prefix, table)}{what} ({hint})")


def _convert(spec: _Key, value: Any, base: Path, name: str, where: str) -> Any:
    """A file value as its flag would take it; InputError naming the key when the type is wrong."""

    def wrong(expected: str) -> InputError:
        return InputError(f"{name}: {where}: must be {expected}, not {_shown(value)}")

    kind = spec.kind
    if kind in ("str", "path", "template", "choice"):
        if not isinstance(value, str) or not value.strip():
            raise wrong("a non-empty string")
        if kind == "path":
            return str(base / Path(value).expanduser())
        if kind == "choice" and value not in spec.choices:
            raise InputError(f"{name}: {where}: must be {choice_list(spec.choices)}, not {value!r}")
        if kind == "template":
            _check_template(value, name, where)
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong("an integer")
        return value
    if kind == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise wrong("a number")
        return float(value)
    if kind in ("list", "gates"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
            raise wrong("a string or a list of strings")
        if kind == "gates":
            _check_gates(items, name, where)
            return list(items)
        return ",".join(v.strip() for v in items)  # the comma list the flag takes
    if kind == "table":
        if not isinstance(value, dict):
            raise wrong("a table, e.g. {kd_t = 2}")
        pairs = []
        for k, v in value.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif not isinstance(v, (str, int, float)):
                raise InputError(f"{name}: {where}.{k}: must be a string, number or boolean, not {_shown(v)}")
            pairs.append(f"{k}={v}")
        return pairs  # as `--set k=v` options
    raise ValueError(f"SCHEMA names an unknown key kind {kind!r}")  # a bug in this module, not user input


def _shown(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}
    return f"{kinds.get(type(value), type(value).__name__)} ({value!r})"


def _check_template(template: str, name: str, where: str) -> None:
    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    try:
        fields = _template_fields(template)
    except ValueError as err:
        raise InputError(f"{name}: {where}: bad template {template!r} ({err}); placeholders: {known}") from None
    for f in fields:
        if f not in PLACEHOLDERS:
            raise InputError(f"{name}: {where}: unknown placeholder {{{f}}} in {template!r} (known: {known})")
    # '..' after a placeholder undoes it: every request would get the same directory (or one
    # outside the tree the template names). Before the first placeholder it is a plain path.
    parts = Path(template).parts
    first = next((i for i, part in enumerate(parts) if "{" in part), len(parts))
    if ".." in parts[first:]:
        raise InputError(f"{name}: {where}: '..' after a placeholder in {template!r} undoes it; name the directory")


def _template_fields(template: str) -> list[str]:
    """The placeholders a template names ('{model}' -> 'model'); ValueError on unbalanced braces."""
    return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]


def _check_gates(exprs: list[str], name: str, where: str) -> None:
    from rfau_cli.gates import GateSyntaxError, parse_gate

    for expr in exprs:
        try:
            parse_gate(expr)
        except GateSyntaxError as err:
            raise InputError(f"{name}: {where}: {err}") from None


def file_feeds(command: str, key: str) -> bool:
    """Whether a top-level `key` of the file feeds `command` (for the missing-flag message)."""
    return any(table == "" and key in (keys or ()) for table, keys in FEEDS.get(command, ()))


def missing_message(flag: str, key: str, config: ConfigFile | None) -> str:
    """The error for a required flag given neither on the command line nor in the file."""
    where = config.label if config is not None else CONFIG_NAME
    return f"{flag} is required (give the flag, or `{key} = ...` in {where})"


def forget_sha256(forget: str) -> str:
    """The forget list's sha256, the one the report records (data.read_forget_list).

    `-` (stdin) is read here and put back, so the run reads the same bytes again.
    """
    from rfau_cli.data import read_forget_list

    if forget != "-":
        return read_forget_list(forget).sha256
    stream = sys.stdin
    raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode()
    sys.stdin = _replay(raw)
    sha = read_forget_list("-").sha256
    sys.stdin = _replay(raw)
    return sha


def _replay(raw: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8")


def model_name(model: Path) -> str:
    """`{model}`: the checkpoint directory's name (the directory of a given model.safetensors)."""
    path = Path(model).expanduser().resolve()
    return (path.parent if path.suffix == ".safetensors" or path.is_file() else path).name


def output_dir(config: ConfigFile | None, model: Path, forget: str, suffix: str = "") -> Path:
    """Where a run writes when no --out flag is given (`planned_output`); it must not exist yet.

    Raises:
        InputError: the directory exists (this request was answered there already).
    """
    out = planned_output(config, model, forget, suffix)
    if out.exists() or out.is_symlink():
        if config is not None and _from_template(config, suffix):
            raise InputError(
                f"{out} already exists (the output `out = {config.out_template!r}` of {config.label} names for "
                "this request): give --out DIR to write elsewhere"
            )
        raise InputError(
            f"{out} already exists (the default output for this forget list: it was answered there); "
            f"give --out DIR, or `out = ...` in {CONFIG_NAME}, to write elsewhere"
        )
    return out


def planned_output(config: ConfigFile | None, model: Path, forget: str, suffix: str = "") -> Path:
    """The file's `out` template filled in (relative to the file), else
    rfau-out/<first 12 hex of the forget list's sha256><suffix> under the working directory.
    A `suffix` (retrain's "-retrain") always takes the default: the template names unlearn's output."""
    if config is not None and _from_template(config, suffix):
        template = str(config.out_template)
        fields = _template_fields(template)  # checked when the file was read
        fills = {"model": model_name(model)} if "model" in fields else {}
        if "forget_sha" in fields:
            fills["forget_sha"] = forget_sha256(forget)[:SHA_CHARS]
        return config.path.parent / Path(template.format_map(fills)).expanduser()
    return DEFAULT_OUT_ROOT / (forget_sha256(forget)[:SHA_CHARS] + suffix)


def output_pattern(config: ConfigFile | None, suffix: str = "") -> str:
    """`planned_output` before the forget list is known: the template, placeholders unfilled."""
    if config is not None and _from_template(config, suffix):
        return str(config.path.parent / str(config.out_template))
    return str(DEFAULT_OUT_ROOT / ("{forget_sha}" + suffix))


def _from_template(config: ConfigFile | None, suffix: str) -> bool:
    return config is not None and config.out_template is not None and not suffix


@contextlib.contextmanager
def parent_made(out: Path) -> Iterator[None]:
    """Create the missing parent directories of a default or templated output (rfau-out/)
    for the run, and remove the ones made here again if the run fails before writing there."""
    made = [p for p in reversed(Path(out).parents) if not p.exists()]
    for p in made:
        p.mkdir(exist_ok=True)  # exist_ok: another process of the same run may have made it
    try:
        yield
    except BaseException:
        for p in reversed(made):
            with contextlib.suppress(OSError):
                p.rmdir()  # only while empty: never what another run wrote there
        raise
