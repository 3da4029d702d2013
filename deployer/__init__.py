"""``python -m deployer``: register a run's model and move the ``champion`` alias to it, or roll
``champion`` back to ``previous_champion``."""
