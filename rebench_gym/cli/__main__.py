"""``python -m rebench_gym.cli``: the ``rebench`` command."""

from __future__ import annotations

import sys

from rebench_gym.cli import main

sys.exit(main())
