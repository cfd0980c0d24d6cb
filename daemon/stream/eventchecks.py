"""Whether a decoded prediction or label can be used by its model, before anything is fed.

The decoder (:mod:`daemon.stream.events`) checks an event's form; these check it against
its model: its task (a class or a number) and its features' types (declared under
``features:``, or decided by the model's reference). Each raises
:class:`~daemon.stream.events.BadEvent` ``wrong_type`` with a reason that ends naming the
field (`` - at `$.path` ``, as the decoder's do), so that a column of bad values is one
kind of dead letter, not one per value.

>>> check_label(0.5, "classification")
Traceback (most recent call last):
...
daemon.stream.events.BadEvent: wrong_type: a class must be a label or a whole number, got 0.5 - at `$.label`
>>> check_label(9007199254740993, "regression")
Traceback (most recent call last):
...
daemon.stream.events.BadEvent: wrong_type: a regression label must be a number a float holds exactly; integer 9007199254740993 is beyond +/-2**53 - at `$.label`
"""

from __future__ import annotations

from daemon.stream import reference as ref
from daemon.stream.events import BadEvent


def check_prediction(event, task: str, kinds: dict | None, declared: dict) -> None:
    """Raise ``wrong_type`` if prediction ``event`` (``prediction``, ``features``) cannot be
    used by a model of ``task`` ("classification" or "regression") whose columns have the
    types ``kinds`` (name -> "numeric" or "categorical"; None while its reference is still
    collected, when only the ``declared`` types are known)."""
    prediction = event.prediction
    if task == "regression" and not ref.is_number(prediction):
        raise BadEvent("wrong_type", f"a regression prediction must be a number, got {str(prediction)[:40]!r}"
                                     " - at `$.prediction`")
    if task == "classification" and type(prediction) is float and not prediction.is_integer():
        raise BadEvent("wrong_type", f"a class must be a label or a whole number (a regressor? set the model's "
                                     f"task: regression), got {prediction!r} - at `$.prediction`")
    if task == "regression":
        _exact("prediction", prediction)
    for name, value in event.features.items():
        if type(value) is float or value is None:
            continue  # a float fits every type; missing is missing
        if kinds is None:  # still collecting the reference: declared types, or undecided
            kind = declared.get(name)
        else:
            kind = kinds.get(name) or declared.get(name)
            if kind is None:
                continue  # not watched
        reason = ref.check(name, value, kind)
        if reason:
            raise BadEvent("wrong_type", f"{reason} - at `$.features[{name!r}]`")


def check_label(label, task: str) -> None:
    """Raise ``wrong_type`` if ``label`` cannot be used by a model of ``task``."""
    if task == "regression":
        if not ref.is_number(label):
            raise BadEvent("wrong_type", f"a regression label must be a number, got {str(label)[:40]!r} - at `$.label`")
        _exact("label", label)
    elif type(label) is float and not label.is_integer():
        raise BadEvent("wrong_type", f"a class must be a label or a whole number, got {label!r} - at `$.label`")


def _exact(field: str, value) -> None:
    """Raise ``wrong_type`` for a regression prediction or label that is an integer no
    float holds exactly (beyond +/-2**53: two such values would be taken for one)."""
    if type(value) is int and not -ref.EXACT_INT <= value <= ref.EXACT_INT:
        raise BadEvent("wrong_type", f"a regression {field} must be a number a float holds exactly; integer {value} "
                                     f"is beyond +/-2**53 - at `$.{field}`")
