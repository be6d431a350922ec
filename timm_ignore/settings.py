"""Type checks for recipe values, shared by every reader of recipe YAML files."""
from typing import Any, Optional

__all__ = ['setting_type_error']


def setting_type_error(key: str, value: Any, default: Any) -> Optional[str]:
    """Why ``value`` cannot be the setting ``key`` whose default is ``default``, or None if it can.

    The value must have the default's type; an int is accepted for a float and a bool is never taken for a number.
    Settings whose default is None are not checked here (their consumer validates them).
    """
    if default is None:
        return None
    expected = type(default)
    ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    return None if ok else f'{key} must be a {expected.__name__} (default {default!r}), got {value!r}'
