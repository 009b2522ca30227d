"""Built-in lm-eval task configs (*.yaml) and their hooks (utils.py); see docs/evaluation.md."""
