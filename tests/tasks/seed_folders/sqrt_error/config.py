"""Seed-format task: approximate square roots (minimise the mean absolute error; unbounded)."""

TASK_NAME = "sqrt_error"
METRIC_NAME = "mean_absolute_error"
HIGHER_IS_BETTER = False
USES_LLM_JUDGE = False
USES_RUBRIC = False


def build_prompt(code, metric_name):
    return f"Make approx_sqrt more accurate ({metric_name}, lower is better).\n\n{code}"
