"""Seed-format task: count the words of a text (maximise accuracy; perfect at 1.0)."""

TASK_NAME = "word_count"
METRIC_NAME = "accuracy"
HIGHER_IS_BETTER = True
PERFECT_SCORE = 1.0
USES_LLM_JUDGE = False
USES_RUBRIC = False
PROMPT_TEMPLATE = """Improve count_words(text) in the solution so that it returns the number of
words of any text: words are separated by any run of whitespace (spaces, tabs, newlines).
Current accuracy: {score}."""
