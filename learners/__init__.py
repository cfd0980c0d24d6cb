"""driftd's learners: online River models, replay buffer, retraining, champion/challenger,
promotion gate and model registry. Pure computation except :mod:`learners.registry` and
:mod:`learners.loader` (files); no Kafka, no metrics, never imports ``daemon``.

Per joined label the daemon calls :meth:`ChampionChallenger.update`, on a detector's
confirmed drift or decay :meth:`ChampionChallenger.on_signal`, then
:meth:`ChampionChallenger.maybe_promote`, and publishes a :class:`Promotion` with
:meth:`Registry.publish`. Model servers load with :func:`load_model`.
"""

from .gate import Decision, PromotionGate
from .lifecycle import ChampionChallenger, Promotion
from .loader import SignatureError, load_model
from .progressive import Learner, outcome
from .registry import Registry
from .replay import ReplayBuffer
from .retraining import Retrain, RetrainPolicy, can_transfer, retrain
from .spec import ALLOWED, build, clean_features, task_of

__all__ = [
    "ALLOWED", "ChampionChallenger", "Decision", "Learner", "Promotion", "PromotionGate", "Registry",
    "ReplayBuffer", "Retrain", "RetrainPolicy", "SignatureError", "build", "can_transfer",
    "clean_features", "load_model", "outcome", "retrain", "task_of",
]
