"""Approximates square roots with a few Newton steps from a poor start."""

STEPS = 2


def approx_sqrt(x):
    guess = x
    for _ in range(STEPS):
        guess = 0.5 * (guess + x / guess)
    return guess
