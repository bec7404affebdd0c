"""``rebench list``: the environment ids, their tasks and scales."""

from __future__ import annotations

import argparse
from typing import Any

from rebench_gym.cli._common import Subparsers, add_command, emit


def command(args: argparse.Namespace) -> int:
    """List the environment ids, their tasks and scales."""
    from rebench_gym.envs.registration import ENV_IDS
    from rebench_gym.tasks import get_task

    rows: list[dict[str, Any]] = []
    for env_id, name in ENV_IDS.items():
        spec = get_task(name).spec
        rows.append(
            {
                "id": env_id,
                "task": name,
                "built": True,  # every registered task is built; the key stays for scripts
                "title": spec.title,
                "original": spec.original,
                "scales": sorted(spec.scales),
                "higher_is_better": spec.higher_is_better,
            }
        )
    lines = [f"{'id':34} {'built':6} scales"]
    for r in rows:
        lines.append(
            f"{r['id']:34} {'yes' if r['built'] else 'no':6} "
            f"{', '.join(r.get('scales', [])) or '-'}"
        )
    emit(rows, args.json, "\n".join(lines))
    return 0


def register(sub: Subparsers) -> None:
    add_command(sub, "list", command, "list the environment ids")
