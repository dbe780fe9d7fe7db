"""A test double of an OpenAI-compatible chat server: a real HTTP server on 127.0.0.1.

It speaks the parts of the chat-completions protocol that Osler's planner uses (``GET /v1/models``,
``POST /v1/chat/completions``, non-streamed), records every request body and header it receives,
and answers with scripted turns shaped the way vLLM / llama.cpp / Ollama answer: tool calls whose
``arguments`` are JSON *strings* (which may be malformed), plain text, HTTP errors, slow answers.

    with ScriptedOpenAIServer([tool_call("image_info", {}), final_answer("...")]) as server:
        settings = OslerSettings(planner="openai", base_url=server.url, model=server.model, ...)

A script is a list of :class:`Turn` (served in order; when it runs out the last turn repeats) or a
callable ``(index, body) -> Turn`` for answers that depend on what the client sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = ["Turn", "ScriptedOpenAIServer", "tool_call", "tool_calls", "text", "final_answer", "http_error"]


@dataclass
class Turn:
    """One scripted answer of the server."""

    calls: list[tuple[str, str]] = field(default_factory=list)  # (tool name, raw arguments string)
    content: str | None = None
    status: int = 200
    delay_s: float = 0.0
    finish_reason: str | None = None


def tool_calls(*calls: tuple[str, dict[str, Any] | str], delay_s: float = 0.0) -> Turn:
    """Several tool calls in one assistant turn; a ``str`` argument is sent verbatim (may be invalid JSON)."""
    return Turn(calls=[(name, args if isinstance(args, str) else json.dumps(args)) for name, args in calls],
                delay_s=delay_s)


def tool_call(name: str, args: dict[str, Any] | str, *, delay_s: float = 0.0) -> Turn:
    return tool_calls((name, args), delay_s=delay_s)


def final_answer(answer: str, *, delay_s: float = 0.0, **fields: Any) -> Turn:
    """The planner's final answer, sent the way pydantic-ai asks for it: a call of its output tool."""
    return tool_call("final_result", {"answer": answer, **fields}, delay_s=delay_s)


def text(content: str, *, delay_s: float = 0.0) -> Turn:
    return Turn(content=content, delay_s=delay_s)


def http_error(status: int = 500, message: str = "internal error") -> Turn:
    return Turn(status=status, content=message)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping in a slow turn must not hold up stop()


Script = list[Turn] | Callable[[int, dict[str, Any]], Turn]


class ScriptedOpenAIServer:
    """Serve ``script`` on ``http://127.0.0.1:<free port>/v1`` from a background thread."""

    def __init__(self, script: Script, *, model: str = "scripted-llm", api_key: str | None = None) -> None:
        self.script = script
        self.model = model
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []  # chat-completions bodies, in order
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._call_ids = 0
        self._port: int | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._port is not None, "server not started"
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "ScriptedOpenAIServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                return

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                server._record_path(self)
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model",
                                                                 "created": 0, "owned_by": "scripted"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

            def do_POST(self) -> None:  # noqa: N802
                server._record_path(self)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._send(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
                    return
                with server._lock:
                    index = len(server.requests)
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                turn = server._turn(index, body)
                if turn.delay_s:
                    time.sleep(turn.delay_s)
                if turn.status != 200:
                    self._send(turn.status, {"error": {"message": turn.content or "error", "type": "server_error"}})
                    return
                self._send(200, server._completion(turn, body))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "ScriptedOpenAIServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- what was received ------------------------------------------------------------------
    def _record_path(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.paths.append(f"{handler.command} {handler.path}")

    def messages(self, index: int = -1) -> list[dict[str, Any]]:
        """The chat messages of one received request."""
        return self.requests[index]["messages"]

    def tool_names(self, index: int = 0) -> list[str]:
        """Names of the tools offered in one received request."""
        return [t["function"]["name"] for t in self.requests[index].get("tools", [])]

    def received_text(self) -> str:
        """Everything the server was sent, as one string (for 'this never left the machine' checks)."""
        return "\n".join(json.dumps(b) for b in self.requests) + "\n" + "\n".join(json.dumps(h) for h in self.headers)

    # ---- answers ---------------------------------------------------------------------------------
    def _turn(self, index: int, body: dict[str, Any]) -> Turn:
        if callable(self.script):
            return self.script(index, body)
        if not self.script:
            return http_error(500, "empty script")
        return self.script[min(index, len(self.script) - 1)]

    def _completion(self, turn: Turn, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": turn.content}
        if turn.calls:
            calls = []
            for name, args in turn.calls:
                with self._lock:
                    self._call_ids += 1
                    cid = f"call_{self._call_ids:04d}"
                calls.append({"id": cid, "type": "function", "function": {"name": name, "arguments": args}})
            message["tool_calls"] = calls
        prompt_tokens = len(json.dumps(body.get("messages", []))) // 4
        completion_tokens = max(1, len(json.dumps(message)) // 4)
        return {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", self.model), "system_fingerprint": "scripted",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": turn.finish_reason or ("tool_calls" if turn.calls else "stop")}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
