"""The YAML text of a configuration file, read as driftd means it.

PyYAML's safe loader with three changes (:class:`_Loader`): YAML 1.2's booleans (an
unquoted ``yes`` stays a string), a key given twice in one mapping refused (merge keys
``<<: *defaults`` still read), and a model's name kept as written when YAML would read it
as another type (:class:`WrittenName`, refused by :func:`name_problem`). Coercing the
values to settings is :mod:`daemon.config.loading`'s.
"""

from __future__ import annotations

import re

import yaml

from daemon.config.options import ConfigError


def check_acyclic(value, key: str, inside: tuple = ()) -> None:
    """Raise :class:`ConfigError` naming the key of a YAML alias inside its own anchor
    (``x: &a [*a]``: a list that holds itself, which no setting can be)."""
    if isinstance(value, (dict, list)):
        if any(value is outer for outer in inside):
            raise ConfigError(key, "refers to itself (a YAML alias inside its own anchor)")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            check_acyclic(v, f"{key}.{k}" if key else str(k), (*inside, value))


def read(stream):
    """The document of ``stream``, read by :class:`_Loader`."""
    loader = _Loader(stream)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        loader.names_node = _models_node(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


_STR, _BOOL, _MERGE = "tag:yaml.org,2002:str", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:merge"


def _models_node(node):
    """The mapping node of the top-level ``models:``, or None."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.tag == _STR and key.value == "models" and isinstance(value, yaml.MappingNode):
                return value
    return None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with three changes:

    - YAML 1.2's booleans: only true and false (any case). YAML 1.1, PyYAML's, also reads
      an unquoted yes, no, on and off as booleans, so that ``positive_label: yes`` was the
      class ``true`` and a score {"yes": .., "no": ..} was then misread; as strings they
      reach the settings as written, and the settings that take true or false read them
      as such (see :func:`daemon.config.loading._coerce`).
    - A key given twice in one mapping is refused (YAML leaves it to the reader; PyYAML
      keeps the last silently, so a second ``window:`` overrode the first). Keys that a
      merge (``<<: *defaults``) brings are not the mapping's own: its own override them.
    - A model's name that YAML reads as another type than a string (``true``, ``007``,
      ``0x10``, ``1.0``) is kept as a :class:`WrittenName`, for :func:`daemon.config.loading.from_dict` to
      refuse as written: as a number or boolean it would never match an event's
      ``model``, and two of them can be one Python key (``true`` and ``1.0``).
    """

    names_node = None  # the models: mapping (see _read)
    yaml_implicit_resolvers = {first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                # (by type too: 1 and 1.0, true and 1 are two keys to YAML, one to Python)
                if isinstance(key, (str, int, float, bool)) and (type(key), key) in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}: which of its values is meant?", key_node.start_mark)
                seen.add((type(key), key))
        if node is not self.names_node:
            return super().construct_mapping(node, deep)
        self.flatten_mapping(node)
        names = {}
        for key_node, value_node in node.value:
            name = self.construct_object(key_node, deep=deep)
            if not isinstance(name, str) and key_node.value != "":  # (an empty one is named empty)
                name = WrittenName(name, key_node)
            names[name] = self.construct_object(value_node, deep=deep)
        return names


_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class WrittenName:
    """A model's name that YAML did not read as a string: what it read (``value``), and how
    and where it was written. Each is a key of its own (compared by identity)."""

    def __init__(self, value, node):
        self.value, self.text, self.line = value, node.value, node.start_mark.line + 1

    def __str__(self):
        return self.text

    __repr__ = __str__


def name_problem(name) -> str | None:
    """Why ``name`` (a key of ``models:``) cannot be a model's name, or None."""
    if name is None or name == "":
        return (f"a model's name must not be empty, got {name!r}: events name their model in `model`, "
                "which cannot be empty")
    if isinstance(name, str):
        return None
    value, written = (name.value, f"{name.text} (line {name.line})") if isinstance(name, WrittenName) else (name, repr(name))
    kind = {bool: f"the boolean {value!r}", int: f"the whole number {value!r}", float: f"the number {value!r}",
            type(None): "null"}.get(type(value), f"{type(value).__name__} {value!r}")
    return (f"the model name {written} is not a string: YAML reads it as {kind}, which an event's "
            f"`model` (a string) never names; quote it: '{name}'")
