"""Custom rewards used by the tests (imported by dotted path, as a user's module would be)."""


def shout(completions, **kwargs):
    """1 per exclamation mark."""
    return [float(c.count("!")) for c in completions]


def solution_is_odd_then_length_parity(completions, solution, **kwargs):
    """Varies with the answer only for odd solutions: groups of even-solution prompts all score 0."""
    return [float(len(c) % 2) if int(s) % 2 else 0.0 for c, s in zip(completions, solution)]


class Scaled:
    """A class reward with a setting (built through Hydra's _target_)."""

    def __init__(self, factor=1.0):
        self.factor = factor

    def __call__(self, completions, **kwargs):
        return [self.factor * len(c) for c in completions]


def scaled_length(completions, factor, **kwargs):
    return [factor * len(c) for c in completions]


def no_kwargs(completions):
    return [0.0 for _ in completions]


def no_completions(prompts, **kwargs):
    return [0.0 for _ in prompts]


def breaks_on_seven(completions, solution, **kwargs):
    return [1.0 / (int(s) - 7) for s in solution]


def wrong_length(completions, **kwargs):
    return [0.0]


def returns_text(completions, **kwargs):
    return ["high" for _ in completions]


def fails_on_rank_one(completions, **kwargs):
    """Works in the main process and raises in the second one (a failure in one worker of two)."""
    import os

    if os.environ.get("RANK") == "1":
        raise RuntimeError("this worker cannot score")
    return [0.0 for _ in completions]


def dies_on_rank_one(completions, **kwargs):
    """Kills its own process in the second worker: a crash that leaves no report (as a native abort would)."""
    import os
    import signal

    if os.environ.get("RANK") == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    return [0.0 for _ in completions]


def length_in_chars(completions, **kwargs):
    """The answer's length: varies between the tiny model's random answers, so every group carries signal."""
    return [float(len(c)) for c in completions]


class KeyedReward:
    """A reward holding a credential (as an API client would): writes a digest of the key it received to `record`
    when it scores, so that a test can check the real key arrived without the key itself being written anywhere."""

    def __init__(self, api_key, record):
        self.api_key, self.record = api_key, record

    def __call__(self, completions, **kwargs):
        import hashlib
        from pathlib import Path

        Path(self.record).write_text(hashlib.sha256(str(self.api_key).encode()).hexdigest())
        return [float(len(c)) for c in completions]


class CountedReward:
    """Counts how often it is built (a judge that opens a client, or costs money, should be built once)."""

    built = 0

    def __init__(self, scale: float = 1.0):
        type(self).built += 1
        self.scale = scale

    def __call__(self, completions, **kwargs):
        return [self.scale * len(c) for c in completions]


class BreaksWhenBuilt:
    def __init__(self):
        raise RuntimeError("no client for you")

    def __call__(self, completions, **kwargs):
        return [0.0 for _ in completions]
