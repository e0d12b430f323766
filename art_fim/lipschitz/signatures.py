"""The exact call a rule was derived for: parameter lists, and binding a node's call to them.

Every function, method and layer with a Lipschitz rule declares the parameters it takes, as
PyTorch names them (``"input, other, *, alpha=1"``), and what each one may be. A traced call is
bound to that list, so that ``torch.add(a, other=b)`` and ``torch.add(a, b)`` reach the rule as
the same arguments; a keyword the list does not name (``out=``, ``rounding_mode=``, an argument
of a newer PyTorch) fails to bind and the node is refused, rather than read as something else.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: ``(predicate, what the value must be)``: a check of one argument's value.
Check = tuple[Callable[[Any], bool], str]


def parse(spec: str) -> inspect.Signature:
    """``"input, other, /, *, alpha=1, **kwargs"`` as an :class:`inspect.Signature`.

    Defaults are Python literals; ``/`` makes the parameters before it positional-only, ``*``
    (or ``*name``) makes those after it keyword-only.
    """
    parameters: list[inspect.Parameter] = []
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item == "/":
            parameters = [p.replace(kind=inspect.Parameter.POSITIONAL_ONLY) for p in parameters]
        elif item == "*":
            kind = inspect.Parameter.KEYWORD_ONLY
        elif item.startswith("**"):
            parameters.append(inspect.Parameter(item[2:], inspect.Parameter.VAR_KEYWORD))
        elif item.startswith("*"):
            parameters.append(inspect.Parameter(item[1:], inspect.Parameter.VAR_POSITIONAL))
            kind = inspect.Parameter.KEYWORD_ONLY
        else:
            name, has_default, default = (part.strip() for part in item.partition("="))
            value = ast.literal_eval(default) if has_default else inspect.Parameter.empty
            parameters.append(inspect.Parameter(name, kind, default=value))
    return inspect.Signature(parameters)


@dataclass(frozen=True)
class Spec:
    """The call one rule was derived for.

    Attributes:
        signature: the parameters, as :func:`parse` reads them.
        inputs: parameters that may carry the network input (every other argument must not
            depend on it: an input-dependent stride or scale would be frozen at the example).
        shape_only: parameters of which only the shape is read (``view_as(other)``).
        checks: ``{parameter: (predicate, what it must be)}`` for values that change the
            constant or leave the rule's domain.
    """

    signature: inspect.Signature
    inputs: tuple[str, ...] = ("input",)
    shape_only: tuple[str, ...] = ()
    checks: Mapping[str, Check] = field(default_factory=dict)


def spec(
    text: str,
    inputs: tuple[str, ...] = ("input",),
    shape_only: tuple[str, ...] = (),
    **checks: Check,
) -> Spec:
    """A :class:`Spec` from a parameter list (see :func:`parse`) and checks by parameter."""
    return Spec(parse(text), inputs, shape_only, checks)


def bind(signature: inspect.Signature, args: tuple, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``{parameter: value}`` with defaults filled in.

    Raises:
        TypeError: the call does not fit the signature (an unknown keyword, too many values).
    """
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def finite_number(value: Any) -> bool:
    """A real, finite Python or NumPy number (``bool`` excluded)."""
    try:
        return not isinstance(value, bool) and float(value) == float(value) and abs(
            float(value)
        ) != float("inf")
    except (TypeError, ValueError):
        return False


def positive(value: Any) -> bool:
    """A finite number ``> 0``."""
    return finite_number(value) and float(value) > 0


def non_negative(value: Any) -> bool:
    """A finite number ``≥ 0``."""
    return finite_number(value) and float(value) >= 0


def equals(*allowed: Any) -> Check:
    """The value is one of ``allowed`` (compared with ``==``, types included for ``bool``)."""
    return (
        lambda v: any(v is a or (type(v) is type(a) and v == a) for a in allowed),
        " or ".join(map(repr, allowed)),
    )


FINITE: Check = (finite_number, "a finite number")
POSITIVE: Check = (positive, "a finite number > 0")
NON_NEGATIVE: Check = (non_negative, "a finite number ≥ 0")
NONE: Check = equals(None)
FALSE: Check = equals(False)
