"""``driftd models``: the models a daemon watches, or the registry's promoted versions.

Without an action, each configured model (and any other the daemon watches) with its
state, task, counts and version, read from the daemon's ``/status`` when it answers
(:mod:`daemon.web.status`), else from the configuration alone. ``list [NAME]`` (or
``--registry``) and ``show NAME [--version N]``: the registry's manifests. Exit status:
0 done; 1 nothing found or a manifest that cannot be read; 2 an invalid configuration or
command line.
"""

from __future__ import annotations

import json
import sys

from daemon import config as config_module
from daemon.web.status import configured_models, fetch_status


def command(args) -> int:
    """``driftd models``: see the module docs."""
    import os

    registry_only = args.action or args.registry
    try:
        if registry_only and args.config == "config.yaml" and not os.path.exists(args.config):
            # The registry's manifests need only registry.dir: its default, as a replay without a file.
            config = config_module.from_dict({})
            print(f"driftd: no config.yaml: the registry at the default registry.dir, {config.registry.dir}; "
                  f"--config FILE to read another's", file=sys.stderr)
        else:
            # The models and the port are all it reads: a sink's secret need not be there.
            config = config_module.load(args.config, secrets=False)
    except config_module.ConfigError as e:
        print(f"driftd: invalid configuration {args.config}: {e}", file=sys.stderr)
        return 2
    if args.action or args.registry:
        return _registry(args, config.registry)
    return _watched(args, config)


def _watched(args, config: config_module.Config) -> int:
    """``driftd models``: the configured models (and any the daemon watches besides), with
    their state from the daemon's /status if it answers, else from the configuration."""
    url = args.url or default_url(config.http)
    status, why = fetch_status(url, args.timeout) if url else (None, "http.port is 0 (any free port): give --url")
    if status is not None:
        models = configured_models(config, status.get("models") or {})
        source = f"driftd at {url}" + (" (stale: its loop was busy)" if status.get("stale") else "")
    else:
        models = {name: {"state": "unknown: no daemon answered"} for name in config.models}
        source = f"the configuration {args.config} alone (no driftd answered at {url}: {why})" if url else \
            f"the configuration {args.config} alone ({why})"
    for name, entry in models.items():
        settings = config.model(name)
        entry.setdefault("task", settings.task if settings is not None else None)
    if args.json:
        print(json.dumps({"source": url if status is not None else None, "models": models}, indent=2, sort_keys=True))
        return 0
    print(f"driftd: {len(models)} model(s), from {source}", file=sys.stderr)
    rows = [("MODEL", "TASK", "STATE", "PREDICTIONS", "LABELS", "JOINED", "VERSION")]
    for name, entry in models.items():
        processed, joined = entry.get("processed"), (entry.get("join") or {}).get("joined")
        rows.append((name, entry.get("task") or "?", entry["state"],
                     *(str(processed[k]) if processed else "-" for k in ("prediction", "label")),
                     str(joined) if joined is not None else "-", str(entry.get("version") or "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def default_url(http) -> str | None:
    """The URL of the daemon of settings ``http`` on this machine (None: port 0, any free one)."""
    if not http.port:
        return None
    host = "127.0.0.1" if http.host in ("", "0.0.0.0", "::") else http.host
    return f"http://[{host}]:{http.port}" if ":" in host else f"http://{host}:{http.port}"


def _registry(args, settings) -> int:
    """``driftd models list [NAME]`` (or ``--registry``) and ``driftd models show NAME
    [--version N]``. Reading manifests needs no key; loading a model does, and checks its
    signature."""
    import os

    from learners.registry import Registry

    registry = Registry(settings.dir, key=os.environ.get(settings.key_env) or "listing-needs-no-key")
    if args.action == "show":
        if not args.name:
            print("driftd models show: name a model", file=sys.stderr)
            return 2
        try:
            print(json.dumps(registry.show(args.name, args.version), indent=2, sort_keys=True))
        except (FileNotFoundError, ValueError) as e:
            print(f"driftd: {e}", file=sys.stderr)
            return 1
        return 0
    names = [args.name] if args.name else sorted(os.listdir(settings.dir)) if os.path.isdir(settings.dir) else []
    rows = [m for name in names if not name.startswith(".") for m in registry.list(name)]
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    if not rows:
        # An empty registry is an answer, not a failure (a script reads the JSON or the
        # lines; the note goes to stderr so that neither sees it).
        print(f"driftd: no promoted models in {settings.dir}", file=sys.stderr)
        return 0
    for m in rows:
        print(f"{m['model']}\tversion {m['version']}\t{m['created_at']}\tparent {m.get('parent_version')}\t{m.get('learner', '')}")
    return 0
