"""Every option of driftd's configuration, its default and its meaning, in one place.

The YAML file mirrors the dataclasses below (``kafka:``, ``http:``, ``state:``, ``join:``,
``alerts:``, ``model_defaults:``, ``models:``); each field's documentation is the one
source of the README's configuration table (:func:`reference`). A dataclass checks what
one value alone can say (``__post_init__``); the rules between values are in
:mod:`daemon.config.rules`, reading and coercing a file in :mod:`daemon.config.loading`.
Secrets (webhook keys, SASL or TLS passwords) are kept in a :class:`Secret` that never
prints.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field

import yaml


class ConfigError(ValueError):
    """A configuration problem: ``key`` is the dotted path, the message the reason; ``also``:
    the other problems found in the same pass (every section, model and rule is checked, so
    that a file with several mistakes is fixed in one go), one more line each."""

    def __init__(self, key: str, reason: str, also: tuple = ()):
        text = f"{key}: {reason}" if key else reason
        super().__init__("".join([text, *(f"\n  and {e}" for e in also)]))
        self.key, self.reason, self.also = key, reason, tuple(also)

    def __reduce__(self):
        return type(self), (self.key, self.reason, self.also)  # (BaseException's would pass the text alone)

    @classmethod
    def first_of(cls, errors: list) -> "ConfigError":
        """One error of ``errors`` (ConfigErrors, one at least): the first, the others (and
        what each had in ``also``) in ``also``, one level deep."""
        first = errors[0]
        rest = [one for e in errors[1:] for one in (cls(e.key, e.reason), *e.also)]
        return cls(first.key, first.reason, (*first.also, *rest))

    @classmethod
    def collect(cls, problems) -> list:
        """The ConfigErrors of ``problems``, an iterable of them (a rule written as a
        generator yields each failure it finds and goes on with the checks that do not
        depend on it); one raised while iterating ends it and is the last."""
        found = []
        try:
            for error in problems:
                found.append(error)
        except ConfigError as e:
            found.append(e)
        return found

    @classmethod
    def raise_any(cls, errors) -> None:
        """Raise ``errors`` (a list of ConfigErrors) as one (:meth:`first_of`); nothing if empty."""
        if errors:
            raise cls.first_of(errors)

    @classmethod
    def check_each(cls, items, check) -> None:
        """``check(item)`` for every item, then the ConfigErrors they raised as one
        (:meth:`first_of`), so that every bad model is named in one pass."""
        errors = []
        for item in items:
            try:
                check(item)
            except ConfigError as e:
                errors.append(e)
        if errors:
            raise cls.first_of(errors)


class Secret:
    """A secret value that does not show itself in logs, reprs or errors."""

    def __init__(self, value: str, source: str):
        self._value = value
        self.source = source

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _doc(text: str, switch: tuple | None = None, null_as=None, **kw):
    """A setting's field with its documentation. ``switch``: (on, off) words of a setting
    that YAML may read as a boolean (an unquoted ``off`` is ``false``): true and false read
    as those words. ``null_as``: what a null (``~``, empty) reads as, where it means none."""
    return field(metadata={"doc": text, "switch": switch, "null_as": null_as}, **kw)


#: One broker of ``kafka.bootstrap_servers``: a host name (letters, digits, ``.``, ``-``,
#: ``_``), an IPv4 address or a bracketed IPv6 one, and an optional port.
_BROKER = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?")


@dataclass
class KafkaConfig:
    bootstrap_servers: str = _doc(
        "Comma-separated host:port list, or `embedded` to start the bundled broker for the "
        "daemon's lifetime (development and demo only: it keeps everything in memory).",
        default="embedded")
    embedded_port: int = _doc(
        "Port of the embedded broker (`bootstrap_servers: embedded`) on 127.0.0.1; 0: a free port. "
        "`driftd run` prints the address as its first line on stdout (`driftd: embedded broker at "
        "127.0.0.1:PORT`). A fixed port lets producers find it again after a restart (it comes back "
        "empty: it keeps everything in memory).", default=0)
    group_id: str = _doc("Consumer group: daemons with the same id split the partitions.", default="driftd")
    predictions_topic: str = _doc("Topic of prediction events.", default="predictions")
    labels_topic: str = _doc("Topic of label events (same partition count as predictions).", default="labels")
    dead_letter_topic: str = _doc("Where invalid events go, with the reason in headers.", default="driftd-dead-letters")
    create_topics: int = _doc(
        "If above 0, create missing topics with this many partitions at start (the dead-letter "
        "topic with one); 0 leaves topics to the cluster's administrators.", default=0)
    poll_max_records: int = _doc("Most records handled per poll (one batch).", default=5000)
    poll_timeout_ms: int = _doc("How long a poll waits for records.", default=200)
    fetch_max_wait_ms: int = _doc(
        "How long the broker may hold a fetch for more data; lower means lower latency when one "
        "topic is quiet. Below 30000 (the consumer's request timeout).", default=100)
    max_event_bytes: int = _doc("Larger events go to the dead-letter topic as `oversize`.", default=1_048_576)
    dead_letter_max_bytes: int = _doc(
        "Largest dead-letter copy (key, value and headers): a larger one keeps the first bytes of "
        "the value, with the original size and SHA-256 in headers. At most the producer's "
        "max_request_size (kafka-python default 1048576) less 1024.", default=524_288)
    session_timeout_ms: int = _doc(
        "Consumer-group session timeout: a daemon silent this long loses its partitions. At least 1000 "
        "(heartbeats go every tenth of it); brokers refuse less than their group.min.session.timeout.ms "
        "(6000 by default in Kafka).", default=10_000)
    reconnect_backoff_max_seconds: float = _doc(
        "Longest wait between attempts to reconnect to a broker, for every Kafka client of driftd "
        "(kafka-python adds up to 20% jitter); between 0.001 and 86400. After an outage, /readyz turns "
        "back to 200 within about 1.2 x this + 3 s of the broker answering again (plus a rejoin and a "
        "state restore where the broker lost the group): README \"Probes\".", default=2.0)
    client: dict = _doc(
        "Extra kafka-python settings for consumer and producer alike: security_protocol, "
        "ssl_cafile, ssl_certfile, ssl_keyfile, ssl_password, sasl_mechanism, "
        "sasl_plain_username, sasl_plain_password, ..., each of the type of kafka-python's default for it "
        "where that is not null (true or false, a whole number, a string, a list). Secret values as {env: NAME} "
        "or {file: PATH}. "
        "Not the settings driftd gives its clients itself (bootstrap_servers, request_timeout_ms, "
        "reconnect_backoff_max_ms, max_in_flight_requests_per_connection).",
        default_factory=dict)

    def __post_init__(self):
        servers = self.bootstrap_servers.strip() if isinstance(self.bootstrap_servers, str) else ""
        if not servers:
            raise ConfigError("kafka.bootstrap_servers", "must be host:port[,host:port...] or `embedded`")
        # A misspelt `embedded` is read as a host name (port 9092), and driftd would retry
        # that host for ever: refuse what is that close to it.
        if servers != "embedded" and ":" not in servers and "," not in servers \
                and difflib.get_close_matches(servers.lower(), ["embedded"], n=1, cutoff=0.75):
            raise ConfigError("kafka.bootstrap_servers", f"{servers!r}: did you mean `embedded` (the bundled broker)? "
                                                         f"A broker is given as host:port")
        if servers != "embedded":
            for server in (s.strip() for s in servers.split(",")):
                found = _BROKER.fullmatch(server)
                if found is None or not 0 < int(found["port"] or 9092) < 65536:
                    raise ConfigError("kafka.bootstrap_servers", f"{server!r} is not host:port (a host name, an IPv4 "
                                                                 "address or an [IPv6] one, and a port of 1 to 65535)")


@dataclass
class HttpConfig:
    host: str = _doc("Address for /metrics, /livez, /readyz and /status.", default="0.0.0.0")
    port: int = _doc("Port for the HTTP endpoints (0: any free port, printed at start).", default=9108)
    liveness_timeout_seconds: float = _doc(
        "/livez fails when the consumer loop has not gone round for this long (a wedged daemon, "
        "for Kubernetes to restart); at least 20 and 5 x kafka.poll_timeout_ms, refused below (a turn may "
        "wait, bounded, for an absent broker). "
        "A broker that cannot be reached does not stop the loop: it fails /readyz, never /livez.", default=30.0)


@dataclass
class MetricsConfig:
    per_feature: str = _doc(
        "Which features get series of their own (each test's statistic, threshold, p-value, state "
        "and counts, the feature's missing and unseen counts): `all`; `alerting`, only features "
        "with a test in warning or drift now, or within `per_feature_hold_seconds`; `none`. The "
        "model's own tests (prediction, score, error stream, decay) and the per-model summaries "
        "(per test: features in drift and in warning, largest statistic/threshold, drift entries) "
        "are exported in every case. Series per model: README \"Metric cardinality\".",
        default="alerting")
    per_feature_hold_seconds: float = _doc(
        "With `alerting`: a feature keeps its series this long after it was last seen in warning "
        "or drift (wall clock, when scraped), so that a drift flapping around its threshold keeps "
        "one set of series and its way back under the threshold shows.", default=3600.0)
    lag_refresh_seconds: float = _doc(
        "The consumer renews a partition's log end (the fetch high watermark) only once it has "
        "handed out the records of its last fetch; when that end is older than this while driftd "
        "is behind on the partition, or it is paused, a probe of its own reads the end from the "
        "broker (ListOffsets, then a fetch of the last record batch), off the consumer loop.",
        default=5.0)


@dataclass
class StateConfig:
    topic: str = _doc(
        "Compacted Kafka topic that carries each partition's state (a changelog), so that it follows "
        "the partition to whichever replica the group gives it. Created by driftd with `kafka.create_topics` "
        "(as many partitions as the input topics, `cleanup.policy=compact`), else by the admins with those "
        "settings; never change its partition count. Empty: local files only (one replica).", default="driftd-state")
    piece_bytes: int = _doc(
        "Largest record written to the state topic, in bytes: a larger section of state is split into "
        "pieces (keep it below the broker's `message.max.bytes`, 1 MiB by default).", default=524_288)
    standby: bool = _doc(
        "Tail the whole state topic in the background (a standby replica) so that taking over a "
        "partition reads only what was written since, not the topic from its beginning; costs the "
        "memory of every partition's state.", default=False)
    refused_state: str = _doc(
        "When a partition's only checkpoints in the state topic are refused (sealed with another "
        "`DRIFTD_STATE_KEY`, or tampered with): `wait` keeps the partition paused and driftd unready, "
        "logging why, until a replica with the group's key takes it or the key is fixed (starting "
        "afresh would lose the group's state and overwrite it with checkpoints nobody else can read); "
        "`start_fresh` starts from the committed offsets with empty state (after an intended key "
        "rotation).", default="wait")
    restore_timeout_seconds: float = _doc(
        "How long one attempt to read a partition's state from the state topic may take; the "
        "partition stays paused (and driftd unready) until it succeeds.", default=30.0)
    dir: str = _doc(
        "Directory of local checkpoint files (one per partition): with `state.topic` a cache, used "
        "only when as new as the topic's record; without it, the state itself.", default="driftd-state")
    checkpoint_interval_seconds: float = _doc(
        "How often state is checkpointed and offsets committed; events since the last "
        "checkpoint are re-read after a crash (never counted twice).", default=5.0)
    key_env: str = _doc(
        "Environment variable holding the HMAC-SHA256 key that seals checkpoints and the file of "
        "pending alerts (a file that fails the check is set aside, never loaded). Unset: a random "
        "key generated once into `state.dir`/state.key, mode 0600.", default="DRIFTD_STATE_KEY")


#: Default label-delay buckets (seconds): 1 s to a week, at most a factor 3.5 apart.
DEFAULT_LABEL_DELAY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800)


@dataclass
class JoinConfig:
    prediction_ttl_seconds: float = _doc(
        "A prediction waits this long (event time) for its label, then counts as expired; a label stamped "
        "more than this after its prediction never joins it. At least 1.", default=86_400.0)
    label_grace_seconds: float = _doc(
        "A label that arrives before its prediction waits this long (event time), then counts "
        "as orphaned.", default=600.0)
    max_pending: int = _doc(
        "Most predictions waiting for labels per partition (and labels for predictions); beyond it the oldest of "
        "the model with the most waiting expire early.", default=500_000)
    max_future_skew_seconds: float = _doc(
        "How far an event's ts may be ahead of the clock (the record's Kafka timestamp, or the wall "
        "clock if earlier or absent); beyond it the event is a dead letter, `bad_timestamp` (e.g. "
        "milliseconds sent as seconds).", default=86_400.0)
    earliest_event_time: float = _doc(
        "Events stamped before this time (epoch seconds; default 2000-01-01T00:00:00Z) are dead "
        "letters, `bad_timestamp` (e.g. 0, or seconds divided by 1000). Older events than the "
        "watermark are not refused: the join expires them.", default=946_684_800.0)
    duplicate_false_positive_rate: float = _doc(
        "Settled ids are remembered (to spot duplicates) in Bloom filters of under 10 bytes an id; "
        "with at most this probability a new prediction or label looked up in it is taken for a "
        "duplicate, counted as one and not fed. Above 0 and below 0.01; a tenfold smaller rate "
        "costs about 0.6 byte more an id.", default=1e-9)
    label_delay_buckets_seconds: list[float] = _doc(
        "Upper bounds of the `driftd_label_delay_seconds` histogram's buckets (label time minus "
        "prediction time, seconds; ascending, above 0; +Inf is added): the default fits delays of "
        "minutes to days, at most a factor 3.5 apart (a quantile is interpolated within its "
        "bucket). Each bound is a series per model. A changed list re-bins the counts of a "
        "restored state into the new buckets (each old bucket's count into the first new bucket "
        "that holds its upper bound).",
        default_factory=lambda: list(DEFAULT_LABEL_DELAY_BUCKETS))

    def __post_init__(self):
        bounds = self.label_delay_buckets_seconds
        if not bounds:
            raise ConfigError("join.label_delay_buckets_seconds", "must list at least one bound")
        if any(not isinstance(b, (int, float)) or isinstance(b, bool) or not math.isfinite(b) or b <= 0 for b in bounds):
            raise ConfigError("join.label_delay_buckets_seconds", f"every bound must be a finite number above 0, got {bounds!r}")
        if any(b >= c for b, c in zip(bounds, bounds[1:])):
            raise ConfigError("join.label_delay_buckets_seconds", f"bounds must be strictly ascending, got {bounds!r}")


def _http_url(url) -> bool:
    """An http(s) URL with a host and no whitespace (``alerts.runbook_base_url``, ``alerts.dashboard_url``)."""
    import urllib.parse

    if not isinstance(url, str) or not url or any(c.isspace() for c in url):
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@dataclass
class SinkConfig:
    type: str = _doc("`webhook` (Standard Webhooks), `slack` (Slack-compatible text) or `kafka`.", default="webhook")
    url: str | None = _doc("Webhook URL (webhook, slack).", default=None)
    secret: Secret | None = _doc(
        "Signing key, {env: NAME} or {file: PATH} (webhook, slack): whsec_ and the base64 of the key (the "
        "Standard Webhooks form), or any other string, taken as the key itself. A key under 24 bytes "
        "(the spec asks 24 to 64 random bytes) is warned about at start and by check-config, and so is a "
        "`type: webhook` sink without one (its alerts go unsigned).", default=None)
    topic: str | None = _doc("Topic for alerts (kafka).", default=None)
    timeout_seconds: float = _doc(
        "Deadline of one delivery attempt as a whole: for a webhook, connecting, sending, the answer and its "
        "redirects together (a receiver answering a byte at a time is cut off); for kafka, the broker's "
        "acknowledgement. A timed-out attempt is retried.", default=10.0)

    @property
    def secret_value(self) -> str | None:
        """The secret itself (read from its variable or file), or None for none."""
        return self.secret.get() if isinstance(self.secret, Secret) else self.secret


@dataclass
class AlertsConfig:
    clear_after: int = _doc("Consecutive clean tests before an episode resolves (hysteresis).", default=3)
    cooldown_seconds: float = _doc(
        "After a resolve, the same detector does not alert again for this long (event time).", default=900.0)
    retry_initial_seconds: float = _doc("First retry delay; doubles each attempt, with jitter. At least 0.01.", default=1.0)
    retry_max_seconds: float = _doc(
        "Longest retry delay, and the longest pause a sink's Retry-After header (429, 503) is honoured for: "
        "a longer one is cut to this, so that a server asking for hours neither drops nor holds back alerts.",
        default=60.0)
    give_up_after_seconds: float = _doc(
        "Stop retrying an alert on a sink after this long from when it was first due (across restarts): the first "
        "attempt at or after it that fails gives the alert up (never one not tried yet).", default=3600.0)
    sinks: list[SinkConfig] = _doc("Where alerts go; none means metrics only.", default_factory=list)
    runbook_base_url: str | None = _doc(
        "URL of this project's README.md where your operators read it (a repository host, an "
        "internal docs site): driftd's own alerts then carry `runbook_url`, this URL with the "
        "anchor of the alert's runbook (README \"Runbooks\"). Unset: no `runbook_url`.", default=None)
    dashboard_url: str | None = _doc(
        "URL of the driftd Grafana dashboard (e.g. https://grafana.example/d/driftd, its uid `driftd`): "
        "driftd's own alerts then carry `dashboard_url`, this URL with `var-model=` the alert's "
        "model. Unset: no `dashboard_url`.", default=None)

    def __post_init__(self):
        ConfigError.raise_any([ConfigError(f"alerts.{name}", f"must be an http:// or https:// URL with a host, got {url!r}")
                               for name in ("runbook_base_url", "dashboard_url")
                               if (url := getattr(self, name)) is not None and not _http_url(url)])


@dataclass
class ModelConfig:
    task: str = _doc("`classification` or `regression`.", default="classification")
    positive_label: int | str | bool = _doc("Positive class for precision, recall and f1 (and the class a binary numeric score is "
        "the probability of), compared with labels and predictions as a JSON value (1 and \"1\" are two classes): "
        "one that is neither a label nor a prediction in the model's first 1,000 labelled events is named in a "
        "warning.", default=1)
    reference_size: int = _doc(
        "The first this many predictions of a model (of each model version, see "
        "reference_per_version) are its reference distribution and performance baseline.", default=5000)
    reference_per_version: bool = _doc(
        "Re-establish reference and baseline when events carry a new model_version.", default=True)
    window: int = _doc("Values in the current window of the data-drift tests.", default=1000)
    stride: int = _doc("Values between two tests of the window (window: tumbling).", default=100)
    ert: float = _doc(
        "The model's data-drift contract: mean number of predictions between false alarms of "
        "all its data-drift tests together (features, prediction, score, schema) on a stationary "
        "stream. Split across its tests so that their false-alarm rates add up to 1/ert (weighted "
        "Bonferroni): each watched column's values weigh 1, shared by its tests (calibrated for "
        "their union), each rate test of rare events (missing values, unseen levels, unknown "
        "features) 0.1. At 10 predictions/s the default means a false alarm about every 116 "
        "days, at 1,000/s about 0.86 a day.", default=100_000_000.0)
    label_ert: float = _doc(
        "The model's label-side contract: mean number of labelled events between false alarms of "
        "the error-stream detector and the decay tests together, split equally between them "
        "(at 10 labelled events/s, about one every 116 days; at 1,000/s, 0.86 a day).",
        default=100_000_000.0)
    features: dict = _doc(
        "Feature types where the JSON type is not enough: name -> `numeric`, `categorical` "
        "(integer codes, ids; integers beyond +/-2**53 are kept exact only here) or `ignore`. "
        "Undeclared features are typed from the reference (numeric if every value is a number). "
        "`<prediction>` and `<score>` (watched like features) may be declared `ignore`.",
        default_factory=dict)
    numeric_tests: list[str] = _doc(
        "Tests on numeric features, a regression prediction and the score: psi, ks, cusum (a "
        "sequential test of a mean shift, value by value: README \"The false-alarm contract\"); "
        "leave one out to turn it off.", default_factory=lambda: ["psi", "ks", "cusum"])
    categorical_tests: list[str] = _doc(
        "Tests on categorical features and a classifier's predicted class: psi, chisquare, cusum (a "
        "sequential test of each frequent level's share, value by value: README \"The false-alarm "
        "contract\"); leave one out to turn it off.", default_factory=lambda: ["chisquare", "cusum"])
    watch_score: bool = _doc("Also test the prediction score (numeric scores only).", default=True)
    reconstruction: str = _doc(
        "Multivariate drift (README \"Multivariate drift: reconstruction\"): `auto` tests how well "
        "each feature (categorical ones as indicators of their frequent levels) is reconstructed "
        "from the others (detector `reconstruction`, feature `<all>`, one more column under ert) "
        "when the reference has at least two numeric features that are not constant; `off`: no "
        "such test.", default="auto", switch=("auto", "off"))
    max_features: int = _doc(
        "Features watched per model (the first seen in the reference, by name); the rest are "
        "counted, not exported, to keep label cardinality bounded.", default=50)
    error_detector: str = _doc(
        "River detector on the per-label error stream (concept drift): ADWIN, PageHinkley, "
        "DDM, EDDM, HDDM_A, HDDM_W, KSWIN; empty (or null) for none.", default="ADWIN", null_as="")
    error_detector_params: dict = _doc(
        "Parameters for that River detector, each within River's documented range (ADWIN `delta`, KSWIN `alpha`, "
        "HDDM `drift_confidence`: between 0 and 1; PageHinkley `threshold`, DDM's thresholds: above 0; counts "
        "whole numbers): out of range the configuration fails at start, naming the parameter. One more is driftd's "
        "own, `decision_every` (a whole number, at least 1; default 100): labelled events without a detection "
        "between two of the detector's clean decisions (how often its statistic is refreshed in the metrics).",
        default_factory=dict)
    decay_metrics: list[str] | None = _doc(
        "Performance metrics tested for decay: accuracy, precision, recall, f1 "
        "(classification); mae, rmse (regression). Unset (null): the task's, `[accuracy]` for "
        "classification, `[mae]` for regression; `[]`: no decay test.", default=None)
    decay_window: int = _doc("Labelled events in the current performance window.", default=1000)
    decay_reference_size: int = _doc("Labelled events in the performance baseline.", default=2000)
    estimation: str = _doc(
        "Estimated performance before the labels come (README \"Before the labels come\"): `auto` "
        "estimates a classifier's metrics from its scores, calibrated on the first "
        "decay_reference_size labelled events (when most of them carry a score), and a regressor's "
        "MAE and RMSE from a model of its errors trained on them, with a decay test on the "
        "estimate (label_ert predictions between false alarms); `off`: none.", default="auto", switch=("auto", "off"))
    learners: dict = _doc(
        "Online learners, name -> River spec: {Class: {params}} or a list of them (a pipeline), "
        "from an allow-list (learners/spec.py); e.g. {tree: {HoeffdingAdaptiveTreeClassifier: "
        "{seed: 1}}}; each parameter within the range River documents for it (learners/ranges.py: "
        "`grace_period: 0`, `delta: 2` or `n_models: 0` fail at start, naming the parameter). "
        "Empty: no learning, no retraining.", default_factory=dict)
    replay_reservoir_size: int = _doc("Replay buffer: uniform sample of all labelled events.", default=1000)
    replay_recent_size: int = _doc(
        "Replay buffer: the most recent labelled events. With learners that retrain, the larger of the "
        "two sizes must be at least 200 (a retrain waits for 200 labelled events in the buffer).", default=500)
    retrain_on_drift: bool = _doc("Retrain when the error-stream detector confirms concept drift.", default=True)
    retrain_on_decay: bool = _doc("Retrain when a decay test confirms performance decay.", default=True)
    retrain_every: int = _doc("Also retrain every this many labelled events (0: never).", default=0)
    retrain_cooldown: int = _doc("Labelled events between two retrains at least.", default=500)
    retrain_warm_start: str = _doc(
        "Start a retrained challenger from the best learner (`always`), from scratch (`never`), "
        "or as suits the model type (`auto`); `meta`: as `auto`, plus learning across drifts "
        "(README \"Recurring concepts: meta-learned challengers\"): a bandit picks which learner "
        "to retrain after a drift, and a challenger whose first 50 labels a solution stored at a "
        "past drift fits as well as it did then restarts from it (8 model copies kept per model).",
        default="auto")
    max_retrained: int = _doc("Retrained challengers kept competing at once.", default=2)
    promotion_margin: float = _doc(
        "A challenger must beat the champion by this much (accuracy points; for regression, "
        "a relative error reduction) ...", default=0.01)
    promotion_min_events: int = _doc("... on at least this many held-out labelled events ...", default=500)
    promotion_alpha: float = _doc(
        "... with a paired test significant at this level, spent over the gate's repeated "
        "looks from one promotion, drift or decay signal to the next (the k-th at alpha / (k (k + 1))).",
        default=0.01)
    promotion_min_interval_seconds: float = _doc("Event time between two promotions at least.", default=3600.0)
    promotion_window: int = _doc("Recent labelled events the gate compares champion and challenger on.", default=2000)

    def __post_init__(self):
        if any(isinstance(v, str) for v in self.error_detector_params.values()):
            from learners.ranges import read_flags  # (imports River: only here)

            self.error_detector_params = read_flags(self.error_detector, self.error_detector_params)
        if self.decay_metrics is None:  # unset: the task's own metric
            self.decay_metrics = ["mae"] if self.task == "regression" else ["accuracy"]


@dataclass
class RegistryConfig:
    dir: str = _doc("Model registry directory: promoted models, versioned and signed.", default="driftd-registry")
    keep: int = _doc("Versions kept per model.", default=5)
    key_env: str = _doc(
        "Environment variable holding the HMAC key that signs artifacts (needed when any model "
        "has learners).", default="DRIFTD_REGISTRY_KEY")
    model_updated_topic: str = _doc("Topic of \"model updated\" events (empty: none).", default="driftd-model-updates")


@dataclass
class FederationConfig:
    enabled: bool = _doc(
        "Federated averaging of the learners across deployments (README \"Federated learning across "
        "deployments\"): only parameter changes and counts of labelled events leave this deployment.",
        default=False)
    participant: str = _doc("This deployment's id in the federation (required when enabled).", default="")
    participants: list[str] = _doc(
        "Ids of every participant: updates from others are refused (`unknown_participant`), and a round "
        "closes as soon as all of them sent one. Empty: any holder of the key; rounds close on the timeout.",
        default_factory=list)
    bootstrap_servers: str = _doc(
        "Kafka cluster the participants share for the federation topics (empty: kafka.bootstrap_servers; "
        "its kafka.client settings apply).", default="")
    topic: str = _doc(
        "Topic of updates and global parameters, of one partition: all participants must read the rounds "
        "in the same order (created so when missing if kafka.create_topics is above 0; with more partitions "
        "driftd refuses to start).", default="driftd-federation")
    election_topic: str = _doc(
        "One-partition topic the participants join as consumer group `group`: the member given its "
        "partition 0 aggregates (created like federation.topic).", default="driftd-federation-election")
    group: str = _doc("Name of the federation and of the election's consumer group.", default="driftd-federation")
    key_env: str = _doc(
        "Environment variable holding the HMAC-SHA256 key that signs and checks every message (the same "
        "at every participant; required when enabled).", default="DRIFTD_FEDERATION_KEY")
    learners: list[str] = _doc(
        "Names of the learners to federate, in every model that has them (empty: every configured "
        "learner). Only LogisticRegression, Perceptron and LinearRegression, alone or after Numeric or "
        "Discard, can be averaged: trees, forests, naive Bayes and scalers are refused at start.",
        default_factory=list)
    every_events: int = _doc("A participant sends an update after this many new labelled events ...", default=500)
    every_seconds: float = _doc("... or after this long with at least one.", default=60.0)
    round_timeout_seconds: float = _doc(
        "The aggregator closes a round this long after its first update with the updates it has "
        "(partial aggregation): a participant that disappears does not stall the others.", default=30.0)
    min_participants: int = _doc("Fewest updates a round closes with.", default=1)
    clip_norm: float = _doc(
        "Updates (parameter changes) longer than this L2 norm are scaled down to it (0: no clipping).",
        default=10.0)
    max_update_norm: float = _doc(
        "Updates longer than this L2 norm are refused and counted (`norm`): implausible, poisoned or "
        "broken (0: no limit).", default=100.0)
    proximal_mu: float = _doc(
        "FedProx proximal weight: between rounds each local learner is pulled towards the last global "
        "model, which keeps non-IID participants from drifting apart (0: plain FedAvg).", default=0.0)


@dataclass
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig, metadata={"doc": "Kafka connection and topics."})
    http: HttpConfig = field(default_factory=HttpConfig, metadata={"doc": "HTTP endpoints."})
    metrics: MetricsConfig = field(default_factory=MetricsConfig, metadata={"doc": "Prometheus metrics: cardinality and consumer lag."})
    state: StateConfig = field(default_factory=StateConfig, metadata={"doc": "Checkpoints."})
    join: JoinConfig = field(default_factory=JoinConfig, metadata={"doc": "Joining labels to predictions."})
    alerts: AlertsConfig = field(default_factory=AlertsConfig, metadata={"doc": "Alerting."})
    registry: RegistryConfig = field(default_factory=RegistryConfig, metadata={"doc": "Promoted models."})
    federation: FederationConfig = field(
        default_factory=FederationConfig, metadata={"doc": "Federated averaging of the learners across deployments."})
    model_defaults: ModelConfig = field(default_factory=ModelConfig, metadata={"doc": "Settings of every model."})
    models: dict[str, ModelConfig] = field(
        default_factory=dict,
        metadata={"doc": "Watched models by name, each overriding model_defaults key by key: a key a model sets replaces the default's value whole (a model's features: or learners: mapping replaces model_defaults', it is not merged with it)."})
    auto_register_models: bool = _doc(
        "Watch a model not listed under models when its first event arrives (else: dead letter, unknown_model).",
        default=False)
    max_auto_registered_models: int = _doc(
        "Models auto_register_models watches at most per input partition (the models listed under "
        "models: are not counted): beyond, a new name's events are dead letters, unknown_model, "
        "counted without a model label and said once in the log. It bounds the metrics' series "
        "and the memory when a producer puts something unbounded (a request id) in the model name. "
        "A model that stops sending keeps its place, across restarts: with models that come and go, "
        "list them under models: (one removed from there is dropped at the next start) or size this "
        "for all the names a partition sees.",
        default=1000)
    log_level: str = _doc(
        "DEBUG, INFO, WARNING or ERROR (`driftd run --log-level` overrides it). kafka-python's own "
        "loggers are at WARNING or above, and at INFO with DEBUG (never below: at DEBUG they print "
        "protocol requests, SASL passwords included), and their repeated connection errors while a broker "
        "is away are kept once a minute per kind, with the count left out; every configured secret of 6 characters or more "
        "is masked in every log line (a shorter one is not, and a warning says so: masking it would "
        "mangle every line).", default="INFO")
    log_format: str = _doc(
        "`text` (time, level, logger: message) or `json`: one JSON object a line on stderr, with "
        "`time` (RFC 3339, UTC), `level`, `logger`, `message`, and `model` and `partition` where "
        "the line concerns one (`exception` with a traceback). `driftd run --log-format` overrides it.",
        default="text")

    @property
    def has_learners(self) -> bool:
        """Whether any model learns (and so needs the registry)."""
        return any(m.learners for m in [self.model_defaults, *self.models.values()])

    def model(self, name: str) -> ModelConfig | None:
        """The settings of model ``name``, or None if it is not watched."""
        if name in self.models:
            return self.models[name]
        return self.model_defaults if self.auto_register_models else None


def reference() -> str:
    """Every option with its default and meaning, as Markdown (for the README)."""
    sections, top = [], []

    def row(key, f):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip()
        doc = f.metadata["doc"]
        if f.metadata.get("switch"):
            on, off = f.metadata["switch"]
            doc += f" (`on`, `yes` and `true` read as `{on}`; `no` and `false` as `{off}`.)"
        return f"| `{key}` | `{shown}` | {doc} |"

    header = "| key | default | meaning |\n| --- | --- | --- |"
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if dataclasses.is_dataclass(hints[f.name]):
            rows = []
            section_hints = typing.get_type_hints(hints[f.name])
            for g in dataclasses.fields(hints[f.name]):
                rows.append(row(f"{f.name}.{g.name}", g))
                hint = section_hints[g.name]
                item = typing.get_args(hint)[0] if typing.get_origin(hint) is list else None
                if dataclasses.is_dataclass(item):  # a list of settings, e.g. alerts.sinks
                    rows += [row(f"{f.name}.{g.name}[].{h.name}", h) for h in dataclasses.fields(item)]
            sections.append(f"**`{f.name}`**: {f.metadata['doc']}\n\n{header}\n" + "\n".join(rows))
        else:
            top.append(row(f.name, f))
    return f"**Top level**\n\n{header}\n" + "\n".join(top) + "\n\n" + "\n\n".join(sections) + "\n"
