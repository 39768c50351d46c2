"""Seed-format task judged by an LLM: summaries scored against a rubric."""

TASK_NAME = "judged_summary"
METRIC_NAME = "rubric_score"
HIGHER_IS_BETTER = True
PERFECT_SCORE = 1.0
USES_LLM_JUDGE = True
USES_RUBRIC = True
PROMPT_TEMPLATE = "Improve summarize(text) so that summaries keep the key facts."
RUBRIC = [
    [{"fact": "the cat sat", "weight": 2}, "the cat was happy"],
    [{"fact": "it rained all day", "weight": 1}, {"fact": "the river rose", "weight": 2}],
]
JUDGE_CONTEXT = [
    "Summarise: The cat sat. It was happy.",
    "Summarise: Rain fell all day. The river rose.",
]
