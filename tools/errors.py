"""The one exception tree of Osler.

    OslerError
    ├── ConfigurationError      a setting is missing or wrong (names the setting to fill)
    ├── InvalidInputError       an image, audio file, question or tool argument cannot be used
    │   └── WrongImageKindError a tool was asked to run on a kind of image it is not valid for
    ├── ExpertUnavailableError  an expert backend cannot run here (names what to install or configure)
    ├── ExpertFailedError       an expert backend ran and failed
    ├── ArtifactNotFoundError   an artifact id (mask, overlay) is unknown to the session
    ├── PlannerError            the planner (built-in or a server) failed or is unreachable
    └── ToolCancelledError      a tool call ran past the planner's time limit and was cancelled

Errors are raised, never returned as strings.  The tool boundary (``agent.boundary.toolset``) maps
them to a failed tool call the planner can read, so a failing tool never ends a session.
Every message says what to do next.
"""

from __future__ import annotations

__all__ = [
    "OslerError",
    "ConfigurationError",
    "InvalidInputError",
    "WrongImageKindError",
    "ExpertUnavailableError",
    "ExpertFailedError",
    "ArtifactNotFoundError",
    "PlannerError",
    "ToolCancelledError",
]


class OslerError(Exception):
    """Base class of every error Osler raises on purpose."""


class ConfigurationError(OslerError):
    """A setting is missing or wrong."""


class InvalidInputError(OslerError):
    """An input (image, audio, question, tool argument) cannot be used."""


class WrongImageKindError(InvalidInputError):
    """A tool was asked to run on a kind of image it does not accept."""

    def __init__(self, message: str, *, kind: str, accepted: tuple[str, ...]) -> None:
        super().__init__(message)
        self.kind = kind
        self.accepted = accepted


class ExpertUnavailableError(OslerError):
    """An expert backend cannot run here: a package or a weights file is missing."""


class ExpertFailedError(OslerError):
    """An expert backend ran and failed."""


class ArtifactNotFoundError(OslerError):
    """An artifact id is unknown to the session."""


class PlannerError(OslerError):
    """The planner failed or its server cannot be reached."""


class ToolCancelledError(OslerError):
    """A tool call was cancelled (the planner's time limit ran out); its result, if any, is discarded."""
