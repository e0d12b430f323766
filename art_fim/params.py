"""ART-style parameters of the metric classes: ``set_params`` validates all, or changes none."""

from __future__ import annotations

from typing import Any, ClassVar


class Configurable:
    """Mixin for classes whose public parameters are listed in ``metric_params``.

    Subclasses list the parameter names and implement ``_check_params``, which raises
    ``ValueError`` or ``TypeError`` on an invalid combination.
    """

    metric_params: ClassVar[list[str]] = []

    def _check_params(self) -> None:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """Return the parameters named in :attr:`metric_params`."""
        return {key: getattr(self, key) for key in self.metric_params}

    def set_params(self, **kwargs: Any) -> None:
        """Set parameters (names from :attr:`metric_params`) and validate them.

        Atomic: if any value is invalid, no parameter changes.
        """
        unknown = [key for key in kwargs if key not in self.metric_params]
        if unknown:
            raise ValueError(
                f"Unknown parameter {unknown[0]!r}; valid: {', '.join(self.metric_params)}"
            )
        previous = self.get_params()
        for key, value in kwargs.items():
            setattr(self, key, value)
        try:
            self._check_params()
        except (TypeError, ValueError):
            for key, value in previous.items():
                setattr(self, key, value)
            raise
