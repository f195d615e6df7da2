"""HSCR's MLPO loss (§3.3) and its gradients by autograd, in float64, pair by pair.

r(y) = gamma * (log pi(y) - log pi_ref(y)). Per sample, over the ranked rejected answers l_1..l_J that exist:
  E = sum_j          -log sigmoid(r_w  - r_lj)      (explicit: the answer beats every rejected one)
  I = sum_{j<m}      -log sigmoid(r_lj - r_lm)      (implicit: a better-ranked rejected beats a worse one)
"mean" divides each level by its number of valid pairs (0 pairs -> 0). L = batch mean of lE*E + lI*I.

usage: /usr/bin/python3 mlpo_ref.py IN.safetensors OUT.safetensors
"""
import sys

sys.dont_write_bytecode = True

import torch
import torch.nn.functional as F

from common import RefError, as_flags, as_float, meta_choice, meta_float, require, require_shape, run_cli


def _inputs(tensors):
    chosen = as_float('policy_chosen', require(tensors, 'policy_chosen', rank=1), torch.float64)
    batch = chosen.shape[0]
    rejected = as_float('policy_rejected', require(tensors, 'policy_rejected', rank=2), torch.float64)
    ranks = rejected.shape[1]
    require_shape('policy_rejected', rejected, [batch, ranks])
    ref_chosen = as_float('ref_chosen', require(tensors, 'ref_chosen', rank=1), torch.float64)
    require_shape('ref_chosen', ref_chosen, [batch])
    ref_rejected = as_float('ref_rejected', require(tensors, 'ref_rejected', rank=2), torch.float64)
    require_shape('ref_rejected', ref_rejected, [batch, ranks])
    mask = as_flags('mask', require(tensors, 'mask', rank=2))
    require_shape('mask', mask, [batch, ranks])
    for row in range(batch):
        flags = mask[row].tolist()
        if False in flags and True in flags[flags.index(False):]:
            raise RefError(f'mask row {row} must list the existing rejected answers first (ranked), got {[int(f) for f in flags]}')
    return chosen, rejected, ref_chosen, ref_rejected, mask


def _options(metadata):
    return (meta_float(metadata, 'gamma', low=0.0), meta_float(metadata, 'lambda_explicit'),
            meta_float(metadata, 'lambda_implicit'), meta_choice(metadata, 'pair_weighting', ('sum', 'mean')))


def sample_terms(reward_chosen, rewards_rejected, valid, weighting):
    """(E, I, explicit margins, implicit margins) of one sample; margins are the valid pairs' reward gaps."""
    explicit = [reward_chosen - rewards_rejected[j] for j in range(len(valid)) if valid[j]]
    implicit = [rewards_rejected[j] - rewards_rejected[m]
                for j in range(len(valid)) for m in range(j + 1, len(valid)) if valid[j] and valid[m]]
    zero = reward_chosen * 0
    e_loss = sum((-F.logsigmoid(margin) for margin in explicit), zero)
    i_loss = sum((-F.logsigmoid(margin) for margin in implicit), zero)
    if weighting == 'mean':
        e_loss = e_loss / len(explicit) if explicit else zero
        i_loss = i_loss / len(implicit) if implicit else zero
    return e_loss, i_loss, explicit, implicit


def _share_positive(margins):
    return sum(1 for m in margins if m.item() > 0) / len(margins) if margins else 0.0


def compute(tensors, metadata):
    chosen, rejected, ref_chosen, ref_rejected, mask = _inputs(tensors)
    gamma, lambda_e, lambda_i, weighting = _options(metadata)
    chosen = chosen.clone().requires_grad_(True)
    rejected = rejected.clone().requires_grad_(True)
    batch = chosen.shape[0]
    if batch == 0:
        raise RefError('policy_chosen is empty: the batch needs at least one sample')
    e_terms, i_terms, all_explicit, all_implicit = [], [], [], []
    for row in range(batch):
        reward_chosen = gamma * (chosen[row] - ref_chosen[row])
        rewards_rejected = [gamma * (rejected[row, j] - ref_rejected[row, j]) for j in range(rejected.shape[1])]
        e_loss, i_loss, explicit, implicit = sample_terms(reward_chosen, rewards_rejected, mask[row].tolist(), weighting)
        e_terms.append(e_loss)
        i_terms.append(i_loss)
        all_explicit += explicit
        all_implicit += implicit
    loss_explicit = torch.stack(e_terms).mean()
    loss_implicit = torch.stack(i_terms).mean()
    loss = torch.stack([lambda_e * e + lambda_i * i for e, i in zip(e_terms, i_terms)]).mean()
    loss.backward()
    scalar = lambda value: torch.tensor(float(value), dtype=torch.float64)  # noqa: E731
    return {
        'loss': loss.detach(),
        'loss_explicit': loss_explicit.detach(),
        'loss_implicit': loss_implicit.detach(),
        'grad_policy_chosen': chosen.grad.detach().clone(),
        # No valid rejected answer anywhere leaves autograd without a path: the gradient is then zero.
        'grad_policy_rejected': torch.zeros_like(rejected) if rejected.grad is None else rejected.grad.detach().clone(),
        'reward_acc_explicit': scalar(_share_positive(all_explicit)),
        'reward_acc_implicit': scalar(_share_positive(all_implicit)),
    }


def main(argv):
    return run_cli(argv, compute, 'mlpo_ref.py')


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
