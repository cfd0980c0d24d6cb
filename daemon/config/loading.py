"""Reading a configuration: a YAML file or a mapping to :class:`~daemon.config.options.Config`.

:func:`load` reads a file (its YAML as :mod:`daemon.config.yamlfile` reads it), fills in defaults, and fails at start with
:class:`~daemon.config.options.ConfigError` naming the key and the reason; unknown keys are
errors too (a typo must not silently become a default). Each value is coerced to its
field's type (:func:`from_dict`), then the rules between values are checked
(:mod:`daemon.config.rules`).

Relative paths in a file (``state.dir``, ``registry.dir``, the TLS files of ``kafka.client``
and ``{file: PATH}`` secrets) are relative to the file's directory (see :func:`load`).

Secrets are never written in the file itself: give ``{env: NAME}`` or ``{file: PATH}``
where a secret goes, and the value is read at start.
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import io
import os
import re
import types
import typing
from pathlib import Path

import yaml

from daemon.config import rules, yamlfile
from daemon.config.options import Config, ConfigError, ModelConfig, Secret

#: Whether a secret whose variable or file is missing is an error (see :func:`load`).
_secrets_required: contextvars.ContextVar = contextvars.ContextVar("driftd_secrets_required", default=True)


def secrets_required() -> bool:
    """Whether the configuration being read must have its secrets (see :func:`load`)."""
    return _secrets_required.get()


def load(path: str | os.PathLike, secrets: bool = True, state_dir: bool = False) -> Config:
    """Read and validate a configuration file; raises :class:`ConfigError` naming every
    mistake found (:func:`from_dict`).

    ``secrets=False``: a secret (``{env: NAME}`` or ``{file: PATH}``) whose variable is
    unset or whose file cannot be read is an empty :class:`Secret` instead of an error, and
    models with learners need no registry key, for commands that neither send nor sign
    (``driftd models``, ``driftd replay``), not the daemon (default: True, every secret
    must be there). ``state_dir=True``: ``state.dir`` must be usable on this machine too
    (``driftd run``; default: False, see :func:`from_dict`).

    Relative paths written in the file (:data:`PATH_KEYS`, and every ``{file: PATH}``
    secret) are taken relative to the file's directory, not the current one, so that a
    file means the same wherever driftd is started from. The directory is the one the
    path names, symbolic links not followed (a Kubernetes ConfigMap mounts its files as
    links into a hidden directory). Defaults of keys the file does not set, and
    configurations built with :func:`from_dict`, are relative to the current directory."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError("", f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError("", f"{path} is not UTF-8 text (byte {e.start})") from None
    try:
        stream = io.StringIO(text)
        stream.name = str(path)  # PyYAML names it in its errors (else "<unicode string>")
        data = yamlfile.read(stream)
    except yaml.YAMLError as e:
        raise ConfigError("", f"{path} is not valid YAML: {e}") from None
    yamlfile.check_acyclic(data, "")
    if isinstance(data, dict):
        data = _relative_to(data, Path(os.path.abspath(path)).parent)
    token = _secrets_required.set(secrets)
    try:
        return from_dict(data or {}, state_dir=state_dir)
    finally:
        _secrets_required.reset(token)


#: Settings that are paths of files or directories (besides ``{file: PATH}`` secrets).
PATH_KEYS = ("state.dir", "registry.dir", "kafka.client.ssl_cafile", "kafka.client.ssl_certfile",
             "kafka.client.ssl_keyfile", "kafka.client.ssl_crlfile")


def _relative_to(data: dict, base: Path) -> dict:
    """A copy of the file's ``data`` with relative paths made absolute against ``base``."""
    def absolute(value):
        return str(base / value) if isinstance(value, str) and value and not os.path.isabs(value) else value

    def secrets(value):
        # Secrets ({file: PATH}) go anywhere but in the models' settings, whose mappings
        # (feature names, learner parameters) are the user's own words.
        if isinstance(value, dict):
            if set(value) == {"file"}:
                return {"file": absolute(value["file"])}
            return {k: secrets(v) for k, v in value.items()}
        if isinstance(value, list):
            return [secrets(v) for v in value]
        return value

    out = {k: v if k in ("models", "model_defaults") else secrets(v) for k, v in data.items()}
    for key in PATH_KEYS:
        *parents, name = key.split(".")
        section = out
        for part in parents:
            section = section.get(part) if isinstance(section, dict) else None
        if isinstance(section, dict) and name in section:
            section[name] = absolute(section[name])
    return out


def from_dict(data: dict, state_dir: bool = False) -> Config:
    """The :class:`Config` of ``data`` (a file's mapping of sections), defaults filled in.

    Raises :class:`ConfigError` naming every mistake it finds at once: first every unknown
    key and value of a wrong type, of every section and model; when there are none, every
    broken rule between values (:func:`daemon.config.rules.check`), but those that follow
    from another of the same setting. ``state_dir``: whether ``state.dir`` must be a
    directory driftd can use (or make) on this machine (default: False: reading a file
    looks at nothing else; ``driftd run`` asks it, ``check-config`` warns; no directory is made)."""
    if not isinstance(data, dict):
        raise ConfigError("", "the configuration must be a mapping of sections")
    data = dict(data)
    models = data.pop("models", None) or {}
    errors = []  # every mistake of the file at once, sections and models alike
    try:
        config = _build(Config, data, "")
    except ConfigError as e:
        errors.append(e)
        config = Config()  # (the models' values are read alone: defaults are read already)
    if not isinstance(models, dict):
        raise ConfigError.first_of([*errors, ConfigError("models", "must be a mapping of model name to settings")])
    defaults = dataclasses.asdict(config.model_defaults)
    if (data.get("model_defaults") or {}).get("decay_metrics") is None:
        defaults["decay_metrics"] = None  # each model's task then chooses its own

    inherited = {}  # model -> the settings it takes from model_defaults

    def build_model(item):
        name, overrides = item
        problem = yamlfile.name_problem(name)
        if problem:
            raise ConfigError("models", problem)
        overrides = overrides or {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"models.{name}", "must be a mapping of settings")
        inherited[name] = set(defaults) - set(overrides)
        config.models[name] = _build(ModelConfig, {**defaults, **overrides}, f"models.{name}")

    try:
        ConfigError.check_each(models.items(), build_model)
    except ConfigError as e:
        errors.append(e)
    if errors:
        raise ConfigError.first_of(errors)
    rules.check(config, secrets_required(), state_dir=state_dir, inherited=inherited)
    return config


def _build(cls, data, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(prefix, f"must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    errors = [ConfigError(f"{prefix}.{name}" if prefix else name, f"unknown key (known: {', '.join(fields)})")
              for name in sorted(set(data) - set(fields), key=str)]
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        if name not in fields:
            continue
        key = f"{prefix}.{name}" if prefix else name
        meta = fields[name].metadata
        switch = meta.get("switch")
        if switch and (isinstance(value, bool) or str(value).lower() in _SWITCH_WORDS):
            # true and false are YAML booleans (and on/off, yes/no are to YAML 1.1 readers):
            # each word reads the same quoted or not.
            value = switch[0 if _SWITCH_WORDS.get(str(value).lower(), value) else 1]
        elif value is None and meta.get("null_as") is not None:
            value = meta["null_as"]
        try:
            values[name] = _coerce(hints[name], value, key)
        except ConfigError as e:
            errors.append(e)
    if errors:  # each key's mistake at once (a section's own rules need all of its values)
        raise ConfigError.first_of(errors)
    return cls(**values)


#: Words a ``switch`` setting takes for its two values, besides them (see :func:`_doc`), and
#: a setting of true or false for those (any case): YAML 1.1's booleans, which
#: :class:`daemon.config.yamlfile._Loader` keeps as strings.
_SWITCH_WORDS = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}


def _coerce(hint, value, key: str):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key)
            except ConfigError as e:
                errors.append(str(e).split(": ", 1)[-1])
        raise ConfigError(key, _either(errors, value))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value or {}, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(key, f"must be a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"must be a mapping, got {type(value).__name__}")
        if key != "kafka.client":
            return dict(value)
        return {k: _client_value(v, f"{key}.{k}") for k, v in value.items()}
    if hint is Secret:
        return _secret(value, key)
    if hint is bool:
        if isinstance(value, str) and value.lower() in _SWITCH_WORDS:
            return _SWITCH_WORDS[value.lower()]
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            value = float(value)  # 1e3 or 1.0e3: a string to YAML 1.1, as for floats
        if type(value) is float and value.is_integer() and abs(value) <= 2**53:
            return int(value)  # 1000.0 is a whole number (and 1.0 the class 1, as in events)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            # YAML 1.1 reads 1e8 (no dot, no sign on the exponent) as a string.
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"must be a finite number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            raise ConfigError(key, f"must be a finite number, got an integer of {len(str(value))} digits") from None
        if not math.isfinite(number):
            raise ConfigError(key, f"must be a finite number, got {value!r}")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    raise ConfigError(key, f"unsupported setting type {hint}")


def _either(errors: list[str], value) -> str:
    """One reason from each option's of a union: ``must be a whole number, a string or
    true or false, got 1.5`` (the options' reasons joined as they are when one says more
    than what it must be)."""
    wants = [e[len("must be "):e.rindex(", got ")] for e in errors if e.startswith("must be ") and ", got " in e]
    if len(wants) < len(errors):
        return " or ".join(errors)
    return f"must be {', '.join(wants[:-1])} or {wants[-1]}, got {value!r}" if len(wants) > 1 else errors[0]


#: Numbers in exponent notation that YAML 1.1 leaves as strings (``1e8``, ``2.5E-3``).
_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

_SECRET_WORDS = ("password", "secret", "token")


def _client_value(value, key: str):
    """A kafka-python setting: secrets must come from the environment or a file, and a value
    of the type of the setting's default (an unknown name is refused by the rules)."""
    if isinstance(value, dict):
        return _secret(value, key)
    name = key.rsplit(".", 1)[-1]
    if any(word in name for word in _SECRET_WORDS):
        raise ConfigError(key, "a secret must be given as {env: NAME} or {file: PATH}, not written in the file")
    # kafka-python checks few types itself: client_id: 5 passed, and the client failed
    # later (a TypeError, naming no key, from driftd run).
    default = _client_default(name)
    if isinstance(default, type):
        raise ConfigError(key, f"kafka-python takes a class here ({default.__name__}), which a file cannot give")
    kind = next((t for t in (bool, int, str, list) if isinstance(default, t)), None)
    if kind is None:
        return value  # (no default to go by)
    try:
        if kind is not list:
            return _coerce(kind, value, key)
        if isinstance(value, list):
            return value
    except ConfigError:
        pass
    want = {bool: "true or false", int: "a whole number", str: "a string", list: "a list"}[kind]
    raise ConfigError(key, f"must be {want} as kafka-python's default is ({default!r}), got {value!r}")


def _client_default(name: str):
    """kafka-python's default for setting ``name``: the first of consumer, producer and
    admin client's that is not None (client_id is None for the producer alone), or None."""
    from kafka import KafkaConsumer, KafkaProducer  # (a third of a second: only when kafka.client is set)
    from kafka.admin import KafkaAdminClient

    defaults = [c.DEFAULT_CONFIG.get(name) for c in (KafkaConsumer, KafkaProducer, KafkaAdminClient)]
    return next((d for d in defaults if d is not None), None)


def _secret(value, key: str) -> Secret:
    if not isinstance(value, dict) or set(value) not in ({"env"}, {"file"}):
        raise ConfigError(key, "a secret must be given as {env: NAME} or {file: PATH}, not written in the file")
    if "env" in value:
        name = str(value["env"])
        if name not in os.environ:
            if not _secrets_required.get():
                return Secret("", f"env {name} (not set)")
            raise ConfigError(key, f"environment variable {name} is not set")
        if not os.environ[name] and _secrets_required.get():
            raise ConfigError(key, f"environment variable {name} is empty")
        return Secret(os.environ[name], f"env {name}")
    path = Path(str(value["file"]))
    try:
        return Secret(path.read_text().strip(), f"file {path}")
    except OSError as e:
        if not _secrets_required.get():
            return Secret("", f"file {path} (unreadable)")
        raise ConfigError(key, f"cannot read secret file {path}: {e.strerror}") from None
