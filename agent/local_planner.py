"""A planner that runs a chat model in this process with transformers (CPU or GPU, no server).

``settings.models.local_llm_dir`` is a transformers checkpoint folder, a ``.gguf`` file, or a folder
holding one ``.gguf``.  A GGUF file is de-quantised once into a transformers folder under
``data_dir/llm-cache/`` (later loads read that folder; transformers' own GGUF route needs
``accelerate``, which this build does not install).  Nothing is downloaded.

The model plugs into the same agent loop as every planner, as a pydantic-ai ``FunctionModel``:

* the conversation is rendered with the model's chat template; tool results are shown as
  ``[E2] <one-line summary>`` (``agent.summaries``), which small context windows can hold;
* a template that knows tools gets them as ``apply_chat_template(tools=[JSON schemas])``; the text is
  parsed for ``<tool_call>`` blocks or a bare JSON object with a ``name`` (a block that is not valid JSON
  is passed on as raw arguments, so the agent loop answers with the error and counts it; prose with no
  call becomes the final answer's text);
* a template that knows no tools means a model not trained to call them: *constrained decoding* picks
  the tool name and each required enum argument by greedy decoding restricted to the allowed values (a
  walk down the trie of their tokens) and writes free strings greedily, so every call is well-formed
  (what it chooses is still up to the model).

Images are not given to the local model (text-only); use a local OpenAI-compatible server for a VLM.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_ai.messages import (ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart,
                                  UserPromptPart)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from tools.errors import ConfigurationError, PlannerError
from tools.settings import OslerSettings

from .summaries import summarize

__all__ = ["build_local_model", "LocalChatPlanner", "load_local_llm", "parse_tool_calls", "render_tools"]

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 256
MAX_TOOL_TEXT = 600  # characters of a tool result shown to the model when it has no summary
_CACHE: dict[tuple[str, str], "LocalLLM"] = {}
_CACHE_LOCK = threading.Lock()
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


@dataclass
class LocalLLM:
    """A loaded tokenizer + causal LM, and the lock that serialises generation."""

    tokenizer: Any
    model: Any
    device: str
    name: str
    template_tools: bool
    lock: threading.Lock


def _gguf_of(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir() and not (path / "config.json").exists():
        found = sorted(path.glob("*.gguf"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ConfigurationError(f"{path} holds {len(found)} .gguf files; point OSLER_MODELS__LOCAL_LLM_DIR at one")
    return None


def _convert_gguf(gguf: Path, cache: Path) -> None:
    """De-quantise a llama-family GGUF into a transformers folder (config, tokenizer, safetensors)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_config(config)
    ckpt = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)
    missing, unexpected = model.load_state_dict(ckpt["tensors"], strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise ConfigurationError(f"{gguf.name}: GGUF tensors do not fit the {config.model_type} architecture "
                                 f"(missing {sorted(set(missing) - tied)[:5]}, unexpected {unexpected[:5]})")
    model.tie_weights()
    import shutil

    tmp = cache.with_name(cache.name + ".tmp")
    for stale in (tmp, cache):
        shutil.rmtree(stale, ignore_errors=True)  # a conversion that crashed half-way
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(cache)


def load_local_llm(settings: OslerSettings) -> LocalLLM:
    """Load (once per process) the model named by ``settings.models.local_llm_dir``."""
    from experts.weights import resolve_device

    path = settings.models.local_llm_dir
    if path is None:
        raise ConfigurationError("the local planner needs OSLER_MODELS__LOCAL_LLM_DIR: a transformers chat model "
                                 "folder or a .gguf file")
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ConfigurationError(f"OSLER_MODELS__LOCAL_LLM_DIR={path} does not exist")
    device = resolve_device(settings.device)
    key = (str(path), device)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        t0 = time.perf_counter()
        folder = path
        gguf = _gguf_of(path)
        if gguf is not None:
            stat = gguf.stat()
            folder = Path(settings.data_dir) / "llm-cache" / f"{gguf.stem}-{stat.st_size}-{stat.st_mtime_ns}"
            if not (folder / "config.json").exists():
                folder.parent.mkdir(parents=True, exist_ok=True)
                log.info("converting %s to a transformers folder in %s (once)", gguf.name, folder)
                _convert_gguf(gguf, folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigurationError(f"{path.name}: the tokenizer has no chat template; use an instruct/chat model")
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
        template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else json.dumps(
            tokenizer.chat_template)
        llm = LocalLLM(tokenizer, model, device, (gguf or path).name, "tools" in template, threading.Lock())
        log.info("local planner %s loaded on %s in %.1f s", llm.name, device, time.perf_counter() - t0)
        _CACHE[key] = llm
        return llm


# ---- prompt -----------------------------------------------------------------------------------
def _type_of(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "|".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list[{_type_of(schema.get('items', {}))}]"
    return {"string": "str", "number": "float", "integer": "int", "boolean": "bool", "null": "null",
            "object": "object"}.get(schema.get("type", ""), "any")


def render_tools(tools: list[Any]) -> str:
    """One line per tool: ``name(arg: type = default, ...): first sentence of its description``."""
    lines = []
    for t in tools:
        schema = t.parameters_json_schema or {}
        args = []
        for name, prop in (schema.get("properties") or {}).items():
            if "$ref" in prop or (prop.get("type") == "array" and "$ref" in prop.get("items", {})):
                continue  # nested objects (findings, steps) are optional for a small model
            default = f" = {json.dumps(prop['default'])}" if "default" in prop else ""
            args.append(f"{name}: {_type_of(prop)}{default}")
        desc = re.split(r"[.(:;]", (t.description or "").replace("\n", " "))[0].strip()
        lines.append(f"- {t.name}({', '.join(args)}): {desc}")
    return "\n".join(lines)


SMALL_SYSTEM_PROMPT = """You are Osler, a medical image assistant. Call image_info first, then the tool that answers
the question, then final_result. Use only numbers from tool results; cite evidence ids like [E2]."""
TOOL_CONVENTION = """To call a tool, reply with only a tool call, for example:
<tool_call>{"name": "count", "arguments": {"target": "blood_cells", "classes": ["WBC"]}}</tool_call>
When you know the answer, call final_result, for example:
<tool_call>{"name": "final_result", "arguments": {"answer": "There is 1 WBC [E2].", "value": 1, "unit": "cells"}}</tool_call>
Tools:
"""


def _tool_text(part: Any) -> str:
    content = part.content
    if getattr(part, "outcome", "success") != "success" or type(part).__name__ in ("RetryPromptPart",
                                                                                     "RetryFeedbackPart"):
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        return f"ERROR: {text[:MAX_TOOL_TEXT]}"
    if isinstance(content, BaseModel):
        eid = getattr(content, "evidence_id", None)
        line = summarize(content)
        return f"[{eid}] {line}" if eid else line
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    return text[:MAX_TOOL_TEXT]


def to_chat(messages: list[ModelMessage], info: AgentInfo, template_tools: bool,
            constrained: bool = False) -> list[dict[str, Any]]:
    """pydantic-ai messages -> chat-template messages."""
    system = info.instructions or ""
    if not template_tools:  # a model not trained on tools: short instructions, compact tool list
        convention = "Tools:\n" if constrained else TOOL_CONVENTION  # constrained decoding writes the format
        system = f"{SMALL_SYSTEM_PROMPT}\n\n{convention}{render_tools(list(info.function_tools) + list(info.output_tools))}"
    chat: list[dict[str, Any]] = [{"role": "system", "content": system.strip()}]
    for msg in messages:
        if isinstance(msg, ModelRequest):
            results = []
            for p in msg.parts:
                if isinstance(p, UserPromptPart):
                    text = p.content if isinstance(p.content, str) else " ".join(c for c in p.content if isinstance(c, str))
                    chat.append({"role": "user", "content": text})
                elif isinstance(p, ToolReturnPart) or type(p).__name__ in ("RetryPromptPart", "RetryFeedbackPart"):
                    if getattr(p, "tool_name", None) == "final_result" and getattr(p, "outcome", "") == "success":
                        continue
                    results.append((getattr(p, "tool_name", None) or "feedback", _tool_text(p)))
            for name, text in results:
                if template_tools:
                    chat.append({"role": "tool", "name": name, "content": text})
                else:
                    chat.append({"role": "user", "content": f"<tool_response>{name}: {text}</tool_response>"})
        elif isinstance(msg, ModelResponse):
            calls = [p for p in msg.parts if isinstance(p, ToolCallPart)]
            texts = " ".join(p.content for p in msg.parts if isinstance(p, TextPart)).strip()
            if template_tools and calls:
                chat.append({"role": "assistant", "content": texts, "tool_calls": [
                    {"type": "function", "function": {"name": c.tool_name, "arguments": c.args_as_dict()}}
                    for c in calls]})
            else:
                body = "".join(f"<tool_call>{json.dumps({'name': c.tool_name, 'arguments': c.args_as_dict()})}"
                               f"</tool_call>" for c in calls)
                chat.append({"role": "assistant", "content": (texts + body).strip()})
    return chat


# ---- parsing ----------------------------------------------------------------------------------
def _json_objects(text: str) -> list[str]:
    """Balanced ``{...}`` substrings of ``text`` (outermost only)."""
    out, depth, start, in_str, esc = [], 0, -1, False, False
    for i, ch in enumerate(text):
        if in_str:
            esc = (ch == "\\") and not esc
            if ch == '"' and not esc:
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            start = i if depth == 0 else start
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                out.append(text[start:i + 1])
    return out


def _call_from(blob: str) -> tuple[str, Any] | None:
    """(name, args) from one call's text; args is a dict, or the raw text when it is not valid JSON."""
    try:
        obj = json.loads(blob)
    except json.JSONDecodeError:
        m = re.search(r'"name"\s*:\s*"([^"]+)"', blob)
        return (m.group(1), blob) if m else None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return obj["name"], args
    return obj["name"], args if isinstance(args, dict) else {}


def parse_tool_calls(text: str) -> tuple[list[tuple[str, Any]], str]:
    """Tool calls written in ``text`` and the text left around them."""
    blocks = _TOOL_CALL.findall(text)
    if blocks:
        calls = [c for c in (_call_from(b) for b in blocks) if c is not None]
        if len(calls) < len(blocks):  # a block with no recognisable name: pass it on to be rejected
            calls += [("invalid_tool_call", b) for b in blocks if _call_from(b) is None]
        return calls, _TOOL_CALL.sub("", text).strip()
    calls = [c for c in (_call_from(b) for b in _json_objects(text)) if c is not None]
    rest = text
    for b in _json_objects(text):
        rest = rest.replace(b, "")
    return calls, re.sub(r"```(?:json)?|```|</?tool_(?:call|response)>", "", rest).strip()


# ---- the model --------------------------------------------------------------------------------
class LocalChatPlanner:
    """The FunctionModel function: render, generate, parse."""

    def __init__(self, llm: LocalLLM, settings: OslerSettings, *, constrained: bool | None = None) -> None:
        self.llm = llm
        self.settings = settings
        self.turns = 0
        # a model whose template knows no tools was not trained to call them: constrain its choices
        self.constrained = (not llm.template_tools) if constrained is None else constrained

    def generate(self, chat: list[dict[str, Any]], tools: list[Any]) -> str:
        import torch

        tok = self.llm.tokenizer
        kwargs: dict[str, Any] = {}
        if self.llm.template_tools:
            kwargs["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                                                 "parameters": t.parameters_json_schema}} for t in tools]
        enc = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True, **kwargs)
        enc = {k: v.to(self.llm.device) for k, v in enc.items()}
        with self.llm.lock, torch.inference_mode():
            out = self.llm.model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                          max_time=self.settings.planner_timeout_s,
                                          pad_token_id=tok.pad_token_id or tok.eos_token_id,
                                          stop_strings=["</tool_call>"], tokenizer=tok)
        return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def constrained_call(self, chat: list[dict[str, Any]], tools: list[Any]) -> tuple[str, dict[str, Any]]:
        """Pick the tool name and its required enum arguments by greedy decoding restricted to the allowed
        values, and write free strings greedily: every call is well-formed, whatever the model's size."""
        import torch

        tok, model, dev = self.llm.tokenizer, self.llm.model, self.llm.device

        def ids_of(text: str) -> list[int]:
            return tok(text, add_special_tokens=False).input_ids

        def forward(ids: list[int], cache: Any) -> tuple[Any, Any]:  # transformers 5 names the KV cache `cache`
            out = model(input_ids=torch.tensor([ids], device=dev), cache=cache, use_cache=True)
            return out.cache, out.logits[0]

        def feed(cache: Any, text: str) -> tuple[Any, Any]:
            cache, logits = forward(ids_of(text), cache)
            return cache, logits[-1]

        def choose(cache: Any, logits: Any, options: list[str]) -> tuple[int, Any, Any]:
            """Greedy decoding restricted to the token paths of ``options`` (a trie walk): usually one step.
            Returns the option and the cache/logits after all of its tokens."""
            seqs = [ids_of(o) for o in options]
            alive = list(range(len(options)))
            pos = 0
            while True:
                allowed = {seqs[i][pos] for i in alive if pos < len(seqs[i])}
                nxt = max(allowed, key=lambda t: float(logits[t]))
                alive = [i for i in alive if pos < len(seqs[i]) and seqs[i][pos] == nxt]
                pos += 1
                if len(alive) == 1:
                    rest = seqs[alive[0]][pos - 1:]
                    cache, step = forward(rest, cache)
                    return alive[0], cache, step[-1]
                cache, step = forward([nxt], cache)
                logits = step[-1]

        def until(cache: Any, logits: Any, stop: str, limit: int) -> tuple[str, Any, Any]:
            out_ids: list[int] = []
            for _ in range(limit):
                nxt = int(logits.argmax())
                if nxt == tok.eos_token_id:
                    break
                out_ids.append(nxt)
                if stop in tok.decode(out_ids):
                    break
                cache, step = forward([nxt], cache)
                logits = step[-1]
            return tok.decode(out_ids).split(stop)[0], cache, logits

        prompt = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        with self.llm.lock, torch.inference_mode():
            cache, logits = feed(None, prompt + '<tool_call>{"name": "')
            k, cache, logits = choose(cache, logits, [f'{t.name}"' for t in tools])
            tool = tools[k]
            cache, logits = feed(cache, ', "arguments": {')
            schema = tool.parameters_json_schema or {}
            args: dict[str, Any] = {}
            for pname, prop in (schema.get("properties") or {}).items():
                if pname not in schema.get("required", []) and not (tool.name == "final_result" and pname == "value"):
                    continue
                sep = ", " if args else ""
                enum = prop.get("enum")
                if enum:
                    cache, logits = feed(cache, f'{sep}"{pname}": "')
                    k, cache, logits = choose(cache, logits, [f'{v}"' for v in enum])
                    args[pname] = enum[k]
                elif pname == "value":
                    cache, logits = feed(cache, f'{sep}"value": ')
                    raw, cache, logits = until(cache, logits, "}", 6)
                    m = re.match(r"\s*(-?\d+(?:\.\d+)?)", raw)
                    args[pname] = float(m.group(1)) if m else None
                else:
                    cache, logits = feed(cache, f'{sep}"{pname}": "')
                    args[pname], cache, logits = until(cache, logits, '"', 80)
                    cache, logits = feed(cache, '"')
        return tool.name, args

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        tools = list(info.function_tools) + list(info.output_tools)
        chat = to_chat(messages, info, self.llm.template_tools, self.constrained)
        output = info.output_tools[0].name if info.output_tools else "final_result"
        t0 = time.perf_counter()
        self.turns += 1
        cid = f"t{self.turns}-0"
        try:
            if self.constrained:
                name, args = self.constrained_call(chat, tools)
                log.debug("local planner turn %d (constrained): %.1f s: %s %s", self.turns, time.perf_counter() - t0,
                          name, args)
                return ModelResponse(parts=[ToolCallPart(name, args, tool_call_id=cid)])
            text = self.generate(chat, tools)
        except RuntimeError as exc:  # out of memory, device errors
            raise PlannerError(f"the local planner model failed to generate ({exc})") from exc
        log.debug("local planner turn %d: %.1f s: %r", self.turns, time.perf_counter() - t0, text[:200])
        calls, rest = parse_tool_calls(text)
        if not calls:
            if info.output_tools and rest:  # plain prose: it is the answer (the grounding guard checks it)
                return ModelResponse(parts=[ToolCallPart(output, {"answer": rest}, tool_call_id=cid)])
            return ModelResponse(parts=[TextPart(rest or "(no output)")])
        return ModelResponse(parts=[
            ToolCallPart(name, args if isinstance(args, dict) else str(args), tool_call_id=f"t{self.turns}-{k}")
            for k, (name, args) in enumerate(calls)])


def build_local_model(settings: OslerSettings, *, constrained: bool | None = None) -> FunctionModel:
    """The local transformers planner as a pydantic-ai model (loads the model on first use).
    ``constrained`` None: constrained decoding when the chat template knows no tools."""
    llm = load_local_llm(settings)
    return FunctionModel(LocalChatPlanner(llm, settings, constrained=constrained), model_name=f"local:{llm.name}")
