"""The path one event takes: decoding and checks, the label join, a partition's state, and a
model's pipeline (reference, columns and their tests, label-side tests, decisions)."""
