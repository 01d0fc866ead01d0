"""The package's exceptions: one clear error naming the file and the problem."""

from __future__ import annotations

from os import PathLike


class CellCuratorError(Exception):
    """Base class of every error the package raises on purpose.

    The CLI turns it into one line on stderr and exit status 2.
    """


class InputError(CellCuratorError):
    """Broken or unsupported input: which file, what is wrong, what was expected.

    Parameters
    ----------
    path
        The file or folder at fault (``None`` when the input is not a file).
    problem
        What is wrong, in the user's terms.
    expected
        What was expected instead, if that helps the user fix it.
    """

    def __init__(self, path: str | PathLike | None, problem: str, expected: str | None = None):
        self.path = None if path is None else str(path)
        self.problem = problem
        self.expected = expected
        where = f"{self.path}: " if self.path is not None else ""
        hint = f" (expected {expected})" if expected else ""
        super().__init__(f"{where}{problem}{hint}")


class ModelFileError(CellCuratorError):
    """A model folder that is missing, corrupt, or not safe to load."""


class TrainingCancelled(CellCuratorError):
    """Raised inside training when the user cancelled."""


class InputWarning(UserWarning):
    """Input the package repaired or accepted with a caveat (NaN pixels set to 0, a class with
    a single example...): the work goes on, the user is told which file and what happened."""
