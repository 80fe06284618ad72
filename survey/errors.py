"""Named errors for survey input. Each message names the file, the object and the reason."""

from __future__ import annotations


class SurveyError(ValueError):
    """Base class: something about survey input is wrong."""


class LocatedError(SurveyError):
    """An error at a place in the input: the file (or other source), the object if known, the reason."""

    def __init__(self, source: str, reason: str, object_id: str | None = None) -> None:
        self.source = source
        self.object_id = object_id
        self.reason = reason
        where = f"{source}" + (f" (object {object_id})" if object_id is not None else "")
        super().__init__(f"{where}: {reason}")


class UnreadableCutout(LocatedError):
    """A file or an object inside it cannot be read as a cutout."""


class CatalogError(SurveyError):
    """A catalog is missing a required column, has duplicate IDs or values out of range."""


class UnknownObject(KeyError):
    """An object ID is not in the catalog."""

    def __init__(self, object_id: str) -> None:
        self.object_id = object_id
        super().__init__(object_id)

    def __str__(self) -> str:
        return f"no object with id {self.object_id!r} in this survey"
