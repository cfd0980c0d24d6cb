"""The ``driftd`` command: run, check-config, demo, config-reference."""

from __future__ import annotations

import argparse
import signal
import sys

from daemon import config as config_module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="driftd", description="Drift and decay monitoring for deployed ML models.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", default="config.yaml", help="configuration file (default: config.yaml)")
    check = sub.add_parser("check-config", help="validate a configuration file and dry-run every model's pipeline; exit 1 if invalid")
    check.add_argument("file")
    demo = sub.add_parser("demo", help="everything in one command: embedded broker, a simulated model, the daemon")
    demo.add_argument("--events", type=int, default=None, help="predictions to simulate")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--port", type=int, default=9108, help="port for /metrics while the demo runs (0: any)")
    sub.add_parser("config-reference", help="print every configuration key with its default, as Markdown")
    models = sub.add_parser("models", help="read the model registry: promoted models and their versions")
    models.add_argument("action", choices=["list", "show"])
    models.add_argument("name", nargs="?", help="model name (show; list: only this model)")
    models.add_argument("--version", type=int, default=None, help="version to show (default: newest)")
    models.add_argument("--config", default="config.yaml", help="configuration file naming the registry")
    args = parser.parse_args(argv)

    if args.command == "config-reference":
        print(config_module.reference(), end="")
        return 0
    if args.command == "check-config":
        try:
            _load_and_dry_run(args.file)
        except config_module.ConfigError as e:
            print(f"driftd: invalid configuration {args.file}: {e}", file=sys.stderr)
            return 1
        print(f"{args.file}: ok")
        return 0
    if args.command == "models":
        return _models(args)
    if args.command == "demo":
        from daemon.demo import main as demo_module

        return demo_module.main(events=args.events, seed=args.seed, port=args.port)
    try:
        config = _load_and_dry_run(args.config)
    except config_module.ConfigError as e:
        print(f"driftd: invalid configuration {args.config}: {e}", file=sys.stderr)
        return 2
    from daemon.runtime import logs
    from daemon.kafka.checkpoint import StateKeyError
    from daemon.web.http import ListenError
    from daemon.runtime.service import Daemon

    logs.configure(config.log_level, logs.secrets_of(config))
    daemon = Daemon(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: daemon.stop())
    try:
        daemon.run()
    except ListenError as e:  # one line, at once: which address, why, what to change
        print(f"driftd: {e}; choose another http.port (0: any free port) or http.host in {args.config}", file=sys.stderr)
        return 1
    except StateKeyError as e:
        print(f"driftd: {e}", file=sys.stderr)
        return 1
    return 0


def _load_and_dry_run(path: str) -> config_module.Config:
    """What ``check-config`` accepts, ``run`` runs: the file's rules, then every model's
    pipeline on a synthetic stream (:mod:`daemon.runtime.dryrun`)."""
    from daemon.runtime import dryrun

    config = config_module.load(path)
    dryrun.check(config)
    return config


def _models(args) -> int:
    """``driftd models list [NAME]`` and ``driftd models show NAME [--version N]``. Reading
    manifests needs no key; loading a model does, and checks its signature."""
    import json
    import os

    from learners.registry import Registry

    try:
        settings = config_module.load(args.config).registry
    except config_module.ConfigError as e:
        print(f"driftd: invalid configuration {args.config}: {e}", file=sys.stderr)
        return 2
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
    if not rows:
        print(f"driftd: no promoted models in {settings.dir}", file=sys.stderr)
        return 1
    for m in rows:
        print(f"{m['model']}\tversion {m['version']}\t{m['created_at']}\tparent {m.get('parent_version')}\t{m.get('learner', '')}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
