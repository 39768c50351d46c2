"""Counts words (naively: splits on single spaces)."""


def count_words(text):
    if text == "":
        return 0
    return len(text.split(" "))
