"""Whisper's decoder in torch, on the weights of a CTranslate2 ``model.bin``: forced scoring of many
transcripts of one utterance (:mod:`voice.asr_grammar` scores the command grammar with it).

The weights (float16 or float32) are read with numpy from the same file faster-whisper loads, so no second
model is shipped or downloaded; CTranslate2 computes the encoder output, which both paths share.  The
sequences form a token trie decoded depth by depth: a shared beginning ("how many ...") is computed once,
and the prompt's and the audio's attention keys are computed once and never copied per sequence.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["DecoderScorer", "read_ct2_model"]

# CTranslate2 model.bin data types (ctranslate2/specs/model_spec.py)
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2_model(path: Path) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` (format version 6) as numpy arrays (views into one
    buffer).  Raises ValueError on another format or a data type this reader does not know (bfloat16,
    int8-quantised weights: convert the model with ``--quantization float16``)."""
    buf = Path(path).read_bytes()
    pos = 0

    def num(fmt: str) -> int:
        nonlocal pos
        (v,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v

    def text() -> str:
        nonlocal pos
        n = num("<H")
        s = buf[pos:pos + n - 1].decode()
        pos += n
        return s

    version = num("<I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 model format {version}, this reader knows 6")
    text()  # spec name
    num("<I")  # spec revision
    out: dict[str, np.ndarray] = {}
    for _ in range(num("<I")):
        name = text()
        dims = [num("<I") for _ in range(num("<B"))]
        dtype = _CT2_DTYPES.get(num("<B"))
        nbytes = num("<I")
        if dtype is None:
            raise ValueError(f"{path}: variable {name} has a data type this reader does not know")
        out[name] = np.frombuffer(buf, dtype, nbytes // np.dtype(dtype).itemsize, pos).reshape(dims)
        pos += nbytes
    for _ in range(num("<I")):
        alias, target = text(), text()
        out[alias] = out[target]
    return out


class DecoderScorer:
    """Whisper's decoder in torch, scoring token sequences against one utterance's encoder output."""

    def __init__(self, model_bin: Path) -> None:
        self.model_bin = Path(model_bin)
        self._w: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._w is not None:
                return
            import torch

            raw = read_ct2_model(self.model_bin)
            first = raw.get("decoder/layer_0/self_attention/linear_0/weight")
            if first is None or first.dtype not in (np.float16, np.float32):
                raise ValueError(f"{self.model_bin}: not a float16/float32 Whisper decoder")
            self._w = {k: torch.from_numpy(a.astype(np.float32)) for k, a in raw.items()
                       if k.startswith("decoder/") and a.dtype in (np.float16, np.float32) and a.ndim >= 1}
            self.heads = int(raw["decoder/num_heads"])
            self.layers = sum(1 for k in raw if k.startswith("decoder/layer_") and k.endswith("ffn/linear_0/weight"))

    # ---- the transformer pieces ---------------------------------------------------------------------
    def _lin(self, x, p):
        w = self._w
        return x @ w[p + "/weight"].T + w[p + "/bias"]

    def _ln(self, x, p):
        import torch

        return torch.nn.functional.layer_norm(x, (x.shape[-1],), self._w[p + "/gamma"], self._w[p + "/beta"], 1e-5)

    def _heads(self, x):
        n, t, c = x.shape
        return x.view(n, t, self.heads, c // self.heads).transpose(1, 2)

    def _cross(self, enc):
        import torch

        e = torch.from_numpy(np.ascontiguousarray(enc, dtype=np.float32))[None]
        out = []
        for i in range(self.layers):
            k, v = self._lin(e, f"decoder/layer_{i}/attention/linear_1").chunk(2, -1)
            out.append((self._heads(k), self._heads(v)))
        return out

    def _forward(self, tokens, start: int, past, cross, vocab):
        """Log-probabilities over ``vocab`` (token ids) after each of ``tokens`` [N, T] (positions start..),
        given per-layer past keys/values [N, H, P, dh] (or None); returns (logprobs [N, T, len(vocab)],
        per-layer new (k, v) [N, H, T, dh])."""
        import torch
        import torch.nn.functional as F

        w = self._w
        n, t = tokens.shape
        x = w["decoder/embeddings/weight"][tokens] + w["decoder/position_encodings/encodings"][start:start + t]
        causal = torch.full((t, t), float("-inf")).triu(1)
        new = []
        for i in range(self.layers):
            p = f"decoder/layer_{i}"
            q, k, v = self._lin(self._ln(x, p + "/self_attention/layer_norm"), p + "/self_attention/linear_0").chunk(3, -1)
            q, k, v = self._heads(q), self._heads(k), self._heads(v)
            new.append((k, v))
            if past is not None:
                k, v = torch.cat([past[i][0], k], 2), torch.cat([past[i][1], v], 2)
            mask = torch.cat([torch.zeros(t, k.shape[2] - t), causal], 1)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + self._lin(a.transpose(1, 2).reshape(n, t, -1), p + "/self_attention/linear_1")
            q = self._heads(self._lin(self._ln(x, p + "/attention/layer_norm"), p + "/attention/linear_0"))
            ck, cv = cross[i]
            a = F.scaled_dot_product_attention(q, ck.expand(n, -1, -1, -1), cv.expand(n, -1, -1, -1))
            x = x + self._lin(a.transpose(1, 2).reshape(n, t, -1), p + "/attention/linear_2")
            h = self._ln(x, p + "/ffn/layer_norm")
            x = x + self._lin(F.gelu(self._lin(h, p + "/ffn/linear_0")), p + "/ffn/linear_1")
        x = self._ln(x, "decoder/layer_norm")
        return torch.log_softmax(x @ w["decoder/embeddings/weight"][vocab].T, -1), new

    def _step(self, tokens, pos: int, prefix_kv, anc_kv, cross, vocab):
        """One token per trie node (``tokens`` [N]) at position ``pos``: self-attention over the shared
        prefix keys/values [1, H, P, dh] and each node's own ancestors' [N, H, A, dh]; cross-attention with
        the shared audio keys.  Shared keys are never copied per node: the N queries attend to them as one
        sequence of N queries.  Returns (logprobs [N, len(vocab)], per-layer (k, v) [N, H, 1, dh])."""
        import torch

        w = self._w
        n = tokens.shape[0]
        x = w["decoder/embeddings/weight"][tokens] + w["decoder/position_encodings/encodings"][pos]  # [N, C]
        c = x.shape[-1]
        dh = c // self.heads
        scale = dh ** -0.5
        new = []
        for i in range(self.layers):
            p = f"decoder/layer_{i}"
            q, k, v = self._lin(self._ln(x, p + "/self_attention/layer_norm"), p + "/self_attention/linear_0").chunk(3, -1)
            q, k, v = (t.view(n, self.heads, dh) for t in (q, k, v))
            new.append((k[:, :, None], v[:, :, None]))
            pk, pv = prefix_kv[i]  # [1, H, P, dh]
            s_pre = torch.einsum("nhd,hpd->nhp", q, pk[0]) * scale
            ks = [k[:, :, None]] if anc_kv is None else [anc_kv[i][0], k[:, :, None]]
            vs = [v[:, :, None]] if anc_kv is None else [anc_kv[i][1], v[:, :, None]]
            ka, va = torch.cat(ks, 2), torch.cat(vs, 2)  # [N, H, A+1, dh]
            s_anc = torch.einsum("nhd,nhad->nha", q, ka) * scale
            att = torch.softmax(torch.cat([s_pre, s_anc], -1), -1)
            npre = s_pre.shape[-1]
            a = torch.einsum("nhp,hpd->nhd", att[..., :npre], pv[0]) + torch.einsum("nha,nhad->nhd", att[..., npre:], va)
            x = x + self._lin(a.reshape(n, c), p + "/self_attention/linear_1")
            q = self._lin(self._ln(x, p + "/attention/layer_norm"), p + "/attention/linear_0").view(n, self.heads, dh)
            ck, cv = cross[i]  # [1, H, F, dh]
            att = torch.softmax(torch.einsum("nhd,hfd->nhf", q, ck[0]) * scale, -1)
            a = torch.einsum("nhf,hfd->nhd", att, cv[0])
            x = x + self._lin(a.reshape(n, c), p + "/attention/linear_2")
            h = self._ln(x, p + "/ffn/layer_norm")
            x = x + self._lin(torch.nn.functional.gelu(self._lin(h, p + "/ffn/linear_0")), p + "/ffn/linear_1")
        x = self._ln(x, "decoder/layer_norm")
        return torch.log_softmax(x @ w["decoder/embeddings/weight"][vocab].T, -1), new

    def score(self, encoder_output: np.ndarray, prefix: Sequence[int], seqs: Sequence[Sequence[int]]) -> np.ndarray:
        """Sum of log-probabilities of each token sequence (each should end with end-of-text) after
        ``prefix`` (start-of-transcript, language, task, no-timestamps, and any prompt before them),
        given the encoder output [frames, d_model] of one utterance.

        The distributions are over the tokens that occur in ``seqs`` (renormalised there), not over the
        whole vocabulary: every sequence is scored on the same footing and the output projection costs
        ~1 % of the full one.  Pass the free hypotheses among ``seqs`` so that what the audio says
        unconstrained is in that vocabulary too."""
        import torch

        self.load()
        vocab_ids = sorted({t for seq in seqs for t in seq})
        col = {t: j for j, t in enumerate(vocab_ids)}
        vocab = torch.tensor(vocab_ids)
        with torch.inference_mode():
            cross = self._cross(encoder_output)
            lp0, past0 = self._forward(torch.tensor([list(prefix)]), 0, None, cross, vocab)
            # token trie: node -> children by token; node ids per depth
            children: list[dict[int, int]] = [{}]
            parent = [-1]
            depth = [0]
            ends = []
            for seq in seqs:
                node = 0
                for tok in seq:
                    nxt = children[node].get(tok)
                    if nxt is None:
                        nxt = len(parent)
                        children[node][tok] = nxt
                        children.append({})
                        parent.append(node)
                        depth.append(depth[node] + 1)
                    node = nxt
                ends.append(node)
            cum = np.zeros(len(parent))
            token_of = np.zeros(len(parent), dtype=np.int64)
            for node, kids in enumerate(children):
                for tok, kid in kids.items():
                    token_of[kid] = tok
            root_lp = lp0[0, -1].numpy()
            for tok, kid in children[0].items():
                cum[kid] = root_lp[col[tok]]
            # per depth: the internal nodes (those with children), their (k, v) per layer and row index
            kv_at: dict[int, list] = {}
            row_of = np.full(len(parent), -1)
            by_depth: dict[int, list[int]] = {}
            for node in range(1, len(parent)):
                if children[node]:
                    by_depth.setdefault(depth[node], []).append(node)
            plen = len(prefix)
            for d in sorted(by_depth):
                nodes = by_depth[d]
                for r, node in enumerate(nodes):
                    row_of[node] = r
                # ancestors at depths 1..d-1 of every node, as row indices
                anc = np.zeros((len(nodes), d - 1), dtype=np.int64)
                for r, node in enumerate(nodes):
                    a = parent[node]
                    for dd in range(d - 1, 0, -1):
                        anc[r, dd - 1] = row_of[a]
                        a = parent[a]
                anc_kv = None
                if d > 1:
                    anc_kv = []
                    for i in range(self.layers):
                        ks = [kv_at[dd][i][0][torch.from_numpy(anc[:, dd - 1])] for dd in range(1, d)]
                        vs = [kv_at[dd][i][1][torch.from_numpy(anc[:, dd - 1])] for dd in range(1, d)]
                        anc_kv.append((torch.cat(ks, 2), torch.cat(vs, 2)))
                toks = torch.from_numpy(token_of[nodes])
                lp, new = self._step(toks, plen + d - 1, past0, anc_kv, cross, vocab)
                kv_at[d] = new
                for r, node in enumerate(nodes):
                    for tok, kid in children[node].items():
                        cum[kid] = cum[node] + float(lp[r, col[tok]])
            return cum[ends]
