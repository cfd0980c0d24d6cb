"""The ``driftd`` command: run, check-config, demo, config-reference."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from . import config as config_module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="driftd", description="Drift and decay monitoring for deployed ML models.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", default="config.yaml", help="configuration file (default: config.yaml)")
    check = sub.add_parser("check-config", help="validate a configuration file; exit 1 if invalid")
    check.add_argument("file")
    demo = sub.add_parser("demo", help="everything in one command: embedded broker, a simulated model, the daemon")
    demo.add_argument("--events", type=int, default=None, help="predictions to simulate")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--port", type=int, default=9108, help="port for /metrics while the demo runs (0: any)")
    sub.add_parser("config-reference", help="print every configuration key with its default, as Markdown")
    args = parser.parse_args(argv)

    if args.command == "config-reference":
        print(config_module.reference(), end="")
        return 0
    if args.command == "check-config":
        try:
            config_module.load(args.file)
        except config_module.ConfigError as e:
            print(f"driftd: invalid configuration {args.file}: {e}", file=sys.stderr)
            return 1
        print(f"{args.file}: ok")
        return 0
    if args.command == "demo":
        from . import demo as demo_module

        return demo_module.main(events=args.events, seed=args.seed, port=args.port)
    try:
        config = config_module.load(args.config)
    except config_module.ConfigError as e:
        print(f"driftd: invalid configuration {args.config}: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .service import Daemon

    daemon = Daemon(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: daemon.stop())
    daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
