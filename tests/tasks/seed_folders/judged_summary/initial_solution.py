"""Summarises by keeping the first sentence."""


def summarize(text):
    return text.split(".")[0] + "."
