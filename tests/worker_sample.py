"""A worker module for the fork-server tests (``python -m tests.worker_sample SPEC_JSON``).

The spec says what to do: ``sleep`` seconds, start a ``helper`` (``sleep HELPER``), ``env`` (a
variable whose value to report), ``raise`` (an exception message), ``exit`` (a status); then it
prints a result with its pid, its parent's and its working directory.
"""

import json
import os
import subprocess
import sys
import time


def main() -> None:
    spec = json.loads(sys.argv[1])
    result = {"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd()}
    if spec.get("helper"):
        result["helper"] = subprocess.Popen(["sleep", str(spec["helper"])]).pid
        print(json.dumps(result), flush=True)
    if "env" in spec:
        result["env"] = os.environ.get(spec["env"])
    time.sleep(spec.get("sleep", 0))
    if "raise" in spec:
        raise ValueError(spec["raise"])
    if "exit" in spec:
        sys.exit(spec["exit"])
    print("noise before the result")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
