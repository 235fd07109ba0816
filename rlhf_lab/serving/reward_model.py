"""`python -m rlhf_lab serve-reward model=RM_RUN`: a trained reward model behind the reward protocol, so that GRPO or
PPO on another machine scores with it (algorithm.reward_server=http://HOST:PORT/)."""

from __future__ import annotations

import logging
from pathlib import Path

from rlhf_lab.config.verbs import ServeRewardConfig
from rlhf_lab.errors import ModelError

log = logging.getLogger("rlhf_lab")


def reward_model_dir(path: str) -> Path:
    """The reward model's folder: an algorithm=rm run directory's model/, or the folder itself."""
    folder = Path(path).expanduser()
    if (folder / "model" / "config.json").is_file():
        return folder / "model"
    if (folder / "config.json").is_file():
        return folder
    raise ModelError(
        f"model={path}: no reward model there (neither {folder}/model/config.json nor {folder}/config.json); give "
        "the directory of an algorithm=rm run or a saved reward model folder"
    )


def as_chat(prompt) -> list[dict]:
    return prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]


def load_score(folder: Path, batch_size: int):
    """score(prompts, completions, columns) -> rewards: the reward model's score of each (prompt, answer), rendered
    with its chat template exactly as GRPO and PPO score with algorithm.reward_model in-process."""
    from rlhf_lab.algorithms.ppo.models import RewardScorer
    from rlhf_lab.config.model import ModelConfig
    from rlhf_lab.models.load import load_causal_lm, load_tokenizer
    from rlhf_lab.models.precision import resolve_bf16

    cfg = ModelConfig(name_or_path=str(folder))
    tokenizer = load_tokenizer(cfg)
    model = load_causal_lm(cfg, resolve_bf16("auto"), head="reward")
    model.config.pad_token_id = tokenizer.pad_token_id
    model.requires_grad_(False).eval()
    scorer = RewardScorer([], None, reward_model=model, reward_tokenizer=tokenizer, batch_size=batch_size)

    def score(prompts, completions, columns):
        return scorer.model_scores([as_chat(p) for p in prompts], completions).tolist()

    return score


def serve_reward(options: ServeRewardConfig) -> None:
    from rlhf_lab.serving.http_server import RewardHTTPServer

    folder = reward_model_dir(options.model)
    try:  # the port first: a port in use is one line before the model loads
        server = RewardHTTPServer((options.host, options.port), None, str(folder), options.max_request_mb * 2**20)
    except OSError as e:
        raise ModelError(f"cannot listen on {options.host}:{options.port} ({e}); pick another port=") from None
    server.score = load_score(folder, options.batch_size)
    host, port = server.server_address[:2]
    print(f"serving {folder} at http://{host}:{port}/ (use algorithm.reward_server=http://{host}:{port}/)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print(f"stopped after scoring {server.scored} answers", flush=True)
