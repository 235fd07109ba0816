"""A calculator tool for word problems: arithmetic only, evaluated on the expression's syntax tree (no eval)."""

from __future__ import annotations

import ast
import operator

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_value(node.left), _value(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_value(node.operand))
    raise ValueError(f"only numbers and + - * / // % ( ) are allowed, not {ast.unparse(node)!r}")


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression and return its value.

    Args:
        expression: The arithmetic to do, for example "12 + 7" or "(3 + 4) * 2".
    """
    if len(expression) > 200:
        raise ValueError("the expression is too long (200 characters at most)")
    try:
        tree = ast.parse(expression.replace("x", "*").replace("×", "*"), mode="eval")
    except SyntaxError:
        raise ValueError(f"{expression!r} is not an arithmetic expression") from None
    value = _value(tree.body)
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


class CalculatorEnvironment:
    """The calculator as an environment (algorithm.environment): each problem's prompt ends with an example call, so
    that a small model that has never seen a tool call writes some and GRPO can reinforce the ones that help."""

    HINT = (
        "\nFirst call the calculate tool, like this:\n<tool_call>\n"
        '{"name": "calculate", "arguments": {"expression": "4 + 9"}}\n</tool_call>'
    )

    def reset(self, **row) -> str:
        return self.HINT

    def calculate(self, expression: str) -> str:
        """Evaluate an arithmetic expression and return its value.

        Args:
            expression: The arithmetic to do, for example "12 + 7" or "(3 + 4) * 2".
        """
        return calculate(expression)
