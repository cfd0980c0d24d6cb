"""A trained River Hoeffding tree regressor as arrays, predicted over a batch at once: how
the direct loss estimation (:class:`detectors.estimation.RegressionEstimate`) evaluates its
loss models.

The estimate's loss trees learn a fixed labelled reference once, with River, one event at a
time, and never learn again; then they predict every event of the stream. River predicts one
event at a time (``predict_one``, a walk down the tree in Python, tens of microseconds an
event). A tree that learns no more is only its splits and its leaves' values: read once
into arrays (:func:`from_river`), it predicts a whole batch by walking the splits with array
indexing, the same numbers as River's ``predict_one``, bit for bit (a leaf's value is
River's own prediction of it; the comparisons are River's, ``x <= threshold`` in float64).

A prediction is a function of its row alone: any batch size gives the same numbers.

Source: E. Ikonomovska et al., "Learning model trees from evolving data streams", 2011
(the Hoeffding tree regressor River implements: ``river.tree.HoeffdingTreeRegressor``).

>>> import numpy as np
>>> from river import tree
>>> rng = np.random.default_rng(0)
>>> river = tree.HoeffdingTreeRegressor(grace_period=50, delta=0.1, leaf_prediction="mean")
>>> for a, b in rng.uniform(-1, 1, (3000, 2)):
...     river.learn_one({"a": a, "b": b}, float(a > -0.5) + rng.normal(0, 0.1))
>>> compiled = from_river(river, "b")
>>> compiled.names
('a', 'b')
>>> rows = np.array([[-0.9, 0.0], [0.5, 0.0], [np.nan, 0.0]])   # NaN: a missing feature
>>> same = [river.predict_one({"a": -0.9, "b": 0.0}), river.predict_one({"a": 0.5, "b": 0.0}),
...         river.predict_one({"b": 0.0})]
>>> compiled.predict(rows).tolist() == same
True
>>> from_river(tree.HoeffdingTreeRegressor(leaf_prediction="model"), "b") is None   # leaves River must predict
True
"""

from __future__ import annotations

import numpy as np


class CompiledTree:
    """A binary regression tree over the columns ``names`` (labels of the columns, in
    order), as arrays over its nodes, node 0 the root, each of shape ``(nodes,)``:
    ``feature`` (column index; -1 at a leaf), ``threshold`` (a row goes to ``left`` when
    ``x <= threshold``, else to ``right``), ``left``, ``right``, ``missing`` (the child of
    a row whose column is NaN) and ``value`` (a leaf's prediction). ``depth``: the longest
    path from the root, in splits. Made by :func:`from_river`.
    """

    def __init__(self, names, feature, threshold, left, right, missing, value, depth: int):
        self.names = tuple(names)
        self.feature = np.asarray(feature, dtype=np.intp)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.left = np.asarray(left, dtype=np.intp)
        self.right = np.asarray(right, dtype=np.intp)
        self.missing = np.asarray(missing, dtype=np.intp)
        self.value = np.asarray(value, dtype=np.float64)
        self.depth = int(depth)

    @property
    def n_leaves(self) -> int:
        return int(np.sum(self.feature < 0))

    def predict(self, x) -> np.ndarray:
        """The leaf values of rows ``x``: shape ``(rows, len(names))`` in, float64, NaN a
        missing value; shape ``(rows,)`` out."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, len(self.names))
        node = np.zeros(x.shape[0], dtype=np.intp)
        rows = np.arange(x.shape[0])
        for _ in range(self.depth):
            feature = self.feature[node]
            inner = feature >= 0
            if not inner.any():
                break
            v = x[rows, np.maximum(feature, 0)]
            step = np.where(v <= self.threshold[node], self.left[node], self.right[node])
            step = np.where(np.isnan(v), self.missing[node], step)
            node = np.where(inner, step, node)
        return self.value[node]


def from_river(model, prediction: str) -> CompiledTree | None:
    """A River Hoeffding tree regressor that predicts its leaves' means (River's
    ``HoeffdingTreeRegressor(leaf_prediction="mean")``, trained and learning no more), as a
    :class:`CompiledTree` that predicts the same numbers; None for any other model (or tree
    parts this does not know), to be predicted by River one event at a time.

    The columns: the features the tree splits on (sorted by ``str``), then ``prediction``,
    the input every event has. Missing values, as River treats them: a missing feature
    (NaN in its column) goes down River's most common path, the child of larger weight,
    the left one on a tie (``most_common_path``); ``prediction`` is never missing for
    River, and a NaN there goes right, as ``NaN <= threshold`` is false. A leaf's value is
    River's own prediction of it (``prediction(None, tree=model)``, the mean target of the
    events it learned)."""
    try:
        from river.tree import HoeffdingTreeRegressor
        from river.tree.nodes.branch import NumericBinaryBranch
        from river.tree.nodes.htr_nodes import LeafMean
    except ImportError:
        return None
    # Exact types only: a subclass (the adaptive tree, its alternate trees) may predict otherwise.
    if type(model) is not HoeffdingTreeRegressor or model.leaf_prediction != "mean" or model._root is None:
        return None
    nodes: list = []  # [branch or leaf, left, right]
    stack = [(model._root, None)]
    while stack:  # depth first, left before right
        node, parent = stack.pop()
        number = len(nodes)
        if parent is not None:
            nodes[parent[0]][parent[1]] = number
        nodes.append([node, 0, 0])
        if type(node) is NumericBinaryBranch:
            stack.append((node.children[1], (number, 2)))
            stack.append((node.children[0], (number, 1)))
        elif type(node) is not LeafMean:
            return None
    features = sorted({n.feature for n, _, _ in nodes if type(n) is NumericBinaryBranch} - {prediction}, key=str)
    names = [*features, prediction]
    column = {name: k for k, name in enumerate(names)}
    size = len(nodes)
    feature = np.full(size, -1, dtype=np.intp)
    threshold, value = np.zeros(size), np.zeros(size)
    left, right, missing = (np.zeros(size, dtype=np.intp) for _ in range(3))
    depth = {0: 0}
    for k, (node, low, high) in enumerate(nodes):
        if type(node) is NumericBinaryBranch:
            feature[k], threshold[k] = column[node.feature], float(node.threshold)
            left[k], right[k] = low, high
            larger_right = node.children[0].total_weight < node.children[1].total_weight
            missing[k] = high if larger_right or node.feature == prediction else low
            depth[low] = depth[high] = depth[k] + 1
        else:
            value[k] = float(node.prediction(None, tree=model))
    return CompiledTree(names, feature, threshold, left, right, missing, value, max(depth.values()))
