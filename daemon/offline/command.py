"""``driftd replay``: the command around :class:`~daemon.offline.replay.Replay` (see
``driftd replay --help``): files in, alerts out as JSON Lines, dead letters named with
their file and line, a progress line, and the summary and report on request.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections import Counter

from daemon.alerting.sinks import AlertLinks
from daemon.offline import inputs
from daemon.offline.recording import replay_document
from daemon.offline.replay import DeadLetter, Replay, Result, events
from daemon.stream.join import OUTCOMES
from daemon.stream.labels import DECAY


class Progress:
    """A one-line counter on stderr (events so far, rate), redrawn at most twice a second
    while stderr is a terminal; ``done()`` prints the last line (always)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.perf_counter()
        self._last = 0.0

    def __call__(self, records: int) -> None:
        now = time.perf_counter()
        if not self.tty or now - self._last < 0.5:
            return
        self._last = now
        rate = records / max(now - self.started, 1e-9)
        self.stream.write(f"\rdriftd replay: {records:,} events, {rate:,.0f}/s")
        self.stream.flush()

    def done(self, result: Result) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(f"driftd replay: {_count(result.records, 'event')} in {result.seconds:.1f} s "
                          f"({result.rate:,.0f}/s); {_count(len(result.alerts), 'alert')}; "
                          f"{_count(len(result.dead_letters), 'dead letter')}\n")
        self.stream.flush()


def _count(n: int, noun: str) -> str:
    """``1 alert``, ``2 alerts``, ``1,000 events``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def out_of_order(result: Result, config) -> list[str]:
    """A line per kind of row whose rows went back in time (see ``Result.behind``)."""
    total = {"prediction": result.predictions, "label": result.records - result.predictions}
    return [f"{n:,} of {total[kind]:,} {kind}s were stamped more than {config.join.label_grace_seconds:g} s "
            f"(join.label_grace_seconds) before the time the {kind}s of their model read earlier had reached (the "
            f"median of the last 127), at most {lag:,.0f} s: the "
            f"files are read in their order, which should be event-time order (windows, the join and the label "
            f"side follow it); sort them by ts" for kind, (n, lag) in sorted(result.behind.items())]


def incomplete_references(result: Result) -> list[str]:
    """A line per model whose reference the files did not fill: none of its data-drift
    tests ran, which a summary of '0 alerts' alone would hide. After a new model version,
    the line names the version and says whether the earlier versions' tests ran (in how
    many of the stretches between changes of version, when not in all); when the
    model's predictions were refused, it says so instead of asking for more events."""
    lines = []
    if result.predictions == 0:
        return lines  # the end says why (no predictions in the files): no advice per model
    refused = Counter(d.model for d in result.dead_letters if d.kind == "prediction")
    for _, state in sorted(result.states.items()):
        for name, pipeline in sorted(state.models.items()):
            if not pipeline.reference_complete:
                filled = f"({pipeline.reference.n:,} of {pipeline.reference.size:,} predictions)"
                if pipeline.reference.n == 0 and refused[name]:
                    hint = f"all {refused[name]:,} of its predictions were dead letters (shown above)"
                else:
                    hint = "give more events or a smaller model_defaults.reference_size" + (
                        f" ({refused[name]:,} of its predictions {'was a dead letter' if refused[name] == 1 else 'were dead letters'})"
                        if refused[name] else "")
                if pipeline.version_changes:
                    # Each change of version ended a stretch of one version; each stretch that
                    # filled its reference built tests once (a version may come back: a, b, a).
                    alerts = sum(a.model == name and a.status == "firing" for a in result.alerts)
                    stretches, built = pipeline.version_changes, min(pipeline.builds, pipeline.version_changes)
                    fired = f"{alerts:,} firing alert{'' if alerts == 1 else 's'} of the model"
                    if not built:
                        earlier = "no earlier version's reference was complete either"
                    elif built == stretches:
                        earlier = f"the earlier versions' tests ran ({fired})"
                    else:
                        earlier = (f"the earlier versions' tests ran in {built:,} of their {stretches:,} stretches ({fired}); "
                                   f"in the other{'' if stretches - built == 1 else 's'} the reference was incomplete too")
                    lines.append(f"model {name}: reference of version {pipeline.version} incomplete {filled}: "
                                 f"its data-drift tests did not run; {earlier}; {hint}")
                else:
                    lines.append(f"model {name}: reference incomplete {filled}: no data-drift test ran; {hint}")
            else:
                # A test that can never fire (a reference too small for the asked contract)
                # is otherwise only in the summary's status: say it where a user looks.
                for (test, column), why in sorted(pipeline.skipped.items()):
                    if test != "reconstruction":  # too few numeric features: the usual case
                        lines.append(f"model {name}: {test}/{column} not run: {why}")
    return lines


def printable(line: str) -> str:
    r"""``line`` with the characters a terminal would not show as themselves (NUL, control
    and direction marks, lone surrogates: a model named by the events may hold any)
    escaped, as Python writes them.

    >>> print(printable("model a\x00b\u202e: 3 labels, café"))
    model a\x00b\u202e: 3 labels, café
    """
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


def silent_outcomes(result: Result, config) -> list[str]:
    """A line per model for what the alerts alone would hide on the label side and in its
    features: labels that found no prediction (most of them), predictions whose label
    never came though labels did, decay tests that never ran for want of labelled events,
    features beyond ``max_features`` not watched, what the learners did and their failures."""
    lines = []
    for _, state in sorted(result.states.items()):
        waiting = state.join.waiting()
        for name, pipeline in sorted(state.models.items()):
            counts = {o: state.join.counts[(name, o)] for o in OUTCOMES}
            labels = state.processed[(name, "label")]
            unmatched = counts["label_orphaned"] + waiting[(name, "label")]
            refused = sum(n for (model, _), n in state.model_dead_letters.items() if model == name)
            why = (f"none with their model and id came within join.label_grace_seconds "
                   f"({config.join.label_grace_seconds:g} s) or before the end of the files, or theirs came more than "
                   f"join.prediction_ttl_seconds ({config.join.prediction_ttl_seconds:g} s) before them"
                   + (", or was a dead letter" if refused else ""))
            if labels and unmatched * 2 > labels:
                lines.append(f"model {name}: {unmatched:,} of its {labels:,} labels found no prediction to join ({why}); "
                             + ("the model's dead letters (above) may be their predictions" if refused else
                                "check their ids and ts against the predictions'"))
            elif unmatched:
                lines.append(f"model {name}: {unmatched:,} of its {labels:,} labels found no prediction to join ({why})")
            predictions = state.processed[(name, "prediction")] + counts["duplicate_prediction"]
            if counts["duplicate_prediction"] * 10 > predictions:
                # Copies are rare (a redelivery); this many are most often ids that come back.
                lines.append(f"model {name}: {counts['duplicate_prediction']:,} of its {predictions:,} predictions were "
                             f"taken for copies of earlier ones (duplicate_prediction: same model and id within "
                             f"join.prediction_ttl_seconds, {config.join.prediction_ttl_seconds:g} s, on the model's "
                             f"clock) and not fed; if its ids come back (a counter that wraps), set "
                             f"join.prediction_ttl_seconds below the time they take to, by a quarter and more")
            if counts["joined"] and counts["prediction_expired"]:
                lines.append(f"model {name}: {counts['prediction_expired']:,} predictions got no label within "
                             f"join.prediction_ttl_seconds ({config.join.prediction_ttl_seconds:g} s)")
            settings = pipeline.config
            needed = settings.decay_reference_size + settings.decay_window
            decay = any(test == DECAY for test, _ in pipeline.labels.detectors)
            if decay and counts["joined"] and pipeline.labels.n_fed < needed:
                of = f" of version {pipeline.labels.version}" if pipeline.version_changes else ""
                lines.append(f"model {name}: its decay tests{of} did not run: {pipeline.labels.n_fed:,} labelled "
                             f"events{of}, fewer than decay_reference_size + decay_window ({needed:,})")
            if pipeline.n_unwatched:
                lines.append(f"model {name}: {pipeline.n_unwatched:,} features beyond max_features "
                             f"({settings.max_features:,}) were counted, not watched")
            lines += _learning_lines(name, pipeline)
    return lines


def _learning_lines(name: str, pipeline) -> list[str]:
    """What a model's learners did, which no alert of a replay says (promotions are not
    published): retrains and the gate's decisions, and their failures with the last message."""
    cc = pipeline.lifecycle
    if cc is None:
        return []
    lines = []
    failed = {learner: n for learner, n in sorted(cc.errors.items()) if n}
    if failed or pipeline.learning_errors:
        each = ", ".join(f"{learner} {n:,}" for learner, n in failed.items())
        last = next((cc.last_error[learner] for learner in reversed(failed) if learner in cc.last_error), None)
        lines.append(f"model {name}: its learners failed {sum(failed.values()) + pipeline.learning_errors:,} times"
                     + (f" ({each}; the last: {last[:200]})" if failed else "")
                     + "; the labels still reached the tests (a River model that takes numbers only needs string "
                     "features through Categorical and OneHotEncoder: README, \"Learning, retraining and promotion\")")
    failed_retrains = sum(cc.failed_retrains.values())
    if cc.retrains or cc.decisions.get("promoted") or failed_retrains:
        retrains = ", ".join(f"{reason} {n:,}" for reason, n in sorted(cc.retrains.items()))
        promoted = cc.decisions.get("promoted", 0)
        lines.append(f"model {name}: learners retrained {sum(cc.retrains.values()):,} times"
                     + (f" ({retrains})" if retrains else "")
                     + (f", {failed_retrains:,} retrains failed (the learners' last errors above)" if failed_retrains else "")
                     + _reused(cc)
                     + f"; the promotion gate would have promoted {promoted:,}"
                     + (f" (the last: {cc.champion_learner}; each an info alert, driftd.info.promotion, "
                        f"with the gate's figures)" if promoted else "")
                     + " (a replay publishes nothing)")
    elif cc.n_labelled:
        lines.append(f"model {name}: learners learned {cc.n_labelled:,} labelled events; no retrain was due (on "
                     f"drift, on decay or every retrain_every labels, as set) and the promotion gate promoted none "
                     f"(a replay publishes nothing)")
    return lines


def _reused(cc) -> str:
    """With ``retrain_warm_start: meta``: how many challengers a stored solution of an earlier
    concept (or their average) replaced, which nothing else of a replay shows."""
    meta = getattr(cc, "meta", None)
    if meta is None:
        return ""
    library, average = meta.inits.get("library", 0), meta.inits.get("average", 0)
    return (f", {library + average:,} of the challengers replaced by a stored solution of an earlier concept"
            + (f" ({library:,} by one, {average:,} by their average)" if average else ""))


#: Lines of each kind of end-of-replay advice printed (a model each, or more); the rest counted.
SHOWN_MODEL_LINES = 20

#: Kinds of dead letter (reason and field) printed on stderr, the first row of each; the
#: rest are counted in the last line.
SHOWN_DEAD_LETTERS = 20


def dead_letter_kind(reason: str, detail: str) -> tuple[str, str]:
    """A dead letter's kind: its reason and the field its detail names (`` - at `$.x` ``),
    else the whole detail. Not the detail alone: it quotes the bad value, and a column of
    bad values is one kind, not one per value.

    >>> dead_letter_kind("wrong_type", "Expected `float`, got `str` - at `$.features['age']`")
    ('wrong_type', "$.features['age']")
    """
    where = re.search(r" - at `([^`]+)`", detail)
    return reason, where.group(1) if where else detail


def command(args) -> int:
    """``driftd replay`` (see ``driftd replay --help``): exit 0 when every file was read
    (bad rows are dead letters, not failures), 1 if a file cannot be read or not one
    prediction of its rows could be used (no rows, every row a dead letter, no prediction
    rows at all, as when predictions are given with ``--labels``, or every prediction a
    dead letter: a wrong format or layout, not data to monitor), 2 for an invalid
    configuration or command line (output locations are checked before the replay). The
    summary and report are written either way."""
    import json

    from daemon import config as config_module
    from daemon.runtime import blas, logs

    try:
        defaults_only = args.auto_register and args.config == "config.yaml" and not os.path.exists(args.config)
        if defaults_only:
            config = config_module.from_dict({})  # no file: the defaults, every model the files name
        else:
            config = config_module.load(args.config, secrets=False)  # a replay sends and signs nothing
    except config_module.ConfigError as e:
        if not os.path.exists(args.config):
            print(f"driftd replay: no configuration {args.config}: give --config FILE, or --auto-register to watch "
                  f"every model the files name with the default settings", file=sys.stderr)
        else:
            print(f"driftd: invalid configuration {args.config}: {e}", file=sys.stderr)
        return 2
    if args.auto_register:
        config.auto_register_models = True
    blas.limit_threads()  # as the daemon: small matrices, a second BLAS thread only spins
    # Warnings read as the command's other lines (a log's time and logger mean nothing here).
    logs.configure(config.log_level if config.log_level != "INFO" else "WARNING", logs.secrets_of(config),
                   fmt="driftd replay: %(message)s", log_format=config.log_format)
    # Replay reports each dead letter with its file and line itself (below).
    logging.getLogger("driftd").addFilter(_NoDeadLetterLines())
    if defaults_only:
        d = config.model_defaults
        print(f"driftd replay: no config.yaml: every model the files name, with the default settings (reference "
              f"{d.reference_size:,} predictions, window {d.window:,}, ert {d.ert:,.0f} predictions between false "
              f"alarms); --config FILE to choose them", file=sys.stderr)
    elif not args.quiet:
        print(f"driftd replay: configuration {args.config}", file=sys.stderr)
    files = [(path, False) for path in args.files] + [(path, True) for path in args.labels or ()]
    if not files:
        print("driftd replay: give at least one file", file=sys.stderr)
        return 2
    try:
        for path, _ in files:
            inputs.format_of(path)
            if not inputs.size_of(path) and not os.path.exists(path):
                raise inputs.InputError(f"{path}: no such file")
    except inputs.InputError as e:
        print(f"driftd replay: {e}", file=sys.stderr)
        return 1
    from daemon.cli import output_clash

    clash = output_clash({"--out": args.out, "--summary": args.summary, "--report": args.report},
                         [p for p, _ in files] + ([args.config] if not defaults_only else []))
    if clash:
        print(f"driftd replay: {clash}", file=sys.stderr)
        return 2
    shown: dict = {}  # (reason, detail) -> dead letters of that kind

    def dead(d: DeadLetter) -> None:
        # The first of each kind: a file whose every row fails alike (a wrong header) is one
        # line, not twenty of the same.
        kind = dead_letter_kind(d.reason, d.detail)
        if kind not in shown and len(shown) < SHOWN_DEAD_LETTERS:
            print(printable(f"driftd replay: {d.path}:{d.line}: dead letter ({d.reason}): {d.detail}"), file=sys.stderr)
            shown[kind] = 0
        if kind in shown:
            shown[kind] += 1

    out = open(args.out, "w", encoding="utf-8") if args.out and args.out != "-" else sys.stdout

    links = AlertLinks(config.alerts.runbook_base_url, config.alerts.dashboard_url)

    def alert(a) -> None:  # as the daemon's sinks send it, with its links when configured
        out.write(json.dumps({**a.to_dict(), **links.of(a)}, sort_keys=True) + "\n")

    progress = Progress() if not args.quiet else None
    replay = Replay(config, partitions=args.partitions, batch_size=args.batch_size, on_alert=alert, on_dead_letter=dead,
                    record_series=bool(args.report or args.summary))
    blank: Counter = Counter()  # path -> blank lines skipped
    try:
        result = replay.run(events(files, blank), progress)
    except inputs.InputError as e:
        print(f"driftd replay: {e}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    alike, other = sum(shown.values()) - len(shown), len(result.dead_letters) - sum(shown.values())
    if alike or other:
        reasons = Counter(d.reason for d in result.dead_letters)
        parts = [f"{alike} more like those shown"] * bool(alike) + [f"{other} of other kinds not shown"] * bool(other)
        print(f"driftd replay: dead letters: {', '.join(parts)} (all: "
              f"{', '.join(f'{r} {n}' for r, n in reasons.most_common())})", file=sys.stderr)
    for path, n in blank.items():  # skipped, not lost: said, as the dead letters are
        print(printable(f"driftd replay: {path}: {_count(n, 'blank line')} skipped"), file=sys.stderr)
    if progress is not None:
        progress.done(result)
    for lines in (incomplete_references(result), silent_outcomes(result, config), out_of_order(result, config)):
        for line in lines[:SHOWN_MODEL_LINES]:
            print(printable(f"driftd replay: {line}"), file=sys.stderr)
        if len(lines) > SHOWN_MODEL_LINES:  # 400 models: not 400 lines (all of them in --summary's status)
            print(f"driftd replay: ... and {len(lines) - SHOWN_MODEL_LINES:,} more such lines of other models",
                  file=sys.stderr)
    document = replay_document(result, config, [p for p, _ in files], dict(blank))
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as f:
            json.dump(document, f)
    if args.report:
        try:
            from daemon.web import report
            report.write(document, args.report)
        except report.ReportError as e:
            print(f"driftd replay: {e}", file=sys.stderr)
            return 1
        print(f"driftd replay: report written to {args.report}", file=sys.stderr)
    return _nothing_replayed(result, bool(args.labels))


def _nothing_replayed(result: Result, labels_given: bool) -> int:
    """1 with the reason on stderr when no row, or no prediction, of the files was
    replayed, else 0. ``labels_given``: files were given with ``--labels``."""
    if result.records == 0:
        print("driftd replay: the files hold no rows; nothing was replayed", file=sys.stderr)
        return 1
    if len(result.dead_letters) >= result.records:
        reason, n = Counter(d.reason for d in result.dead_letters).most_common(1)[0]
        as_labels = labels_given and all(d.kind == "label" for d in result.dead_letters) and reason == "missing_field"
        hint = ("the models are not under `models:` in the configuration: --auto-register watches them"
                if reason == "unknown_model" else
                "every row was read as a label: give a file of predictions as FILE, not --labels FILE"
                if as_labels else "check the files' layout against the README's event format")
        print(f"driftd replay: every row ({result.records}) was a dead letter, most often {reason} ({n}); "
              f"nothing was replayed: {hint}", file=sys.stderr)
        return 1
    if result.predictions == 0:
        hint = ("give predictions as FILE, not --labels FILE (every row of a --labels file is a label)"
                if labels_given else "give the predictions' file too (as FILE; this one's rows are labels by their "
                                     "fields: no prediction, no features)")
        print(f"driftd replay: the files hold no predictions (all {result.records:,} rows were labels): nothing to "
              f"monitor; {hint}", file=sys.stderr)
        return 1
    refused = [d for d in result.dead_letters if d.kind == "prediction"]
    if len(refused) >= result.predictions:
        reason, n = Counter(d.reason for d in refused).most_common(1)[0]
        print(f"driftd replay: every prediction ({result.predictions:,}) was a dead letter, most often {reason} "
              f"({n:,}): no test could run; see the dead letters above", file=sys.stderr)
        return 1
    return 0


class _NoDeadLetterLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "went to the dead-letter topic" not in str(record.msg)
