"""Prints the solution's summaries for the LLM judge: answers: <JSON list>."""

import importlib.util
import json
import sys

spec = importlib.util.spec_from_file_location("solution", sys.argv[1])
solution = importlib.util.module_from_spec(spec)
spec.loader.exec_module(solution)
texts = ["The cat sat. It was happy.", "Rain fell all day. The river rose."]
print("answers: " + json.dumps([solution.summarize(t) for t in texts]))
