"""driftd's configuration: every option once (:mod:`~daemon.config.options`), reading a
file (:mod:`~daemon.config.loading`) and the rules between values (:mod:`~daemon.config.rules`).

What the rest of driftd uses is here: :func:`load` a file or build from a mapping with
:func:`from_dict`, both raising :class:`ConfigError` with the key and the reason.
"""

from daemon.config.loading import from_dict, load, secrets_required
from daemon.config.options import (
    DEFAULT_LABEL_DELAY_BUCKETS,
    AlertsConfig,
    Config,
    ConfigError,
    FederationConfig,
    HttpConfig,
    JoinConfig,
    KafkaConfig,
    MetricsConfig,
    ModelConfig,
    RegistryConfig,
    Secret,
    SinkConfig,
    StateConfig,
    reference,
)

__all__ = ["DEFAULT_LABEL_DELAY_BUCKETS", "AlertsConfig", "Config", "ConfigError", "FederationConfig", "HttpConfig",
           "JoinConfig", "KafkaConfig", "MetricsConfig", "ModelConfig", "RegistryConfig", "Secret", "SinkConfig",
           "StateConfig", "from_dict", "load", "reference", "secrets_required"]

# Named by the package, where they were defined before it was split in modules: a
# checkpoint pickles each model's ModelConfig, and states must stay readable by the
# version before and after an upgrade (a rollback, a partition handed back mid-rollout).
for _public in (AlertsConfig, Config, ConfigError, FederationConfig, HttpConfig, JoinConfig, KafkaConfig, MetricsConfig,
                ModelConfig, RegistryConfig, Secret, SinkConfig, StateConfig):
    _public.__module__ = __name__
del _public
