"""``python -m evaluator``: score the candidate and the current champion on the same untouched
test rows and decide whether the candidate should be deployed."""
