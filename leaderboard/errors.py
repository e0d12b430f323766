"""Errors the command line reports as a one-line message, in a module that loads nothing heavy."""

from __future__ import annotations


class UnknownModelError(KeyError):
    """A model name that is not among a source's models (RobustBench's zoo, the project's zoo)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])
