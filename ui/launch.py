"""Launching the web app: on the loopback interface unless told otherwise (then only with a login), never shared,
no analytics or run history, system fonts, a private folder for gradio's uploads, requests from other web pages
refused (:mod:`ui.origin_guard`), SIGTERM handled like Ctrl+C.  :func:`serve` launches a built app;
:func:`serve_until_stopped` is what ``osler serve`` runs."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.private_files import private_data_dir

if TYPE_CHECKING:
    import gradio as gr

    from tools.settings import OslerSettings

__all__ = ["LOOPBACK", "SYSTEM_FONTS", "LoginRequired", "read_auth", "serve", "private_gradio_temp",
           "serve_until_stopped"]

log = logging.getLogger(__name__)

SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
CSS = """
#overlay img { object-fit: contain; }
#trace table, #findings table { font-size: 0.85em; }
"""


LOOPBACK = ("127.0.0.1", "localhost", "::1")


class LoginRequired(RuntimeError):
    """Serving on a network interface without a login was asked for and not allowed (settings.open_network)."""


def read_auth(path: str | Path) -> list[tuple[str, str]]:
    """The logins of an auth file: one 'user:password' per line, '#' comments and blank lines skipped.
    Raises ValueError naming the file on a missing file, a malformed line or no login at all."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"auth_file {p}: cannot read it ({exc.strerror or exc})") from exc
    logins = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"auth_file {p}, line {n}: expected 'user:password'")
        logins.append((user.strip(), password))
    if not logins:
        raise ValueError(f"auth_file {p}: no 'user:password' line")
    return logins


def serve(app: gr.Blocks, settings: OslerSettings, *, host: str | None = None, port: int | None = None,
          prevent_thread_lock: bool = False, quiet: bool = False) -> tuple[Any, str, str]:
    """Launch on the loopback interface (or ``host``): never shared, no analytics, system fonts.
    Returns gradio's (app, local_url, share_url).  Any other interface needs a login (``settings.auth_file``)
    unless ``settings.open_network`` says the network is closed and trusted: :class:`LoginRequired` otherwise.

    No run history (gradio keeps none in the browser, and /gradio_api/runs does not exist).  Requests from other
    web pages (another origin, ``Origin: null``), for other host names while on loopback (DNS rebinding) and file
    routes naming URLs are refused before gradio sees them (:class:`ui.origin_guard.OriginGuard`;
    ``settings.serve_origins`` adds a reverse proxy's public origin).

    Files: ``/gradio_api/file=`` serves only gradio's own upload/cache folder, whose paths carry a
    keyed hash no other client can guess; ``settings.data_dir`` (audit log, every session's
    answers and overlays) is blocked, and handlers hand out per-tab copies (see
    :meth:`ui.handlers.TabState.exports`), so a tab is served its own artifacts only."""
    import gradio as gr
    from starlette.middleware import Middleware

    from .origin_guard import OriginGuard, loopback_host

    host = host or settings.host
    auth = read_auth(settings.auth_file) if settings.auth_file is not None else None
    if host not in LOOPBACK and auth is None:
        if not settings.open_network:
            raise LoginRequired(
                f"refusing to serve patient images on {host} without a login: set auth_file (OSLER_AUTH_FILE, a file "
                f"of 'user:password' lines), or open_network=true (OSLER_OPEN_NETWORK) on a closed, trusted network")
        log.warning("serving on %s without a login (open_network): anyone who reaches it can upload and ask", host)
    private_data_dir(settings.data_dir)
    app.queue(default_concurrency_limit=1)
    guard = Middleware(OriginGuard, loopback_only=loopback_host(host), origins=settings.serve_origins)
    return app.launch(
        app_kwargs={"middleware": [guard]},  # other web pages, other host names, URL fetches: 403 (ui.origin_guard)
        server_name=host, server_port=port or settings.port, share=False, inbrowser=False,
        prevent_thread_lock=prevent_thread_lock, quiet=quiet, show_error=False,
        allowed_paths=[], blocked_paths=[str(Path(settings.data_dir).resolve()), str(settings.audit_path.resolve())],
        auth=auth, auth_message="Osler: log in to see patient images" if auth else None,
        max_file_size=int(settings.max_file_mb * 1024 * 1024),
        footer_links=["api", "settings"], ssr_mode=False, pwa=False, mcp_server=False, enable_monitoring=False,
        run_history=False,  # else every run (questions, answers, file links) is kept in the browser's storage
        # after the tab closes, shown at /gradio_api/runs, and one click saves them to a Hugging Face bucket
        theme=gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS), css=CSS,
    )


def private_gradio_temp() -> str | None:
    """Entry-point-only: gradio keeps uploads and the images it shows in GRADIO_TEMP_DIR, by default a shared
    ``/tmp/gradio`` made with the umask's mode (0755: any local user could read the patients' images).  Unless the
    user set GRADIO_TEMP_DIR, it becomes a new 0700 folder, removed when the app stops; returns that folder.
    gradio reads the variable when it is imported, so this runs before gradio is imported (else it does nothing)."""
    if os.environ.get("GRADIO_TEMP_DIR"):
        log.warning("GRADIO_TEMP_DIR is set (%s): uploads and shown images go there, not to a private temporary "
                    "folder; make sure other users cannot read it", os.environ["GRADIO_TEMP_DIR"])
        return None
    if "gradio" in sys.modules:  # its folder is chosen already: changing it now would split uploads from its cache
        log.warning("gradio was imported before osler serve could give it a private temporary folder; set "
                    "GRADIO_TEMP_DIR to a folder only you can read")
        return None
    path = tempfile.mkdtemp(prefix="osler-gradio-")  # 0700
    os.environ["GRADIO_TEMP_DIR"] = path
    return path


def serve_until_stopped(app: gr.Blocks, settings: OslerSettings, launch: Any = None) -> int:
    """Serve ``app`` until Ctrl+C or SIGTERM; ``launch``: the function that starts it (default :func:`serve`).
    Returns the exit status."""
    # SIGTERM (systemd, docker stop, kill) ends the app like Ctrl+C: gradio then deletes the uploads
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        try:
            _, url, _ = (launch or serve)(app, settings, prevent_thread_lock=True, quiet=True)
        except (LoginRequired, ValueError) as exc:  # no login for a network interface, a bad auth file
            print(f"osler serve: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # port taken, address not available
            print(f"osler serve: cannot listen on {settings.host}:{settings.port} ({exc}); try --port", file=sys.stderr)
            return 2
        print(f"Osler is running at {url} (bound to {settings.host}; Ctrl+C stops it)", flush=True)
        app.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
        signal.signal(signal.SIGTERM, previous)
    return 0


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
