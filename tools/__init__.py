"""Typed tool contracts of Osler: schemas, errors, settings.  Imports only stdlib and pydantic."""

from .answer import Artifacts, AskResult, Finding, FinalAnswer, ReasoningStep, Timings, ToolCallRecord
from .classification import ClassificationResult, ClassifyRequest, ImageInfoRequest, ImageInfoResult
from .common import ArtifactRef, Box, ImageMeta, Point, Provenance
from .comparison import ComparisonResult, CompareRequest, CountChange, FindingChange, Registration
from .detection import ClassCount, CountResult, DetectRequest, Detection, DetectionResult
from .errors import (
    ArtifactNotFoundError,
    ConfigurationError,
    ExpertFailedError,
    ExpertUnavailableError,
    InvalidInputError,
    OslerError,
    PlannerError,
    WrongImageKindError,
)
from .kinds import IMAGE_KINDS, ImageKind
from .targets import TARGET_KINDS, TargetClass, TargetSpec
from .segmentation import MeasurementResult, MeasureRequest, Region, SegmentationResult, SegmentRequest
from .settings import ModelPaths, OslerSettings

__all__ = [name for name in dir() if not name.startswith("_")]
