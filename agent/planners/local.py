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

from pydantic_ai.messages import (ModelMessage, ModelResponse, TextPart, ToolCallPart)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from tools.errors import ConfigurationError, PlannerError
from tools.settings import OslerSettings

from agent.planners.chat_format import parse_tool_calls, render_tools, to_chat

__all__ = ["build_local_model", "LocalChatPlanner", "load_local_llm", "parse_tool_calls", "render_tools"]

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 256
_CACHE: dict[tuple[str, str], "LocalLLM"] = {}
_CACHE_LOCK = threading.Lock()


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
