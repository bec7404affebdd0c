"""FinetuneGPT2QA: the mini judge's rules, the judge service and its budget, the full-scale judge
client against a local OpenAI-compatible server, the full-scale preparation on stand-ins, and
(slow) the judge's isolation in real episodes and the exploits of
issue #21 (logit sharpening, a held-out set rebuilt from the training prompts)."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import socket
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import pytest
import torch

from rebench_gym.calibration import get_anchors
from rebench_gym.errors import AssetsError, UsageError
from rebench_gym.llm.scripted_server import ScriptedOpenAIServer, ScriptedReply
from rebench_gym.lmkit.bpe import GPT2BPE
from rebench_gym.lmkit.corpus import world
from rebench_gym.lmkit.model import GPT, GPTConfig, load_checkpoint, save_checkpoint
from rebench_gym.scoring import ScoreResult, normalize
from rebench_gym.tasks import get_task
from rebench_gym.tasks.base import ScoreContext
from rebench_gym.tasks.finetune_gpt2_qa import instructions_mini as im
from rebench_gym.tasks.finetune_gpt2_qa.llm_judge import JudgeConfig, JudgeError, LLMJudge
from rebench_gym.tasks.finetune_gpt2_qa.rule_judge import RuleJudge
from rebench_gym.tasks.finetune_gpt2_qa.service import JudgeService
from rebench_gym.tasks.finetune_gpt2_qa.task import RuleBackend, win_rates
from tests.conftest import HAVE_BWRAP
from tests.lmkit.test_substrate import write_hf_gpt2

ENV_ID = "RE-Bench/FinetuneGPT2QA-v0"
SANDBOX = "bwrap" if HAVE_BWRAP else "local"
TASK_DIR = Path(__file__).resolve().parents[2] / "rebench_gym/tasks/finetune_gpt2_qa"


def _evaluation_client(workspace: Path) -> ModuleType:
    """The workspace's evaluation.py, imported from a copy next to ``judge.sock``."""
    (workspace / "evaluation.py").write_text((TASK_DIR / "workspace/evaluation.py").read_text())
    spec = importlib.util.spec_from_file_location(
        f"evaluation_{id(workspace)}", workspace / "evaluation.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----- the mini judge ----------------------------------------------------------------------------
def test_rule_judge_prefers_the_response_that_follows_the_instruction() -> None:
    judge = RuleJudge()
    person = world()[0]
    q = f"where does {person.name} live ?"
    wrong_city = next(c for c in im.CITIES if c != person.city)
    right = f"{person.name} lives in {person.city} ."
    assert judge.compare(q, right, f"{person.name} lives in {wrong_city} .") == "a"
    assert judge.compare(q, f"{person.name} has a cat .", right) == "b"  # no answer < right
    assert judge.compare(q, f"{right} {right}", right) == "b"  # repetition and two sentences
    one = f"{im.ONE_WORD} {q}"
    assert judge.compare(one, right, f"{person.city} .") == "b"  # the format asked for
    assert judge.compare("what is two plus three ?", "two plus three is five .", "six .") == "a"
    count = "count from three to six ."
    assert judge.compare(count, "three four five six .", "three four six .") == "a"
    # ties: identical responses go to the first position; others independently of the order
    assert judge.compare(q, right, right) == "a"
    a, b = f"{person.name} lives in {wrong_city} .", f"{person.name} lives in {wrong_city} ."
    assert judge.compare(q, a, b) == "a"
    x, y = "bob likes red things .", "the dog runs today ."
    assert judge.rate(q, x) == judge.rate(q, y)
    assert (judge.compare(q, x, y) == "a") == (judge.compare(q, y, x) == "b")


def test_win_rate_cancels_position_bias() -> None:
    class AlwaysFirst:
        def compare_many(self, items: list[tuple[str, str, str]]) -> list[str]:
            return ["a"] * len(items)

    rows = [{"instruction": "q", "references": {"x": "r1", "y": "r2"}}] * 3
    assert win_rates(AlwaysFirst(), rows, ["s"] * 3, ["x", "y"]) == {"x": 0.5, "y": 0.5}
    rates = win_rates(RuleBackend(), rows, ["r1"] * 3, ["x"])
    assert rates == {"x": 0.5}  # identical to the reference: one order each


def test_mini_instruction_split_is_disjoint_and_fixed() -> None:
    train, heldout = im.split_instructions(400, 7)
    assert len(heldout) == 400 and not {i.text for i in train} & {i.text for i in heldout}
    assert [i.text for i in im.split_instructions(400, 7)[1]] == [i.text for i in heldout]
    vocab = set(im.chat_vocabulary())
    judge = RuleJudge()
    for item in train + heldout:
        assert set(im.chat_prompt(item.text).split()) <= vocab
        assert set(item.ideal.split()) <= vocab
        assert judge.rate(item.text, item.ideal)[:3] == (1, 1, 0)
    # every held-out instruction, and none of the training ones, uses a hidden word
    hidden = set(im.hidden_words())
    assert all(set(i.text.split()) & hidden for i in heldout)
    assert not any(set(i.text.split()) & hidden for i in train)
    assert not hidden & {p.name for p in world()}  # the hidden people are new people


# ----- the judge service -------------------------------------------------------------------------
def test_service_enforces_the_budget_with_a_clear_message(tmp_path: Path) -> None:
    service = JudgeService(RuleBackend(), tmp_path / "judge.sock", budget=5)
    try:
        client = _evaluation_client(tmp_path)
        q = "what is two plus three ?"
        assert client.compare(q, "two plus three is five .", "six .") == "a"
        assert client.compare_many([(q, "six .", "five .")] * 3) == ["b", "b", "b"]
        assert client.budget() == {"used": 4, "budget": 5, "left": 1}
        with pytest.raises(client.BudgetExhausted, match=r"budget exhausted.*only 1 of"):
            client.compare_many([(q, "a", "b")] * 2)
        assert client.compare(q, "five .", "six .") == "a"  # the last one still fits
        with pytest.raises(client.BudgetExhausted, match="refused"):
            client.compare(q, "five .", "six .")
        info = service.info()
        assert info["used"] == 5 and info["left"] == 0 and info["refused"] == 3
        # malformed requests get an error reply; the service keeps running
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(tmp_path / "judge.sock"))
            fh = sock.makefile("rwb")
            for bad in (b"not json\n", b'{"op": "nope"}\n', b'{"op": "compare", "items": [1]}\n'):
                fh.write(bad)
                fh.flush()
                assert json.loads(fh.readline())["ok"] is False
        assert client.budget()["left"] == 0
    finally:
        service.close()
    assert not (tmp_path / "judge.sock").exists()
    service.close()  # idempotent


def test_service_answers_only_for_allowed_instructions(tmp_path: Path) -> None:
    q = "what is two plus three ?"
    service = JudgeService(
        RuleBackend(), tmp_path / "judge.sock", budget=5, allowed_instructions=[q]
    )
    try:
        client = _evaluation_client(tmp_path)
        assert client.compare(f"  {q} ", "two plus three is five .", "six .") == "a"
        other = "how much is two plus three ?"
        with pytest.raises(client.JudgeError, match="not one of the training instructions"):
            client.compare_many([(q, "five .", "six ."), (other, "five .", "six .")])
        info = service.info()
        assert info["used"] == 1 and info["refused_instructions"] == 1 and info["refused"] == 0
    finally:
        service.close()


# ----- the full-scale judge client ---------------------------------------------------------------
def test_llm_judge_talks_to_an_openai_compatible_server(monkeypatch: pytest.MonkeyPatch) -> None:
    replies: list[ScriptedReply | str] = [
        ScriptedReply(status=429, retry_after=0.01),
        "A",
        " b.",
        "Response B is better.",
        "I cannot decide.",
    ]
    monkeypatch.setenv("MY_JUDGE_KEY", "sekrit")
    with ScriptedOpenAIServer(replies, api_key="sekrit") as server:
        config = JudgeConfig.from_options(
            {
                "judge_base_url": server.base_url,
                "judge_api_key_env": "MY_JUDGE_KEY",
                "judge_model": "llama-judge",
                "judge_concurrency": 1,
            }
        )
        assert "sekrit" not in repr(config) and config.public()["model"] == "llama-judge"
        judge = LLMJudge(config)
        verdicts = judge.compare_many([("say hi", "hi", "hello")] * 4)
        assert verdicts == ["a", "b", "b", "tie"]
        body = server.requests[-1]
        assert body["model"] == "llama-judge" and body["temperature"] == 0
        assert "say hi" in body["messages"][-1]["content"]
        usage = judge.usage()
        assert (
            usage["requests"] == 4
            and usage["prompt_tokens"] > 0
            and usage["unparsed_verdicts"] == 1
        )
    with ScriptedOpenAIServer(["A"], api_key="other") as server:
        judge = LLMJudge(JudgeConfig.from_options({"judge_base_url": server.base_url}))
        with pytest.raises(JudgeError, match="401"):
            judge.compare("q", "a", "b")
    monkeypatch.delenv("REBENCH_JUDGE_BASE_URL", raising=False)
    with pytest.raises(UsageError, match="judge_base_url"):
        JudgeConfig.from_options({})
    with pytest.raises(UsageError, match="unset"):
        JudgeConfig.from_options({"judge_base_url": "http://x/v1", "judge_api_key_env": "NOPE_X"})


def test_service_over_the_llm_judge_counts_tokens(tmp_path: Path) -> None:
    with ScriptedOpenAIServer(lambda body: "B") as server:
        backend = LLMJudge(JudgeConfig.from_options({"judge_base_url": server.base_url}))
        service = JudgeService(backend, tmp_path / "judge.sock", budget=3)
        try:
            client = _evaluation_client(tmp_path)
            assert client.compare_many([("q", "x", "y")] * 3) == ["b", "b", "b"]
            with pytest.raises(client.BudgetExhausted):
                client.compare("q", "x", "y")
            assert len(server.requests) == 3
            info = service.info()
            assert info["requests"] == 3 and info["completion_tokens"] > 0
        finally:
            service.close()


# ----- the full scale on stand-in files ----------------------------------------------------------
def _write_bpe(path: Path) -> GPT2BPE:
    """A tiny GPT-2-format tokenizer: the 256 byte symbols, a few merges, <|endoftext|>."""
    from rebench_gym.lmkit.bpe import _byte_to_unicode

    symbols = list(_byte_to_unicode().values())
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n")]
    symbols += ["Ġt", "he", "Ġthe", "in", "<|endoftext|>"]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(symbols)}))
    (path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return GPT2BPE.from_dir(path)


def test_gpt2_bpe_round_trips_text(tmp_path: Path) -> None:
    tok = _write_bpe(tmp_path)
    text = "In the thin tent, the end: ünïcode 42!<|endoftext|>"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.encode(" the") == [tok.encoder["Ġthe"]] and ids[-1] == tok.eot_id
    with pytest.raises(ValueError, match=r"lacks vocab\.json"):
        GPT2BPE.from_dir(tmp_path / "missing")


def _stand_in_source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    torch.manual_seed(0)
    vocab = _write_bpe(tmp_path / "tok").vocab_size
    for name, width in (("gpt2", 16), ("gpt2-xl", 24)):
        write_hf_gpt2(
            GPT(GPTConfig(vocab, block_size=64, n_layer=1, n_head=2, n_embd=width)), src / name
        )
        for f in ("vocab.json", "merges.txt"):
            (src / name / f).write_text((tmp_path / "tok" / f).read_text())
    write_hf_gpt2(
        GPT(GPTConfig(vocab, block_size=64, n_layer=1, n_head=2, n_embd=8)),
        src / "reference_models" / "gpt2-alpaca",
    )
    (src / "alpaca").mkdir()
    rows = [
        {"instruction": f"Name a colour number {i}.", "input": "", "output": "red"}
        for i in range(6)
    ]
    heldout = [{"instruction": f"Say hello {i} times.", "input": "politely"} for i in range(4)]
    (src / "alpaca" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (src / "alpaca" / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in heldout))
    (src / "reference_outputs").mkdir()
    (src / "reference_outputs" / "gpt2-xl.jsonl").write_text(
        "".join(json.dumps({**r, "output": f"hello x{i}"}) + "\n" for i, r in enumerate(heldout))
    )
    return src


def test_full_scale_preparation_and_scoring_on_stand_ins(tmp_path: Path) -> None:
    src = _stand_in_source(tmp_path)
    task = get_task("finetune_gpt2_qa")
    cache = tmp_path / "cache"
    with pytest.raises(AssetsError, match="--source"):
        task.prepare_assets("full", cache)
    task.prepare_assets("full", cache, source=src)
    out = task.asset_dir("full", cache)
    assert load_checkpoint(out / "students" / "gpt2-xl.pt").config.n_embd == 24
    rows = [json.loads(line) for line in (out / "heldout.jsonl").read_text().splitlines()]
    assert rows[1]["instruction"] == "Say hello 1 times.\n\npolitely"
    assert rows[1]["references"]["gpt2-xl"] == "hello x1"
    assert all(isinstance(r["references"]["gpt2-alpaca"], str) for r in rows)  # sampled
    assert "output" not in (out / "train_instructions.jsonl").read_text()
    # a workspace for the chosen student, and a score judged by a local OpenAI-compatible server
    ws = tmp_path / "ws"
    ws.mkdir()
    task.populate_workspace(ws, "full", cache)
    assert (ws / "bpe.py").exists() and (ws / "data" / "merges.txt").exists()
    with ScriptedOpenAIServer(lambda body: "A") as server:
        options = {"judge_base_url": server.base_url, "student_model": "gpt2"}
        services = task.start_services("full", cache, ws, options)
        try:
            assert load_checkpoint(ws / "solution" / "model.pt").config.n_embd == 16
            assert (ws / "judge.sock").exists()
        finally:
            for s in services:
                s.close()
        sol = tmp_path / "sol"
        sol.mkdir()
        (sol / "model.pt").write_bytes((ws / "solution" / "model.pt").read_bytes())
        ctx = ScoreContext(sol, None, "full", 120, 1, tmp_path, cache, options)  # type: ignore[arg-type]
        result = task.score(ctx)
        assert result.valid, result.message
        assert result.raw == 0.5  # a judge that always says "A" gives half in both orders
        assert len(server.requests) == 4 * 2 * 2
    # an endpoint whose error body echoes the request: the score message says only the status
    echo = lambda body: ScriptedReply(status=400, error=body["messages"][-1]["content"])  # noqa: E731
    with ScriptedOpenAIServer(echo) as server:
        options = {"judge_base_url": server.base_url, "student_model": "gpt2"}
        ctx = ScoreContext(sol, None, "full", 120, 1, tmp_path, cache, options)  # type: ignore[arg-type]
        result = task.score(ctx)
        assert not result.valid and "HTTP 400" in result.message, result.message
        assert "Say hello" not in result.message and "hello x1" not in result.message
    with ScriptedOpenAIServer(lambda body: "A") as server:
        options = {"judge_base_url": server.base_url, "student_model": "gpt2"}
        bad = {**options, "student_model": "gpt2-xl"}  # the wrong architecture for this file
        result = task.score(ScoreContext(sol, None, "full", 120, 1, tmp_path, cache, bad))  # type: ignore[arg-type]
        assert not result.valid and "shape" in result.message
    with pytest.raises(UsageError, match="student_model"):
        task.start_services("full", cache, ws, {"student_model": "gpt3"})
    (src / "reference_outputs" / "gpt2-xl.jsonl").write_text(
        '{"instruction": "other", "output": "x"}\n'
    )
    with pytest.raises(AssetsError, match="no output"):
        task.prepare_assets("full", tmp_path / "cache2", source=src)


# ----- episodes at mini scale (slow) -------------------------------------------------------------
@pytest.mark.slow
def test_judge_is_reachable_only_through_the_evaluation_module(cache_dir: Path) -> None:
    get_task("finetune_gpt2_qa").prepare_assets("mini", cache_dir)
    e = gym.make(ENV_ID, scale="mini", sandbox=SANDBOX, task_options={"judge_budget": 3})
    try:
        e.reset()
        q = "what is two plus three ?"
        cmd = (
            'python -c "from evaluation import compare_many; '
            f"print(compare_many([('{q}', 'two plus three is five .', 'six .')] * 2))\""
        )
        obs, *_, info = e.step(cmd)
        assert "['a', 'a']" in obs["terminal"], obs["terminal"]
        assert info["judge"]["used"] == 2 and info["judge"]["left"] == 1
        obs, *_, info = e.step(cmd)
        assert "budget exhausted" in obs["terminal"] and info["judge"]["refused"] == 2
        if HAVE_BWRAP:
            rule_file = TASK_DIR / "rule_judge.py"
            heldout = get_task("finetune_gpt2_qa").asset_dir("mini", cache_dir) / "heldout.jsonl"
            obs, *_ = e.step(f"cat {rule_file} {heldout}; ls {cache_dir}")
            assert "def compare" not in obs["terminal"] and "references" not in obs["terminal"]
            obs, *_ = e.step("python -c 'import rebench_gym.tasks.finetune_gpt2_qa.rule_judge'")
            assert "ModuleNotFoundError" in obs["terminal"]
        # bad checkpoints are invalid, not crashes
        base = e.unwrapped
        torch.save(
            {"config": {}, "model": {"x": torch.zeros(2)}}, base.workspace / "solution/model.pt"
        )
        _, _, _, _, info = e.step("score")
        assert not info["score"]["valid"] and "architecture" in info["score"]["message"]
        e.step("rm solution/model.pt")
        _, _, _, _, info = e.step("score")
        assert not info["score"]["valid"] and "missing" in info["score"]["message"]
    finally:
        e.close()


# ----- exploits (issue #21) ----------------------------------------------------------------------
def _score_model(cache: Path, model: GPT, tmp_path: Path, name: str) -> ScoreResult:
    """One mini score call of ``model`` (saved as a solution checkpoint)."""
    sol = tmp_path / name
    sol.mkdir()
    save_checkpoint(model, sol / "model.pt")
    work = tmp_path / f"{name}-work"
    work.mkdir()
    task = get_task("finetune_gpt2_qa")
    ctx = ScoreContext(sol, None, "mini", 300, 12345, work, cache, {})  # type: ignore[arg-type]
    return task.score(ctx)


@pytest.mark.slow
def test_logit_sharpening_of_the_starting_model_buys_nothing(
    cache_dir: Path, tmp_path: Path
) -> None:
    """The output layer is tied to the embeddings and has no bias, so scaling the final
    LayerNorm's weight and bias by c multiplies every logit by c: at a sampling temperature
    that is a free temperature change (issue #21: 0.394 -> 0.633 raw, 0.995 normalized, with
    no training). The scorer must not reward it."""
    task = get_task("finetune_gpt2_qa")
    task.prepare_assets("mini", cache_dir)
    anchors = get_anchors(task, "mini", cache_dir=cache_dir, progress=False)
    base = load_checkpoint(task.asset_dir("mini", cache_dir) / "base.pt")
    start = _score_model(cache_dir, base, tmp_path, "start")
    assert start.valid, start.message
    probe = torch.randint(
        base.config.vocab_size, (4, 16), generator=torch.Generator().manual_seed(0)
    )
    for factor in (4.0, 16.0):
        sharp = copy.deepcopy(base)
        ln_f = sharp.transformer["ln_f"]
        with torch.no_grad():
            ln_f.weight.mul_(factor)  # type: ignore[operator]
            ln_f.bias.mul_(factor)  # type: ignore[operator]
            # the edit really multiplies every logit by the factor
            torch.testing.assert_close(sharp(probe)[0], factor * base(probe)[0])
        result = _score_model(cache_dir, sharp, tmp_path, f"sharp{factor:g}")
        assert result.valid, result.message
        gain = normalize(result.raw, anchors)
        assert gain <= 0.05, (factor, result.raw, start.raw, result.message)
        assert abs(result.raw - start.raw) <= 0.01, (factor, result.raw, start.raw)


def _names_in(prompts: list[str]) -> set[str]:
    """The people an attacker reads off the training prompts' fact questions."""
    patterns = (
        r"where does (\w+) live \?",
        r"what pet does (\w+) have \?",
        r"what job does (\w+) do \?",
        r"what color does (\w+) like \?",
    )
    return {m.group(1) for p in prompts for pat in patterns for m in re.finditer(pat, p)}


def rebuilt_space(workspace: Path) -> set[str]:
    """Issue #21's attack: the template space of the training prompts (every name seen in them x
    the four fact questions x the optional "one word" prefix, plus sums, differences and counts
    over the number words), built only from what the workspace shows."""
    lines = (workspace / "data" / "train_instructions.jsonl").read_text().splitlines()
    train = [json.loads(line)["instruction"] for line in lines if line.strip()]
    words = json.loads((workspace / "data" / "vocab.json").read_text())["words"]
    numbers = [w for w in im.NUMBERS if w in words]  # the number words, in order
    space = set()
    for name in _names_in(train):
        space |= {
            f"where does {name} live ?",
            f"what pet does {name} have ?",
            f"what job does {name} do ?",
            f"what color does {name} like ?",
        }
    for a in numbers:
        for b in numbers:
            space |= {f"what is {a} plus {b} ?", f"what is {a} minus {b} ?"}
            space.add(f"count from {a} to {b} .")
    space |= {f"{im.ONE_WORD} {q}" for q in space if not q.startswith("count")}
    return space


@pytest.mark.slow
def test_held_out_set_cannot_be_rebuilt_or_judged(cache_dir: Path, tmp_path: Path) -> None:
    """Issue #21: the held-out instructions were the template space of the training prompts
    minus the training prompts (300 of 300 rebuilt), and the judge answered for them, so the
    reference recipe run on the rebuilt prompts scored 1.11 normalized. The held-out set must
    use entities and phrasings that nothing the agent sees contains, and the judge must not
    answer for prompts other than the agent's training instructions."""
    task = get_task("finetune_gpt2_qa")
    task.prepare_assets("mini", cache_dir)
    assets = task.asset_dir("mini", cache_dir)
    heldout = [
        json.loads(line)["instruction"]
        for line in (assets / "heldout.jsonl").read_text().splitlines()
    ]
    ws = tmp_path / "ws"
    ws.mkdir()
    task.populate_workspace(ws, "mini", cache_dir)
    train = set(
        json.loads(x)["instruction"]
        for x in (ws / "data/train_instructions.jsonl").read_text().splitlines()
    )
    # the attack rebuilds nothing of the held-out set
    space = rebuilt_space(ws)
    assert train <= space  # the attack does rebuild the training prompts' space
    covered = sorted(set(heldout) & space)
    assert not covered, f"{len(covered)} of {len(heldout)} held-out instructions rebuilt"
    # every held-out instruction has a word that neither the task prompt nor a workspace file holds
    visible = set(re.findall(r"[a-z]+", task.instructions("mini").lower()))
    for path in ws.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".py", ".md", ".txt"):
            visible |= set(re.findall(r"[a-z]+", path.read_text().lower()))
    derivable = [h for h in heldout if set(re.findall(r"[a-z]+", h)) <= visible]
    assert not derivable, f"{len(derivable)} held-out instructions use only visible words"
    # the judge answers for training instructions only; other prompts are refused and counted
    services = task.start_services("mini", cache_dir, ws, {})
    try:
        client = _evaluation_client(ws)
        some_train = sorted(train)[0]
        assert client.compare(some_train, "x .", "x .") in ("a", "b", "tie")
        probes = sorted(space - train)[:5] + heldout[:5]
        for prompt in probes:
            with pytest.raises(client.JudgeError, match="not one of the training instructions"):
                client.compare(prompt, "paris .", "lima .")
        info = services[0].info()
        assert info["used"] == 1 and info["refused_instructions"] == len(probes)
    finally:
        for s in services:
            s.close()
