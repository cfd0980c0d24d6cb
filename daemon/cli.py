"""The ``driftd`` command: run, check-config, demo, models, replay, report, config-reference.

``driftd --help`` and ``driftd COMMAND --help`` describe every command and option.
Exit status: 0 done; 1 a failure (named on stderr), or an invalid file for
``check-config``; 2 an invalid command line, or an invalid configuration for ``run`` and
``models``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when used: it loads kafka-python (0.2 s), and `run` must
    # catch a stop from its first moments (see _run)
    from daemon import config as config_module

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def version() -> str:
    """driftd's version, from the installed package's metadata."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("driftd")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed: pip install -e .)"


def parser() -> argparse.ArgumentParser:
    """The command line: every command and option with its help."""
    top = argparse.ArgumentParser(
        prog="driftd", description="Drift and decay monitoring for deployed ML models, from their Kafka events.")
    top.add_argument("--version", action="version", version=f"driftd {version()}",
                     help="print driftd's version and exit")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (SIGTERM or Ctrl-C stops it cleanly)",
                         description="Run the daemon: consume predictions and labels, detect drift and decay, "
                                     "serve /metrics, /livez, /readyz and /status, send alerts.")
    run.add_argument("--config", default="config.yaml", metavar="FILE",
                     help="configuration file (default: config.yaml); relative paths in it are relative to its directory")
    run.add_argument("--port", type=_port, default=None, metavar="N",
                     help="port of the HTTP endpoints, instead of the file's http.port (0: any free port)")
    run.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default=None, metavar="LEVEL",
                     help="DEBUG, INFO, WARNING or ERROR, instead of the file's log_level")
    run.add_argument("--log-format", choices=("text", "json"), default=None,
                     help="text, or json (one JSON object a line), instead of the file's log_format")

    check = sub.add_parser("check-config", help="validate a configuration file and dry-run every model's pipeline",
                           description="Validate a configuration file: every key and value, then every model's "
                                       "pipeline on a synthetic stream. Exit 0 if valid, 1 naming the key and the "
                                       "reason of every mistake found if not. Warns of a state.dir that driftd "
                                       "could not use on this machine (a file for another may name one that is "
                                       "not here).")
    check.add_argument("file", metavar="FILE", help="the configuration file to check")

    demo = sub.add_parser("demo", help="everything in one command: embedded broker, a simulated model, the daemon",
                          description="A simulated model with a known data drift and a known concept drift, "
                                      "watched by driftd on the embedded broker; prints what fired and when.")
    demo.add_argument("--events", type=_demo_events, default=None, metavar="N",
                      help=f"predictions to simulate (default: the demo's own length, 40,000; at least {DEMO_MIN_EVENTS:,})")
    demo.add_argument("--seed", type=int, default=7, metavar="N",
                      help="random seed of the simulation: the same seed gives the same events (default: 7)")
    demo.add_argument("--port", type=_port, default=9108, metavar="N",
                      help="port for /metrics while the demo runs (default: 9108; 0: any free port)")

    _offline_parsers(sub)

    sub.add_parser("config-reference", help="print every configuration key with its default, as Markdown",
                   description="Print every configuration key with its default and meaning, as Markdown.")

    models = sub.add_parser(
        "models", help="list the watched models and their state (or the registry's promoted models)",
        description="Without an action: the models of the configuration, with their state from the running "
                    "daemon's /status when it answers, else from the configuration alone. "
                    "'list' (or --registry) and 'show' read the model registry instead.")
    models.add_argument("action", nargs="?", choices=["list", "show"],
                        help="list: the registry's promoted models; show: one promoted model's manifest")
    models.add_argument("name", nargs="?", help="model name (show; list: only this model)")
    models.add_argument("--version", type=int, default=None, metavar="N",
                        help="show: the version to show (default: the newest)")
    models.add_argument("--config", default="config.yaml", metavar="FILE",
                        help="configuration file naming the models, the HTTP port and the registry (default: config.yaml)")
    models.add_argument("--url", default=None,
                        help="the running daemon's base URL (default: http://127.0.0.1:<http.port of the file>)")
    models.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                        help="how long to wait for the daemon's /status (default: 3)")
    models.add_argument("--registry", action="store_true", help="list the registry's promoted models (as 'list')")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return top


def _offline_parsers(sub) -> None:
    """``driftd replay`` and ``driftd report`` (daemon.offline.command, daemon.web.report)."""
    replay = sub.add_parser(
        "replay", help="run past events from JSONL, CSV or Parquet files through driftd, without Kafka",
        description="Replay prediction and label events from files through the daemon's own pipelines, thresholds "
                    "and alert logic; write the alerts as JSON Lines and, with --report, an HTML report. A row is a "
                    "label if it has a 'label' field and no 'prediction' field. Several files are merged by event "
                    "time. Bad rows are reported with their line and counted as dead letters; the replay goes on.")
    replay.add_argument("files", nargs="*", metavar="FILE",
                        help="events: .jsonl (as on the topics), .csv or .parquet (the parquet extra: pip install -e '.[parquet]' in driftd's checkout)")
    replay.add_argument("--config", default="config.yaml", metavar="FILE",
                        help="configuration naming the models and their settings (default: config.yaml)")
    replay.add_argument("--auto-register", action="store_true",
                        help="watch every model the files name, with the file's model_defaults "
                             "(as auto_register_models: true; else a model not under models: is a dead letter)")
    replay.add_argument("--labels", action="append", metavar="FILE",
                        help="a file whose every row is a label (repeatable)")
    replay.add_argument("--out", type=_output_file, default="-", metavar="FILE",
                        help="where to write the alerts, one JSON object a line (default: stdout)")
    replay.add_argument("--report", type=_output_file, default=None, metavar="FILE",
                        help="also write the HTML drift report here (the report extra: pip install -e '.[report]' in driftd's checkout)")
    replay.add_argument("--summary", type=_output_file, default=None, metavar="FILE",
                        help="also write the replay's statistics as JSON (input of 'driftd report --from-replay')")
    replay.add_argument("--partitions", type=_at_least_one, default=None, metavar="N",
                        help="partitions of the topics the events came from, for alert ids equal to the daemon's "
                             "(default: the file's kafka.create_topics, else 1)")
    replay.add_argument("--batch-size", type=_at_least_one, default=500, metavar="N",
                        help="records per poll of the daemon, split into a batch per topic partition (default: 500; "
                             "the alerts' content does not depend on it, their order within a poll may: they come "
                             "grouped by partition and detector; sort by event_time for one order)")
    replay.add_argument("--quiet", action="store_true", help="no progress or summary line on stderr (warnings and dead letters still)")

    broker = sub.add_parser(
        "broker", help="run the embedded development broker alone (for several replicas on one machine)",
        description="Start the embedded Kafka-compatible broker (in memory, for development: it loses everything "
                    "when it stops) and keep it until SIGTERM or Ctrl-C; prints its address as the first line. "
                    "Replicas then use bootstrap_servers: 127.0.0.1:PORT.")
    broker.add_argument("--port", type=_port, default=9092, help="port on 127.0.0.1 (default: 9092; 0: a free port)")
    broker.add_argument("--partitions", type=int, default=0, metavar="N",
                        help="with --topic, create the topics with this many partitions")
    broker.add_argument("--topic", action="append", default=[], metavar="NAME",
                        help="a topic to create with --partitions partitions (repeatable)")

    report = sub.add_parser(
        "report", help="write the HTML drift report, from a replay or from a running daemon",
        description="Write a self-contained HTML drift report (works offline): per model, each test's statistic "
                    "against its threshold over event time with alerts marked, reference and current "
                    "distributions, performance against its baseline, label join health.")
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-replay", metavar="FILE", help="the --summary JSON of 'driftd replay'")
    source.add_argument("--url", metavar="URL", help="a running daemon's base URL (its /status)")
    report.add_argument("--out", type=_output_file, default="report.html", metavar="FILE",
                        help="the HTML file (default: report.html)")


def _broker(args) -> int:
    """``driftd broker``: the embedded broker until SIGTERM or Ctrl-C; 0 on a clean stop."""
    import signal
    import threading

    from daemon.kafka.embedded_broker import EmbeddedBroker

    topics = {name: max(1, args.partitions) for name in args.topic}
    try:
        broker = EmbeddedBroker(port=args.port or None, topics=topics).start()
    except Exception as e:  # noqa: BLE001 - a taken port, a missing binary: said in one line
        print(f"driftd broker: cannot start the embedded broker on port {args.port}: {e}", file=sys.stderr)
        return 1
    print(f"driftd: embedded broker at {broker.bootstrap}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            if not broker.running():
                print("driftd broker: the broker exited", file=sys.stderr)
                return 1
    finally:
        broker.close()
    return 0


def output_clash(outputs: dict, inputs: list) -> str | None:
    """Why the ``outputs`` (option -> path; None and ``-`` left out) cannot be written: one
    is also an input (writing it would destroy the data before or after it is read), or
    two options name the same file (one would overwrite the other); None if they can."""
    import os

    def same(a: str, b: str) -> bool:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return os.path.realpath(a) == os.path.realpath(b)

    named = [(option, path) for option, path in outputs.items() if path and path != "-"]
    for option, path in named:
        for source in inputs:
            if same(path, source):
                return f"{option} {path} is also an input: writing it would destroy the data; write it elsewhere"
    for i, (option, path) in enumerate(named):
        for other, other_path in named[i + 1:]:
            if same(path, other_path):
                return f"{option} and {other} name the same file {path}: one would overwrite the other; give each its own"
    return None


def _at_least_one(text: str) -> int:
    """A whole number of at least 1 (--batch-size, --partitions)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


#: The shortest demo whose scenario fits: the data drift (at 3/8 of the stream) after the
#: reference (5,000 predictions) and a full window (1,000) of the demo's configuration
#: (daemon.demo.main.demo_config; tests/test_cli.py checks the two agree).
DEMO_MIN_EVENTS = 16_000


def _demo_events(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < DEMO_MIN_EVENTS:
        raise argparse.ArgumentTypeError(
            f"the demo's scenario needs at least {DEMO_MIN_EVENTS:,} predictions (a reference of 5,000 and a window "
            f"of 1,000 before the data drift at 3/8 of the stream), got {value:,}")
    return value


def _output_file(path: str) -> str:
    """A file to write (``-``: stdout), checked before any work: its directory exists and
    it is not itself a directory (else the error would come after the whole replay)."""
    import os

    if path == "-":
        return path
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"cannot write {path}: no directory {folder}")
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"cannot write {path}: it is a directory")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {path}: directory {folder} is not writable")
    return path


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {port}")
    return port


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    from daemon import config as config_module

    if args.command == "config-reference":
        print(config_module.reference(), end="")
        return 0
    if args.command == "check-config":
        try:
            config = _load_and_dry_run(args.file)
        except config_module.ConfigError as e:
            print(f"driftd: invalid configuration {args.file}: {e}", file=sys.stderr)
            return 1
        from daemon.config.rules import state_dir_problem
        from daemon.runtime.dryrun import warnings

        problem = state_dir_problem(config.state.dir)
        if problem is not None:  # the machine's, not the file's: a file for a container names the container's
            print(f"driftd: warning: state.dir: {problem}: `driftd run` with this file would stop at start on this "
                  f"machine", file=sys.stderr)
        for line in warnings(config_module.load(args.file)):
            print(f"driftd: warning: {line}", file=sys.stderr)
        print(f"{args.file}: ok")
        return 0
    if args.command == "models":
        from daemon.web import models

        return models.command(args)
    if args.command == "replay":
        from daemon.offline import command

        return command.command(args)
    if args.command == "report":
        from daemon.web import report

        return report.command(args)
    if args.command == "broker":
        return _broker(args)
    if args.command == "demo":
        from daemon.demo import main as demo_module

        return demo_module.main(events=args.events, seed=args.seed, port=args.port)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse allows only the above


def _run(args) -> int:
    """``driftd run``: the options override the file; the embedded broker, if configured,
    is started here and its address printed as the first line on stdout."""
    stopping = threading.Event()
    # A stop asked while the daemon's modules load and its configuration is checked
    # (about 2 s) is a clean exit, not a death by signal: nothing has started yet.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    from daemon import config as config_module

    try:
        config = _load_and_dry_run(args.config, state_dir=True)
    except config_module.ConfigError as e:
        print(f"driftd: invalid configuration {args.config}: {e}", file=sys.stderr)
        return 2
    from daemon.kafka.checkpoint import prepare_directory

    try:  # before the broker (the rules checked it could be; made now, it may fail still)
        prepare_directory(config.state.dir)
    except OSError as e:
        print(f"driftd: invalid configuration {args.config}: state.dir: cannot use {e.filename or config.state.dir}: "
              f"{e.strerror or e}", file=sys.stderr)
        return 2
    if args.port is not None:
        config.http.port = args.port
    if args.log_level is not None:
        config.log_level = args.log_level
    if args.log_format is not None:
        config.log_format = args.log_format
    from daemon.runtime import logs
    from daemon.kafka.checkpoint import StateKeyError
    from daemon.web.http import ListenError, check_listen
    from daemon.runtime.service import Daemon

    logs.configure(config.log_level, logs.secrets_of(config), log_format=config.log_format)
    daemon = Daemon(config)

    def stop(*_):
        stopping.set()
        daemon.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    if stopping.is_set():  # asked before the daemon was made
        return 0
    broker = None
    try:
        if config.kafka.bootstrap_servers == "embedded":
            # A taken HTTP port fails before the broker's address is printed: a script
            # waiting for that first line would take it for a start.
            check_listen(config.http.host, config.http.port)
            try:
                broker = _start_embedded(config)
            except RuntimeError as e:
                print(f"driftd: cannot start the embedded broker: {e}", file=sys.stderr)
                return 1
            if stopping.is_set():
                return 0
        daemon.run()
    except ListenError as e:  # one line, at once: which address, why, what to change
        print(f"driftd: {e}; choose another http.port (0: any free port; or --port) or http.host in {args.config}",
              file=sys.stderr)
        return 1
    except StateKeyError as e:
        print(f"driftd: {e}", file=sys.stderr)
        return 1
    except config_module.ConfigError as e:  # found only when used (kafka-python's own checks)
        print(f"driftd: invalid configuration {args.config}: {e}", file=sys.stderr)
        return 2
    finally:
        if broker is not None:
            broker.close()
    return 0


def _start_embedded(config: config_module.Config):
    """Start the embedded broker on ``kafka.embedded_port`` (0: a free port) with driftd's
    topics, print its address on stdout, and point ``config`` at it. The caller closes it."""
    from daemon.kafka.embedded_broker import EmbeddedBroker
    from daemon.runtime import wiring

    port = config.kafka.embedded_port or None
    try:
        broker = EmbeddedBroker(port=port, topics=wiring.topics(config)).start()
    except RuntimeError as e:
        if port is not None:
            raise RuntimeError(f"{e}\nchoose another kafka.embedded_port (0: any free port)") from None
        raise
    # The first line on stdout (logs go to stderr): what producers connect to.
    print(f"driftd: embedded broker at {broker.bootstrap}", flush=True)
    logging.getLogger("driftd").warning("embedded broker (in memory, for development) at %s", broker.bootstrap)
    config.kafka.bootstrap_servers = broker.bootstrap
    return broker


def _load_and_dry_run(path: str, state_dir: bool = False) -> config_module.Config:
    """What ``check-config`` accepts, ``run`` runs: the file's rules (``state_dir``: and
    that ``state.dir`` can be used here, as ``run`` needs), then every model's pipeline on a
    synthetic stream (:mod:`daemon.runtime.dryrun`)."""
    from daemon import config as config_module
    from daemon.runtime import dryrun

    config = config_module.load(path, state_dir=state_dir)
    dryrun.check(config)
    return config


if __name__ == "__main__":
    sys.exit(main())
