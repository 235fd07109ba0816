"""Rewards scored elsewhere: algorithm.reward_server (rlhf_lab's JSON protocol), the LLM judge and serve-reward.
Every server runs on the loopback address inside the test, with scripted faults: slow answers, errors, a server that
is down, one that dies mid-run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest
from conftest import GRPO_TINY, ROOT, TINY, logged_metrics, read_summary, run_cli
from helpers.reward_servers import Script, chat_reply, start

from rlhf_lab.errors import ConfigError, RewardError
from rlhf_lab.rewards.http import Retrying
from rlhf_lab.rewards.remote import RewardServer, stop_if_down
from rlhf_lab.rewards.wrap import NamedReward

QUICK = Retrying(timeout=0.5, retries=2, backoff=0.05)


@pytest.fixture
def serve():
    servers = []

    def _serve(script, answer=None):
        server, url = start(script) if answer is None else start(script, answer)
        servers.append(server)
        return url

    yield _serve
    for server in servers:
        server.shutdown()
        server.server_close()


def client(url, policy=QUICK, batch_size=2, concurrency=3):
    return RewardServer(url, policy, concurrency=concurrency, batch_size=batch_size)


def test_answers_are_scored_in_concurrent_chunks_in_order(serve):
    script = Script()
    reward = client(serve(script))
    completions = ["a", "bb", "ccc", "dddd", "eeeee"]
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(5)]
    got = reward(completions, prompts=prompts, solution=[10, 20, 30, 40, 50], completion_ids=[[1]] * 5)
    assert got == [11.0, 22.0, 33.0, 44.0, 55.0]
    assert len(script.requests) == 3  # 2 + 2 + 1 answers
    first = min(script.requests, key=lambda r: r["completions"][0])
    assert first == {"prompts": prompts[:2], "completions": ["a", "bb"], "columns": {"solution": [10, 20]}}
    assert reward.take_failure() is None


def test_a_slow_answer_is_retried_after_the_timeout(serve):
    script = Script(slow={0: 1.5})  # the first request outlives the 0.5 s timeout
    reward = client(serve(script), batch_size=8)
    assert reward(["xy"], solution=[1]) == [3.0]
    assert len(script.requests) == 2


def test_server_errors_are_retried_with_backoff(serve):
    script = Script(status={0: 503, 1: 500})
    reward = client(serve(script), batch_size=8)
    assert reward(["xyz"], solution=[0]) == [3.0]
    assert len(script.requests) == 3


def test_a_request_the_server_refuses_is_one_line_without_retries(serve):
    script = Script(status={0: 400})
    reward = NamedReward("reward_server", client(serve(script), batch_size=8))
    with pytest.raises(RewardError, match=r"answered HTTP 400.*scripted 400"):
        reward(prompts=["q"], completions=["a"])
    assert len(script.requests) == 1


def test_an_answer_of_the_wrong_shape_is_one_line(serve):
    url = serve(Script(), answer=lambda request: {"rewards": [1.0]})  # one reward for two answers
    reward = NamedReward("reward_server", client(url, batch_size=8))
    with pytest.raises(RewardError, match=r"answered 1 rewards.*2 here"):
        reward(prompts=["q", "q"], completions=["a", "b"])


def test_a_server_that_stays_down_scores_nothing_and_stops_the_round(serve):
    script = Script(status={i: 503 for i in range(10)})
    reward = NamedReward("reward_server", client(serve(script), batch_size=8))
    assert reward(prompts=["q"], completions=["a"]) == [None]  # nothing made up
    assert len(script.requests) == 3  # the first try and 2 retries
    with pytest.raises(RewardError, match=r"gave no usable answer in 3 tries \(last: HTTP 503"):
        stop_if_down([reward])
    stop_if_down([reward])  # reported once: the next round starts clean


def test_judge_scores_with_the_template_and_the_key_from_the_environment(serve, monkeypatch):
    from rlhf_lab.rewards.custom import needed_columns, resolve

    script = Script()
    url = serve(script, answer=chat_reply(lambda text: "Score: 7" if "A: 42 " in text else "I cannot tell"))
    monkeypatch.setenv("JUDGE_KEY", "sk-test-123")
    spec = {
        "_target_": "rlhf_lab.rewards.judge.LLMJudge",
        "base_url": url.rstrip("/") + "/v1",
        "model": "judge-model",
        "template": "Q: {prompt} Gold: {solution} A: {completion} Score 0-10:",
        "max_score": 10,
        "api_key_env": "JUDGE_KEY",
        "retries": 1,
        "backoff": 0.05,
    }
    name, judge = resolve(spec, 0, None)
    assert name == "llm_judge" and needed_columns(judge) == ("solution",)
    prompts = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "6 x 7?"}]] * 2
    assert NamedReward(name, judge)(prompts=prompts, completions=["42", "41"], solution=["42", "42"]) == [0.7, None]
    sent = sorted(r["messages"][0]["content"] for r in script.requests)
    assert sent == ["Q: 6 x 7? Gold: 42 A: 41 Score 0-10:", "Q: 6 x 7? Gold: 42 A: 42 Score 0-10:"]
    assert {r["model"] for r in script.requests} == {"judge-model"}
    assert all(h["Authorization"] == "Bearer sk-test-123" for h in script.headers)


def test_a_judge_template_without_the_answer_is_a_config_error():
    from rlhf_lab.rewards.custom import resolve

    spec = {"_target_": "rlhf_lab.rewards.judge.LLMJudge", "base_url": "http://h/v1", "model": "m", "template": "hi"}
    with pytest.raises(ConfigError, match=r"reward_funcs\[0\].*must contain \{completion\}"):
        resolve(spec, 0, None)


def _grpo(tmp_path, url, *extra):
    return [
        *GRPO_TINY,
        "algorithm.reward_funcs=[]",
        f"algorithm.reward_server={url}",
        "algorithm.reward_server_retries=1",
        "algorithm.reward_server_timeout=2",
        f"hydra.run.dir={tmp_path}/run",
        *extra,
    ]


def test_grpo_trains_on_a_reward_server(tmp_path, tiny_model_dir, serve):
    script = Script()
    proc = run_cli(_grpo(tmp_path, serve(script), "train.max_steps=2"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rewards/reward_server/mean" in logged_metrics(tmp_path / "run")
    after = read_summary(tmp_path / "run")["eval_after"]
    assert after["reward/reward_server"] > 0  # lengths plus solutions
    assert {"prompts", "completions", "columns"} <= set(script.requests[0])
    assert "solution" in script.requests[0]["columns"]


def test_a_server_that_dies_mid_run_stops_it_with_a_checkpoint_and_the_run_resumes(tmp_path, tiny_model_dir, serve):
    # Step 1's 8 answers are one request; then the server is gone (no held-out evaluation: only training asks).
    args = _grpo(tmp_path, serve(Script(stop_after=1)), "train.max_steps=3", "train.save_steps=100", "train.eval=false")
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("reward error: reward 'reward_server'") and "gave no usable answer in 2 tries" in line
    assert "training stopped after step 1 with a checkpoint in" in line
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-1").is_dir()
    assert read_summary(tmp_path / "run")["status"] == "failed"
    # The server is back (on another port here): the same run resumes from step 1 and finishes.
    args = [a for a in args if not a.startswith("algorithm.reward_server=")]
    proc = run_cli([*args, f"algorithm.reward_server={serve(Script())}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "completed" and summary["global_steps"] == 3
    assert summary["resumed_from"].endswith("checkpoint-1")


def test_bad_reward_server_settings_are_one_line_before_a_model_loads(tmp_path):
    proc = run_cli(["algorithm=grpo", "algorithm.reward_server=ftp://host/x", "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 2 and "algorithm.reward_server: must be an http:// or https:// URL" in proc.stderr
    # a server nobody runs: one line at the run's start, before the model loads
    proc = run_cli(_grpo(tmp_path, "http://127.0.0.1:9/"), cwd=tmp_path)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert "algorithm.reward_server: http://127.0.0.1:9/ cannot be reached" in line
    assert "model loaded" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_serve_reward_answers_with_the_reward_models_own_scores(tmp_path, tiny_model_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_lab.serving.reward_model import load_score

    rm_dir = tmp_path / "rm_run" / "model"
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).save_pretrained(rm_dir)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(rm_dir)
    server = subprocess.Popen(
        [sys.executable, "-m", "rlhf_lab", "serve-reward", f"model={rm_dir.parent}", "port=0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        first = server.stdout.readline()
        assert first.startswith("serving "), first + server.stderr.read()
        url = first.split(" at ")[1].split()[0]
        prompts = [[{"role": "user", "content": "What is 2 + 3?"}], "What is 4 + 4?"]
        body = {"prompts": prompts, "completions": ["5", "It is 9."], "columns": {}}
        request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            served = json.loads(response.read())["rewards"]
        local = load_score(rm_dir, 16)(prompts, ["5", "It is 9."], {})
        assert served == pytest.approx(local, rel=1e-5) and served[0] != served[1]
        bad = urllib.request.Request(url, b'{"completions": 3}', {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(bad, timeout=30)
        assert e.value.code == 400 and "completions must be a list" in e.value.read().decode()
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err[-2000:]
    assert "stopped after scoring 2 answers" in out


def test_ppo_scores_with_a_reward_server(tmp_path, tiny_model_dir, serve):
    script = Script()
    proc = run_cli(
        [
            *TINY,
            "algorithm=ppo",
            "dataset=arith_math",
            "algorithm.max_completion_length=8",
            "algorithm.reward_funcs=[]",
            f"algorithm.reward_server={serve(script)}",
            "train.max_steps=1",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = read_summary(tmp_path / "run")["eval_after"]
    assert after["reward/reward_server"] > 0 and after["score"] == pytest.approx(after["reward/reward_server"])
    assert script.requests


def test_the_reward_http_server_bounds_bodies_and_keeps_failure_details_in_its_log(caplog):
    import threading

    from rlhf_lab.serving.http_server import RewardHTTPServer

    def score(prompts, completions, columns):
        if completions == ["boom"]:
            raise RuntimeError("cannot read /secret/path/model.bin")
        return [len(c) for c in completions]

    server = RewardHTTPServer(("127.0.0.1", 0), score, "test", max_body=200)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    def post(body: bytes):
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    try:
        assert post(json.dumps({"completions": ["abc"]}).encode()) == (200, {"rewards": [3.0]})
        code, answer = post(json.dumps({"completions": ["x" * 500]}).encode())
        assert code == 413 and "the body must be 0 to 200 bytes, not 521" in answer["error"]
        with caplog.at_level("ERROR", logger="rlhf_lab"):
            code, answer = post(json.dumps({"completions": ["boom"]}).encode())
        assert code == 500 and answer == {"error": "scoring failed (RuntimeError); see the server's log"}
        assert "/secret/path" in caplog.text  # the details are the operator's
    finally:
        server.shutdown()
        server.server_close()
