"""The TRL adapter: ReBenchToolEnv's tools on a real bwrap episode, and a real GRPOTrainer run.

OptimizeKernel at mini scale in the bwrap sandbox, with ``anchors`` given so nothing is
calibrated (the rewards' absolute values are then arbitrary; what is checked is that they are the
episodes' own scores). The GRPO test builds everything locally (no downloads): a byte-level BPE
tokenizer trained on the rendered prompt, TRL's own Qwen2.5 chat template (one whose tool calls
TRL parses) and a two-layer Qwen2 model from a config. A randomly initialised model emits no tool
calls, so the model is first fitted (a few hundred CPU steps) to answer the prompt with one
fixed ``bash`` tool call; GRPOTrainer then runs two real steps in which that call must reach the
sandbox and the environments' scores must come back as the logged rewards.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from rebench_gym.errors import UsageError
from rebench_gym.sandbox.resources import mounts_below
from tests.conftest import HAVE_BWRAP

pytest.importorskip("trl", reason="the TRL adapter's tests need pip install 'rebench-gym[trl]'")

from rebench_gym.integrations.trl import ReBenchEnvFactory, ReBenchToolEnv

pytestmark = [
    pytest.mark.bwrap,
    pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed"),
]

TOOLS = {"bash", "write_file", "str_replace", "view", "score", "submit"}
#: fixed (start, reference) raw scores: no calibration in these tests
ANCHORS = (4.8, 3.6)


@pytest.fixture
def tool_env() -> Iterator[ReBenchToolEnv]:
    env = ReBenchToolEnv("RE-Bench/OptimizeKernel-v0", anchors=ANCHORS)
    yield env
    env.env.close()


def _assert_closed(workspaces: list[Path]) -> None:
    """The sandboxes' traces are gone: workspace directories, their mounts, bwrap processes."""
    for workspace in workspaces:
        assert not workspace.parent.exists(), f"{workspace.parent} left behind"
        assert not mounts_below(workspace.parent)
    children = psutil.Process().children(recursive=True)
    assert not [p for p in children if p.name() == "bwrap"], "a bwrap sandbox still runs"


def test_tool_schemas_are_what_transformers_builds_from_the_docstrings() -> None:
    from transformers.utils import get_json_schema

    env = ReBenchToolEnv()
    for name in TOOLS:
        schema = get_json_schema(getattr(env, name))["function"]
        assert schema["name"] == name and schema["description"]
        for prop in schema["parameters"]["properties"].values():
            assert prop["description"], f"{name}: an argument without a description"
    assert get_json_schema(env.str_replace)["function"]["parameters"]["required"] == [
        "path",
        "old",
        "new",
    ]


def test_an_unknown_env_id_fails_when_the_factory_is_made() -> None:
    with pytest.raises(UsageError, match="unknown environment id"):
        ReBenchEnvFactory("RE-Bench/NoSuchTask-v0")


def test_tools_act_in_the_sandbox_and_bad_calls_come_back_as_text(
    tool_env: ReBenchToolEnv,
) -> None:
    with pytest.raises(RuntimeError, match="before reset"):
        tool_env.bash("true")
    intro = tool_env.reset(prompt=[{"role": "user", "content": "go"}])
    assert "prefix_sum" in intro and "solution/solution.py" in intro

    assert "[wrote" in tool_env.write_file("notes/a.txt", "alpha\nbeta\n")
    assert "[replaced 1" in tool_env.str_replace("notes/a.txt", "beta", "gamma")
    assert "2\tgamma" in tool_env.view("notes/a.txt", 2, 2).replace(" ", "")
    out = tool_env.bash("cat notes/a.txt | wc -l; echo $((6*7))")
    assert "42" in out and "[exit code 0]" in out
    # a call may shorten its timeout but not lengthen it past the env's command_timeout
    tool_env.env.command_timeout = 1.0
    assert "timed out" in tool_env.bash("sleep 5", timeout=1e9)
    tool_env.env.command_timeout = 600.0
    assert (tool_env.env.workspace / "notes/a.txt").read_text() == "alpha\ngamma\n"
    # the model's mistakes are observations, never exceptions
    assert "occurs 0 times" in tool_env.str_replace("notes/a.txt", "zeta", "x")
    assert "[file error]" in tool_env.view("missing.txt")
    assert "[invalid action]" in tool_env.write_file("notes/b.txt", 7)  # type: ignore[arg-type]
    assert "[invalid action]" in tool_env.view("../../etc/passwd")
    assert "[invalid action]" in tool_env.bash("true", timeout="soon")  # type: ignore[arg-type]
    assert [c.tool for c in tool_env.calls] == [
        "write_file",
        "str_replace",
        "view",
        "bash",
        "bash",
        "str_replace",
        "view",
        "write_file",
        "view",
        "bash",
    ]

    # a new episode starts from the task's workspace
    tool_env.reset()
    assert not (tool_env.env.workspace / "notes").exists() and tool_env.calls == ()
    with pytest.raises(UsageError, match="seed"):
        tool_env.reset(seed="7")


def test_an_env_given_to_trl_without_the_factory_is_closed_when_collected() -> None:
    env = ReBenchToolEnv(anchors=ANCHORS)
    env.reset()
    workspace = env.env.workspace
    assert "[exit code 0]" in env.bash("sleep 60 & echo started")
    del env
    gc.collect()
    _assert_closed([workspace])


@pytest.mark.slow
def test_reward_is_the_final_normalized_score_and_submit_ends_the_episode(
    tool_env: ReBenchToolEnv,
) -> None:
    tool_env.reset()
    assert "[score] raw" in tool_env.score()
    assert "[submitted]" in tool_env.submit()
    assert tool_env.ended
    assert "[episode over]" in tool_env.bash("touch late.txt")
    assert not (tool_env.env.workspace / "late.txt").exists()
    log = tool_env.env.score_log
    assert len(log.rows) == 1  # submit did not rescore an unchanged solution
    assert tool_env.get_reward() == pytest.approx(log.normalized)

    # a rollout that never scored is scored when TRL asks for its reward
    tool_env.reset()
    tool_env.bash("echo hi")
    assert tool_env.env.score_log.rows == []
    reward = tool_env.get_reward()
    assert len(tool_env.env.score_log.rows) == 1
    assert reward == pytest.approx(tool_env.env.score_log.normalized)
    assert tool_env.get_reward() == reward and len(tool_env.env.score_log.rows) == 1


# ----- a real GRPOTrainer run ------------------------------------------------------------------
PROOF_COMMAND = "echo $((6*7)) > proof.txt"
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]


def _tokenizer(corpus: list[str]) -> Any:
    """A byte-level BPE tokenizer trained on ``corpus``, with TRL's Qwen2.5 chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_chat_template

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    tokenizer.chat_template = qwen2_5_chat_template
    return tokenizer


def _model_that_calls_a_tool(tokenizer: Any, prompt: str, completion: str) -> Any:
    """A two-layer Qwen2 fitted to answer ``prompt`` with ``completion``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + completion_ids])
    target = ids[0, -len(completion_ids) :]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    # sampled at temperature 1, the whole call must come out: about 97% for a mean token loss
    # of 1e-3 over its ~30 tokens; logits only where the completion is predicted
    for step in range(400):
        logits = model(input_ids=ids, logits_to_keep=len(completion_ids) + 1).logits[0, :-1]
        loss = torch.nn.functional.cross_entropy(logits, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 1e-3:
            print(f"fitted in {step + 1} steps")
            break
    assert loss.item() < 2e-3, f"the tiny model did not learn its tool call (loss {loss.item()})"
    return model


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine this tiny model runs ~10x faster so."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_grpo_trainer_runs_two_steps_with_tool_calls_in_the_sandbox(tmp_path: Path) -> None:
    from trl import GRPOConfig, GRPOTrainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    factory = ReBenchEnvFactory("RE-Bench/OptimizeKernel-v0", anchors=ANCHORS)
    with factory:
        # the prompt the trainer will render (no dataset: reset's text is the user message)
        first = factory()
        messages = [{"role": "user", "content": first.reset()}]
        tools = [getattr(first, name) for name in sorted(TOOLS)]
        call = json.dumps({"name": "bash", "arguments": {"command": PROOF_COMMAND}})
        completion = f"<tool_call>\n{call}\n</tool_call><|im_end|>"
        # the tokenizer is trained on the very text it will encode (the template needs no vocab)
        prompt = _tokenizer([]).apply_chat_template(
            messages, tools=tools, add_generation_prompt=True, tokenize=False
        )
        tokenizer = _tokenizer([prompt, completion])
        assert (
            tokenizer.apply_chat_template(
                messages, tools=tools, add_generation_prompt=True, tokenize=False
            )
            == prompt
        )
        model = _model_that_calls_a_tool(tokenizer, prompt, completion)

        args = GRPOConfig(
            output_dir=str(tmp_path / "out"),
            use_cpu=True,
            per_device_train_batch_size=2,
            num_generations=2,
            max_steps=2,
            max_completion_length=96,
            max_tool_calling_iterations=1,
            learning_rate=1e-4,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
        )
        trainer = GRPOTrainer(
            model=model,
            args=args,
            processing_class=tokenizer,
            environment_factory=factory,
        )
        assert {tool.__name__ for tool in trainer.tools} == TOOLS
        trainer.train()

        logs = [entry for entry in trainer.state.log_history if "reward" in entry]
        assert len(logs) == 2, trainer.state.log_history
        assert all(entry["tools/call_frequency"] >= 1 for entry in logs)
        # the last batch's rollouts are the environments TRL pooled (all but our own `first`)
        pool = [env for env in factory.environments if env is not first]
        assert len(pool) == 2
        for env in pool:
            assert env.calls and env.calls[0].tool == "bash"
            assert env.calls[0].arguments["command"] == PROOF_COMMAND
            assert (env.env.workspace / "proof.txt").read_text() == "42\n"  # ran in the sandbox
            assert env.ended and len(env.env.score_log.rows) >= 1
        # the logged reward of the last step is the mean of those episodes' final scores
        scores = [env.env.score_log.normalized for env in pool]
        assert logs[-1]["rewards/ReBenchToolEnv/mean"] == pytest.approx(
            sum(scores) / len(scores), rel=1e-5
        )
        workspaces = [env.env.workspace for env in factory.environments]
    _assert_closed(workspaces)
    with pytest.raises(RuntimeError, match="closed"):
        factory()
