"""The text side of a local chat planner: pydantic-ai messages rendered as chat-template messages
(tool results as one-line ``[E2] summary``s), a compact tool list for models not trained on tools,
and tool calls parsed back from generated text (``<tool_call>`` blocks or bare JSON objects)."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel
from pydantic_ai.messages import (ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart,
                                  UserPromptPart)
from pydantic_ai.models.function import AgentInfo

from agent.summaries import summarize

__all__ = ["render_tools", "to_chat", "parse_tool_calls", "SMALL_SYSTEM_PROMPT", "TOOL_CONVENTION", "MAX_TOOL_TEXT"]

MAX_TOOL_TEXT = 600  # characters of a tool result shown to the model when it has no summary
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


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
