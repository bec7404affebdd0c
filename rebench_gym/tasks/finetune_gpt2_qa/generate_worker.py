"""Trusted sampling of the student's responses, run by the scorer as a separate process.

    python -m rebench_gym.tasks.finetune_gpt2_qa.generate_worker SPEC_JSON

SPEC_JSON names the checkpoint, the required model config, the tokenizer, the prompt template,
the instructions file (one JSON object with ``instruction`` per line), the decoding settings, the
seed, ``kv_cache`` (false on the baseline scoring path) and ``out``, where the responses go (a
JSON list of strings). The checkpoint is loaded with ``weights_only=True`` into the fixed model
class (its keys and shapes must match); no code of the agent runs here. Prints one JSON line:
``{"n": count}`` or ``{"error": str}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch


def load_tokenizer(kind: str, directory: Path) -> Any:
    """The word tokenizer (mini) or GPT-2's byte-level BPE (full)."""
    if kind == "word":
        from rebench_gym.lmkit.tokenizer import WordTokenizer

        return WordTokenizer.load(directory / "vocab.json")
    from rebench_gym.lmkit.bpe import GPT2BPE

    return GPT2BPE.from_dir(directory)


def format_prompt(template: str, instruction: str) -> str:
    """Fill the task's prompt template."""
    return template.replace("{instruction}", instruction)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    from rebench_gym.lmkit.evaluate_worker import check_and_load
    from rebench_gym.lmkit.sample import generate

    torch.set_num_threads(int(spec.get("threads", torch.get_num_threads())))
    try:
        model = check_and_load(Path(spec["checkpoint"]), spec["config"])
        device = spec.get("device", "cpu")
        model.to(device)
        tok = load_tokenizer(spec["tokenizer"], Path(spec["tokenizer_dir"]))
        lines = Path(spec["instructions"]).read_text().splitlines()
        instructions = [json.loads(line)["instruction"] for line in lines if line.strip()]
        prompts = [tok.encode(format_prompt(spec["template"], i)) for i in instructions]
        block = int(spec["config"]["block_size"])
        max_new = min(int(spec["max_new_tokens"]), block // 2)
        prompts = [p[-(block - max_new) :] for p in prompts]
        gen = torch.Generator().manual_seed(int(spec["seed"]))
        out = generate(
            model,
            prompts,
            max_new_tokens=max_new,
            eot_id=tok.eot_id,
            temperature=float(spec["temperature"]),
            top_k=spec.get("top_k"),
            generator=gen,
            batch_size=int(spec.get("batch_size", 256)),
            device=device,
            kv_cache=bool(spec.get("kv_cache", True)),
        )
        responses = [tok.decode(ids).strip() for ids in out]
    except (ValueError, RuntimeError, KeyError, TypeError, OSError) as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 0
    Path(spec["out"]).write_text(json.dumps(responses))
    print(json.dumps({"n": len(responses)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
