"""``osler bench concurrency [--sessions 1,2,4,8] [--asks K] [--modes inprocess,ray] [--json]``: many sessions at once.

N concurrent sessions (threads of one process, as the web app's tabs are), each asking K questions about real
images (BCCD smears, "How many white blood cells are in this smear?"; EndoTect frames, "How many polyps are in
this frame?"; every session its own images), against

* ``inprocess``: the default :class:`~experts.registry.ExpertPool` (models in this process, one lock per model),
* ``webapp``: the web app itself (``osler serve``'s gradio app on a free loopback port, in this process, the
  default pool), each session a gradio client of its own that uploads its image and asks over HTTP (the app
  runs at most 2 asks at once: ``concurrency_limit``),
* ``ray``: :class:`~experts.ray_serve.RayExpertPool` on a local Ray instance (one deployment per expert,
  ``@serve.batch``; replicas from ``--replicas``).

Per mode and N: throughput (answers/s over the wall time of the N sessions), p50/p95 latency of one answer,
the p95 ratio against N=1, peak memory (RSS of this process and every process it started: Ray's raylet, GCS and
replicas included, sampled every 0.1 s), failed answers; for Ray the largest batch a replica ran.  Each mode starts
with one untimed warm-up ask per question (models load, deployments start).  The load average is printed
before and after: the numbers depend on what else the machine runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable

from .bench_ask import POLYP_Q, SMEAR_Q
from .scoring import percentile

__all__ = ["workload", "run_mode", "main", "format_table"]


def workload(data_root: Path, n_smears: int, n_polyps: int) -> list[tuple[Path, str]]:
    """Smears and polyp frames interleaved (about one polyp frame per ``n_smears / n_polyps`` smears)."""
    names = (data_root / "bccd" / "split.txt").read_text().split()[:n_smears]
    smears = [(data_root / "bccd" / "images" / f"{n}.jpg", SMEAR_Q) for n in names]
    polyps = [(p, POLYP_Q) for p in sorted((data_root / "endotect_polyps" / "images").glob("*.jpg"))[:n_polyps]]
    out: list[tuple[Path, str]] = []
    step = max(1, len(smears) // max(1, len(polyps)))
    for i, item in enumerate(smears):
        out.append(item)
        if polyps and (i + 1) % step == 0:
            out.append(polyps.pop(0))
    return out + polyps


class _MemorySampler:
    """Peak RSS (MB) of this process plus its descendants, sampled in a thread."""

    def __init__(self, period_s: float = 0.1) -> None:
        import psutil

        self._me = psutil.Process()
        self._period = period_s
        self._stop = threading.Event()
        self.peak_mb = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        import psutil

        total = 0
        for p in [self._me, *self._me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._sample())
            self._stop.wait(self._period)

    def __enter__(self) -> _MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._sample())


def _one_session(assistant: Any, items: list[tuple[Path, str]]) -> list[tuple[float, bool]]:
    out = []
    for image, question in items:
        t0 = time.perf_counter()
        session = assistant.new_session()
        session.load("current", image)
        r = assistant.ask(session, question)
        out.append(((time.perf_counter() - t0) * 1000, r.status == "ok" and not r.abstained))
    return out


def _web_session(url: str, items: list[tuple[Path, str]]) -> list[tuple[float, bool]]:
    """One browser tab: a gradio client of its own uploads each image and asks about it over HTTP."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    out = []
    for image, question in items:
        t0 = time.perf_counter()
        client.predict(handle_file(str(image)), "", api_name="/load_current")
        chat = client.predict(question, False, api_name="/ask")[0]
        last = chat[-1]["content"] if chat else ""
        text = " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in
                        (last if isinstance(last, list) else [last]))
        out.append(((time.perf_counter() - t0) * 1000, "**Answer:**" in text))
    return out


def run_level(session: Callable[[list[tuple[Path, str]]], list[tuple[float, bool]]], work: list[tuple[Path, str]],
              n: int, asks: int, offset: int) -> dict[str, Any]:
    """N sessions at once (``session``: one session's asks), ``asks`` answers each, every session on its own
    images."""
    jobs = [[work[(offset + s * asks + k) % len(work)] for k in range(asks)] for s in range(n)]
    with _MemorySampler() as mem, ThreadPoolExecutor(max_workers=n) as ex:
        t0 = time.perf_counter()
        results = list(ex.map(session, jobs))
        wall = time.perf_counter() - t0
    lat = [ms for r in results for ms, _ in r]
    ok = sum(good for r in results for _, good in r)
    return {"sessions": n, "answers": len(lat), "ok": ok, "wall_s": wall, "throughput_per_s": len(lat) / wall,
            "latency_ms_p50": percentile(lat, 50), "latency_ms_p95": percentile(lat, 95),
            "peak_rss_mb": mem.peak_mb}


def run_mode(mode: str, settings: Any, work: list[tuple[Path, str]], levels: list[int], asks: int) -> dict[str, Any]:
    from agent.runner import Assistant
    from experts.registry import ExpertPool

    t0 = time.perf_counter()
    pool: Any
    if mode == "ray":
        from experts.ray_serve import RayExpertPool

        pool = RayExpertPool(settings)
    else:
        pool = ExpertPool(settings)
    app = None
    try:
        assistant = Assistant(settings, pool=pool)
        session: Callable[[list[tuple[Path, str]]], list[tuple[float, bool]]]
        if mode == "webapp":
            import socket

            from ui.app import build_app, serve

            with socket.socket() as sock:  # a free loopback port
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            app = build_app(assistant)
            url = serve(app, settings, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)[1]
            session = partial(_web_session, url)
        else:
            session = partial(_one_session, assistant)
        for question in dict.fromkeys(q for _, q in work):  # warm-up: one ask per question loads / deploys its experts
            image = next(i for i, q in work if q == question)
            session([(image, question)])
        startup_s = time.perf_counter() - t0
        rows, offset = [], 0
        for n in levels:
            rows.append(run_level(session, work, n, asks, offset))
            offset += n * asks
        base = rows[0]
        for r in rows:
            r["throughput_vs_1"] = r["throughput_per_s"] / base["throughput_per_s"]
            r["p95_ratio_vs_1"] = r["latency_ms_p95"] / base["latency_ms_p95"]
        out: dict[str, Any] = {"mode": mode, "startup_s": startup_s, "levels": rows}
        if mode == "ray":
            out["largest_batch"] = {name: st["largest_batch"] for name, st in pool.batch_stats().items()}
            out["deploy_ms"] = pool.deploy_ms
            out["replicas_per_expert"] = settings.serving.num_replicas
        return out
    finally:
        if app is not None:
            app.close()
        if mode == "ray":
            pool.shutdown()


def format_table(res: dict[str, Any]) -> str:
    head = (f"{'mode':10s} {'N':>2s} {'answers':>7s} {'ok':>3s} {'answers/s':>9s} {'x N=1':>6s} {'p50 ms':>7s} "
            f"{'p95 ms':>7s} {'p95/N=1':>7s} {'peak MB':>8s}")
    lines = [head, "-" * len(head)]
    for m in res["modes"]:
        for r in m["levels"]:
            lines.append(f"{m['mode']:10s} {r['sessions']:2d} {r['answers']:7d} {r['ok']:3d} {r['throughput_per_s']:9.2f} "
                         f"{r['throughput_vs_1']:6.2f} {r['latency_ms_p50']:7.0f} {r['latency_ms_p95']:7.0f} "
                         f"{r['p95_ratio_vs_1']:7.2f} {r['peak_rss_mb']:8.0f}")
    lines.append(f"load average before {res['loadavg_before']}, after {res['loadavg_after']} ({res['cpus']} CPUs)")
    for m in res["modes"]:
        lines.append(f"{m['mode']}: startup + warm-up {m['startup_s']:.1f} s"
                     + (f"; largest batch per expert {m['largest_batch']}" if "largest_batch" in m else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="osler bench concurrency", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", default="1,2,4,8", help="concurrent sessions per level (default 1,2,4,8)")
    ap.add_argument("--asks", type=int, default=4, help="answers per session per level (default 4)")
    ap.add_argument("--modes", default="inprocess,ray", help="inprocess, webapp, ray, comma-separated "
                    "(default inprocess,ray)")
    ap.add_argument("--smears", type=int, default=40, help="BCCD smears in the image pool (default 40)")
    ap.add_argument("--polyps", type=int, default=8, help="EndoTect polyp frames in the image pool (default 8)")
    ap.add_argument("--replicas", type=int, help="Ray: replicas per expert (default: serving.num_replicas)")
    ap.add_argument("--data-root", type=Path, help="default: settings.shared_data (../shared/data)")
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    args = ap.parse_args(argv)
    from tools.entrypoints import make_settings

    levels = [int(x) for x in args.sessions.split(",") if x.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not levels or any(n < 1 for n in levels) or any(m not in ("inprocess", "webapp", "ray") for m in modes):
        ap.error("--sessions takes positive integers, --modes inprocess, webapp and/or ray")
    kw: dict[str, Any] = {"data_dir": tempfile.mkdtemp(prefix="osler-bench-concurrency-")}
    if args.data_root:
        kw["shared_data"] = str(args.data_root)
    settings = make_settings(None, **kw)
    if args.replicas:
        settings = settings.model_copy(update={"serving": settings.serving.model_copy(
            update={"num_replicas": args.replicas})})
    work = workload(Path(settings.shared_data).resolve(), args.smears, args.polyps)
    res: dict[str, Any] = {"loadavg_before": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
                           "asks_per_session": args.asks, "torch_threads": settings.torch_threads,
                           "workload": f"{args.smears} BCCD smears ('{SMEAR_Q}') + {args.polyps} polyp frames "
                                       f"('{POLYP_Q}'), each session its own images", "modes": []}
    for mode in modes:
        res["modes"].append(run_mode(mode, settings, work, levels, args.asks))
    res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    if not args.json:
        print(format_table(res))
    print(json.dumps(res, indent=2 if args.json else None, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
