"""HSCR's token-level contrastive scoring (§3.1), computed position by position with plain loops.

Per row b and answer position t (target = the teacher-forced token whose logits sit at t):
  shift[t]       = log_softmax(full)[target] - log_softmax(drop)[target]     (how much the image props it up)
  positions      = eligible t sorted by shift descending, ties by lower t; first n; -1 padded
  contrastive[v] = (1 + beta) * full[v] - beta * drop[v]
  plausible v    : p_drop[v] >= alpha * max p_drop, and v != target
  candidates     = plausible v sorted by contrastive ascending, ties by lower v; first c; -1 padded
Maths in float64 from the given logits; outputs rounded to fp32 once. A target < 0 means "no token
here": that position must not be eligible, and its shift / target_contrastive are 0.

usage: /usr/bin/python3 contrastive_ref.py IN.safetensors OUT.safetensors
"""
import sys

sys.dont_write_bytecode = True

import torch

from common import RefError, as_flags, as_float, as_ints, meta_float, meta_int, require, require_shape, run_cli


def _inputs(tensors):
    full = as_float('logits_full', require(tensors, 'logits_full', rank=3), torch.float64)
    batch, length, vocab = full.shape
    if vocab == 0:
        raise RefError('input tensor "logits_full" has an empty vocabulary axis')
    drop = as_float('logits_drop', require(tensors, 'logits_drop', rank=3), torch.float64)
    require_shape('logits_drop', drop, [batch, length, vocab])
    targets = as_ints('targets', require(tensors, 'targets', rank=2))
    require_shape('targets', targets, [batch, length])
    eligible = as_flags('eligible', require(tensors, 'eligible', rank=2))
    require_shape('eligible', eligible, [batch, length])
    for b in range(batch):
        for t in range(length):
            target = int(targets[b, t])
            if target >= vocab:
                raise RefError(f'targets[{b}, {t}] = {target} is outside the vocabulary [0, {vocab})')
            if target < 0 and bool(eligible[b, t]):
                raise RefError(f'eligible[{b}, {t}] is set but targets[{b}, {t}] = {target} names no token')
    return full, drop, targets, eligible


def _options(metadata):
    return (meta_float(metadata, 'beta'), meta_int(metadata, 'n', low=1),
            meta_float(metadata, 'alpha', low=0.0, high=1.0), meta_int(metadata, 'c', low=1))


def sensitive_positions(shifts, eligible, n):
    order = sorted((t for t in range(len(shifts)) if eligible[t]), key=lambda t: (-shifts[t], t))
    return order[:n]


def replacement_candidates(full, drop, target, beta, alpha, c):
    """[(token, contrastive score)] for one position."""
    p_drop = torch.softmax(drop, dim=-1).tolist()
    threshold = alpha * max(p_drop)
    full_list, drop_list = full.tolist(), drop.tolist()
    scored = [(token, (1 + beta) * full_list[token] - beta * drop_list[token])
              for token in range(len(p_drop)) if p_drop[token] >= threshold and token != target]
    scored.sort(key=lambda pair: (pair[1], pair[0]))
    return scored[:c]


def compute(tensors, metadata):
    full, drop, targets, eligible = _inputs(tensors)
    beta, n, alpha, c = _options(metadata)
    batch, length, _ = full.shape
    shift = torch.zeros(batch, length, dtype=torch.float64)
    target_contrastive = torch.zeros(batch, length, dtype=torch.float64)
    positions = torch.full((batch, n), -1, dtype=torch.int64)
    candidates = torch.full((batch, n, c), -1, dtype=torch.int64)
    scores = torch.zeros(batch, n, c, dtype=torch.float64)
    for b in range(batch):
        for t in range(length):
            target = int(targets[b, t])
            if target < 0:
                continue
            shift[b, t] = torch.log_softmax(full[b, t], -1)[target] - torch.log_softmax(drop[b, t], -1)[target]
            target_contrastive[b, t] = (1 + beta) * full[b, t, target] - beta * drop[b, t, target]
        chosen = sensitive_positions(shift[b].tolist(), eligible[b].tolist(), n)
        for slot, t in enumerate(chosen):
            positions[b, slot] = t
            for rank, (token, score) in enumerate(replacement_candidates(full[b, t], drop[b, t], int(targets[b, t]), beta, alpha, c)):
                candidates[b, slot, rank] = token
                scores[b, slot, rank] = score
    return {
        'shift': shift.float(),
        'positions': positions,
        'candidates': candidates,
        'candidate_scores': scores.float(),
        'target_contrastive': target_contrastive.float(),
    }


def main(argv):
    return run_cli(argv, compute, 'contrastive_ref.py')


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
