"""Old public names that still work, with a ``DeprecationWarning`` naming the new one.

The public API uses one word per idea (docs/api.md, "Public vocabulary"). When a keyword
or function is renamed to that word, callers written against the old name keep working
for a release: this module is the one place that says so, so every deprecation reads the
same and none is forgotten when the old names go.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["renamed_keywords", "warn_renamed"]

F = TypeVar("F", bound=Callable[..., Any])


def warn_renamed(old: str, new: str, *, where: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is the deprecated name of ``new`` in ``where``.

    ``stacklevel`` counts from this function: the default 3 points at the caller of the
    function that calls this one (the user's line).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_renamed("n", "n_clusters", where="cluster_latent")
    >>> str(caught[0].message)
    'cluster_latent: `n` is deprecated, use `n_clusters` instead'
    """
    warnings.warn(f"{where}: `{old}` is deprecated, use `{new}` instead",
                  DeprecationWarning, stacklevel=stacklevel)


def renamed_keywords(**renames: str) -> Callable[[F], F]:
    """Decorator: accept each old keyword ``old=new`` as the new one, with a warning.

    The function is written with the new names only; a call passing an old keyword gets
    a ``DeprecationWarning`` naming the new one and runs as if the new one was passed.
    Passing both raises ``TypeError``. Positional calls are unaffected.

    Examples
    --------
    >>> @renamed_keywords(n="n_clusters")
    ... def count(z, n_clusters=2):
    ...     return n_clusters
    >>> count([], n_clusters=3)
    3
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     count([], n=4)
    4
    """

    def decorate(func: F) -> F:
        where = func.__name__

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{where}() got both `{old}` (deprecated) and `{new}`; "
                                        f"pass only `{new}`")
                    warn_renamed(old, new, where=where)
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
