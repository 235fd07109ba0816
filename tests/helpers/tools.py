"""Tools and environments for the tool-calling tests (imported by dotted path, as a user's module would be)."""

SEEN: list = []  # what record_answers was given, for the tests to read


def add(a: int, b: int) -> int:
    """Add two whole numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def explode(a: int, b: int) -> int:
    """Add two numbers, badly.

    Args:
        a: The first number.
        b: The second number.
    """
    raise ValueError("the adder broke")


def no_docstring(a: int) -> int:
    return a


def no_hint(a) -> int:
    """Return a.

    Args:
        a: A number.
    """
    return a


def undocumented_argument(a: int, b: int) -> int:
    """Add.

    Args:
        a: The first number.
    """
    return a + b


def record_answers(completions, **kwargs):
    """A reward that keeps the answers' texts and scores 1 for those that say 5."""
    SEEN.append(list(completions))
    return [float("5" in c) for c in completions]


class Counter:
    """An environment: the answer may add to a running count; get_reward scores the count against the solution."""

    def __init__(self, start: int = 0):
        self.start = start
        self.count = start
        self.target = None

    def reset(self, **row):
        self.count = self.start
        self.target = int(row["solution"])
        return None

    def increase(self, by: int) -> int:
        """Add to the count and return the new count.

        Args:
            by: How much to add.
        """
        self.count += by
        return self.count

    def get_reward(self) -> float:
        return float(self.count == self.target)


class NoReset:
    def step(self, a: int) -> int:
        """Do nothing.

        Args:
            a: A number.
        """
        return a
