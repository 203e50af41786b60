"""Motivated alternating training of a nested base/motivated pair.

Importing this package is light; the modules that need torch (`optim`, `session`, `loop`,
`run`, `checkpoint` functions) import it themselves. Entry points: `run.train_pair`,
`checkpoint.load_run`, `conditions.create_condition`.
"""
