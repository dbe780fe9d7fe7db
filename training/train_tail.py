"""Train the rest-of-utterance net (:mod:`voice.tail`): CTC over the live grammar's words on Whisper encoder frames.

    python -m training.train_spotter gen --recipe lookalike --out runs/spotter3 --workers 2   # the clips (once)
    python -m training.train_tail fit --data runs/spotter3 --save runs/tail/t0.pt [--seed 0 --epochs 24]
    python -m training.train_tail merge runs/tail/t0.pt runs/tail/t1.pt --data runs/spotter3 --save experts/weights/voice_tail.pt

Data: the command spotter's training clips (``training.train_spotter``, recipe ``lookalike``): espeak-ng voices
that no benchmark uses, in clean speech and five kinds of noise at 0-20 dB; every live command meaning in a
random phrasing per voice, theatre talk, and non-commands that open like a command ("how many platelets should
we give").  The target of a clip is the words it said (:func:`voice.tail.targets`: grammar words kept, a run of
other words one ``<unk>``).  The voices of ``val`` (other families) choose the epoch by token error rate; the
benchmark's voices and sentences are never used.

Fit: CTC loss, AdamW with a one-cycle schedule, the spotter's time shift; no frame masking (it can hide a word
its target still names).  Weights stored in float16.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from training.train_spotter import _batch, _load, merge_members, save_merged


def _edits(a: list[int], b: list[int]) -> int:
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]


def _greedy(lp: np.ndarray) -> list[int]:
    out, prev = [], 0
    for k in lp.argmax(1):
        if k != prev and k != 0:
            out.append(int(k))
        prev = k
    return out


def evaluate(net: Any, feats: list[np.ndarray], ys: list[list[int]]) -> dict[str, Any]:
    """Token error rate of greedy decoding, and the share of clips decoded exactly."""
    import torch

    net.eval()
    errs = total = exact = 0
    with torch.no_grad():
        for a in range(0, len(feats), 64):
            idx = list(range(a, min(len(feats), a + 64)))
            x, lens = _batch(feats, idx, None)
            lp = net(x, lens).numpy()
            lo = net.out_lengths(lens).numpy()
            for k, i in enumerate(idx):
                hyp = _greedy(lp[k, : lo[k]])
                e = _edits(hyp, ys[i])
                errs += e
                total += len(ys[i])
                exact += e == 0
    return dict(ter=round(errs / max(1, total), 4), exact=round(exact / len(feats), 4))


def cmd_fit(data: Path, save: Path | None, epochs: int, seed: int, hidden: int) -> dict[str, Any]:
    import torch

    from voice.tail import TailNet, targets, vocabulary

    torch.manual_seed(seed)
    vocab = vocabulary()
    ftr, mtr = _load(data, "train")
    fva, mva = _load(data, "val")
    ytr = [targets(m["said"], vocab) for m in mtr]
    yva = [targets(m["said"], vocab) for m in mva]
    config = dict(d_in=int(ftr[0].shape[1]), width=192, hidden=hidden, n_out=len(vocab), dropout=0.2)
    net = TailNet(**config)
    bs = 32
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.02)
    steps = epochs * math.ceil(len(ftr) / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    rng = np.random.default_rng(seed)
    best, best_state, history = None, None, []
    t0 = time.time()
    for ep in range(epochs):
        net.train()
        order = rng.permutation(len(ftr))
        total = 0.0
        for a in range(0, len(order), bs):
            idx = order[a:a + bs].tolist()
            x, lens = _batch(ftr, idx, rng, shift=4, mask=False)
            lp = net(x, lens)  # [B, T', V]
            tg = [torch.tensor(ytr[i]) for i in idx]
            loss = ctc(lp.transpose(0, 1), torch.cat(tg), net.out_lengths(lens).clamp(max=lp.shape[1]),
                       torch.tensor([len(t) for t in tg]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        ev = evaluate(net, fva, yva)
        history.append(dict(epoch=ep + 1, loss=round(total / len(ftr), 4), **ev))
        print(f"epoch {ep + 1}: loss {total / len(ftr):.4f} val TER {ev['ter']:.4f} exact {ev['exact']:.4f} "
              f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        if best is None or ev["ter"] < best:
            best, best_state = ev["ter"], {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    ev = evaluate(net, fva, yva)
    per_cond = {}
    for cond in sorted({m["condition"] for m in mva}):
        sel = [i for i, m in enumerate(mva) if m["condition"] == cond]
        per_cond[cond] = dict(n=len(sel), **evaluate(net, [fva[i] for i in sel], [yva[i] for i in sel]))
    report = dict(vocab=len(vocab), train_clips=len(ftr), val_clips=len(fva), val=ev, val_per_condition=per_cond,
                  epochs=epochs, best_epoch=int(np.argmin([h["ter"] for h in history]) + 1),
                  fit_s=round(time.time() - t0, 1), history=history)
    print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=1))
    if save:
        ck = dict(state_dict={k: v.half() for k, v in net.state_dict().items()}, vocab=list(vocab), config=config,
                  meta=dict(data=str(data), report={k: v for k, v in report.items() if k != "history"}, seed=seed,
                            features="whisper tiny.en encoder, CTranslate2 int8", trained=time.strftime("%Y-%m-%d")))
        save.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ck, save)
        print(f"saved {save} ({save.stat().st_size / 1e6:.2f} MB) sha256 "
              f"{hashlib.sha256(save.read_bytes()).hexdigest()}", file=sys.stderr)
        (save.parent / f"{save.stem}_report.json").write_text(json.dumps(report, indent=1))
    return report


def cmd_merge(data: Path, paths: list[Path], save: Path) -> dict[str, Any]:
    """Several fitted nets in one file (their probabilities averaged per frame), with the pair's val numbers."""
    import torch

    from voice.tail import TailChecker, targets

    merged, tmp = merge_members(paths, "vocab", save)
    checker = TailChecker(tmp)
    fva, mva = _load(data, "val")
    errs = total = exact = 0
    for f, m in zip(fva, mva):
        y = targets(m["said"], checker.vocab or None)
        hyp = _greedy(checker.log_probs(f.astype(np.float32), len(f) * 320))
        e = _edits(hyp, y)
        errs, total, exact = errs + e, total + len(y), exact + (e == 0)
    report = dict(members=len(paths), val=dict(ter=round(errs / total, 4), exact=round(exact / len(fva), 4)))
    return save_merged(merged, report, save, tmp)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", choices=["fit", "merge"])
    ap.add_argument("members", nargs="*", type=Path, help="merge: the fitted checkpoints")
    ap.add_argument("--data", type=Path, default=Path("runs/spotter3"))
    ap.add_argument("--save", type=Path)
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.cmd == "merge":
        cmd_merge(a.data, a.members, a.save)
    else:
        cmd_fit(a.data, a.save, a.epochs, a.seed, a.hidden)
    return 0


if __name__ == "__main__":
    sys.exit(main())
