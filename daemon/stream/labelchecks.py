"""A classifier's labels checked against its predictions and ``positive_label``, once, in
words: mistakes of the events' types that no single event shows and that leave tests
silent.

- Labels of another JSON type than the predictions (``"1"`` for ``1``) never match: every
  labelled event counts as an error (:meth:`LabelChecks.check`, until a label first
  matches).
- A ``positive_label`` that is neither a label nor a prediction (``2`` or ``"1"`` for 0/1
  labels): precision, recall and F1, and the estimate of a binary score (the positive
  class's probability), are of a class that never comes.

Each is checked over a model's first :data:`CHECKED` labelled events at most and named
in one warning. Classes compare as JSON values (:func:`class_key`).

>>> checks = LabelChecks()
>>> checks.check("m", positive=1, y_true=[0, 1], y_pred=[1, 1])   # a label matched: done
>>> checks.types, checks.positive[0] == CHECKED
(1000, True)
"""

from __future__ import annotations

import json
import logging

log = logging.getLogger("driftd.stream.labelchecks")

#: Labelled events of a model the checks look at, at most.
CHECKED = 1000


def class_key(value) -> tuple:
    """A class as a JSON value: numbers by value (``1`` and ``1.0`` alike), strings and
    booleans apart from them.

    >>> class_key(1) == class_key(1.0), class_key(1) == class_key("1"), class_key(1) == class_key(True)
    (True, False, False)
    """
    if type(value) is bool:
        return ("boolean", value)
    if isinstance(value, str):
        return ("string", value)
    return ("number", value)


def _json(value) -> str:
    """A class as JSON spells it (``true``, ``"1"``, ``2``): the words the checks compare by."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class LabelChecks:
    """The two checks of one model (see the module docs); pickled with its pipeline."""

    def __init__(self, types: int = 0, positive: list | None = None):
        self.types = types  # labelled events checked for label types so far (CHECKED: done)
        self.positive = positive if positive is not None else [0, {}]  # [events checked, classes seen]

    def check(self, model: str, positive, y_true: list, y_pred: list, errors: list | None = None) -> None:
        """Look at a batch of a classifier's labels and their predictions (``errors``: 1
        where they differ; default computed)."""
        if errors is None:
            errors = [int(t != p) for t, p in zip(y_true, y_pred)]
        self._types(model, y_true, y_pred, errors)
        self._positive(model, positive, y_true, y_pred)

    def _types(self, model: str, y_true: list, y_pred: list, errors: list) -> None:
        if self.types >= CHECKED:
            return
        room = CHECKED - self.types  # only the first CHECKED events: the same verdict at any batch size
        y_true, y_pred, errors = y_true[:room], y_pred[:room], errors[:room]
        if 0 in errors:
            self.types = CHECKED
            return
        self.types += len(errors)
        for t, p in zip(y_true, y_pred):
            if str(t) == str(p):
                self.types = CHECKED
                log.warning("model %s: no label has matched its prediction, though some print the same (label %r, "
                            "prediction %r): their JSON types differ, and two values of different types are "
                            "different classes; send labels of the predictions' type", model, t, p,
                            extra={"model": model})
                return

    def _positive(self, model: str, positive, y_true: list, y_pred: list) -> None:
        checked, seen = self.positive
        if checked >= CHECKED:
            return
        wanted = class_key(positive)
        room = CHECKED - checked  # only the first CHECKED events: the same words at any batch size
        for pair in zip(y_true[:room], y_pred[:room]):
            for value in pair:
                key = class_key(value)
                if key == wanted:
                    self.positive[0] = CHECKED
                    return
                if len(seen) < 5:
                    seen.setdefault(key, value)
        self.positive[0] = checked = checked + min(room, len(y_true))
        if checked >= CHECKED:
            log.warning("model %s: positive_label %s has been neither a label nor a prediction in its first %s labelled "
                        "events (classes seen: %s; classes are compared as JSON values, 1 and \"1\" and true are "
                        "three): precision, recall, F1 and a binary score's estimate are of a class that never comes; "
                        "set positive_label to the class they are of", model, _json(positive), f"{checked:,}",
                        ", ".join(_json(v) for v in seen.values()), extra={"model": model})
