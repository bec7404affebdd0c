"""Step overhead and warm reset benchmark; the same as `rebench bench`.

Usage: python benchmarks/step_overhead.py [--json]
"""

import json
import sys

from rebench_gym.bench import run_benchmarks

if __name__ == "__main__":
    report = run_benchmarks()
    print(json.dumps(report, indent=2) if "--json" in sys.argv else report["text"])
