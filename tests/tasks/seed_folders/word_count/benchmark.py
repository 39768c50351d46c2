"""Scores count_words on cases.json: prints metric:<accuracy>."""

import importlib.util
import json
import os
import sys


def load(path):
    spec = importlib.util.spec_from_file_location("solution", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "cases.json"), encoding="utf-8") as handle:
        cases = json.load(handle)
    solution = load(sys.argv[1])
    right = 0
    for text, expected in cases:
        try:
            right += solution.count_words(text) == expected
        except Exception as exc:
            print(f"error on {text!r}: {exc}")
    print(f"metric:{right / len(cases)}")


if __name__ == "__main__":
    main()
