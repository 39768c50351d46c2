"""Mean absolute error of approx_sqrt against math.sqrt: prints metric:<error>."""

import importlib.util
import math
import sys

spec = importlib.util.spec_from_file_location("solution", sys.argv[1])
solution = importlib.util.module_from_spec(spec)
spec.loader.exec_module(solution)
xs = [0.5, 2.0, 10.0, 99.0, 1234.5, 1e6]
error = sum(abs(solution.approx_sqrt(x) - math.sqrt(x)) for x in xs) / len(xs)
print(f"metric:{error}")
