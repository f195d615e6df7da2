"""torch.optim.AdamW driven by a Hugging Face-style LR schedule, on fp32 params like the real run.

Step s (0-based, s = 0..S-1) uses lr * factor(s): transformers' schedulers start at factor(0) and the
Trainer calls scheduler.step() after optimizer.step(), so with warm-up the very first step has lr 0.
  warm-up (s < warmup): s / max(1, warmup)
  constant:             1
  linear:               max(0, (total - s) / max(1, total - warmup))
  cosine:               max(0, 0.5 * (1 + cos(pi * (s - warmup) / max(1, total - warmup))))
Before each step, if max_grad_norm > 0, torch.nn.utils.clip_grad_norm_ rescales the gradient.

usage: /usr/bin/python3 adamw_ref.py IN.safetensors OUT.safetensors
"""
import math
import sys

sys.dont_write_bytecode = True

import torch

from common import RefError, as_float, meta_choice, meta_float, meta_int, require, run_cli

SCHEDULES = ('constant', 'linear', 'cosine')


def lr_factor(step, schedule, warmup, total):
    if step < warmup:
        return float(step) / float(max(1, warmup))
    if schedule == 'constant':
        return 1.0
    if schedule == 'linear':
        return max(0.0, float(total - step) / float(max(1, total - warmup)))
    progress = float(step - warmup) / float(max(1, total - warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def _options(metadata):
    options = dict(
        lr=meta_float(metadata, 'lr', low=0.0),
        beta1=meta_float(metadata, 'beta1', low=0.0, high=0.999999999),
        beta2=meta_float(metadata, 'beta2', low=0.0, high=0.999999999),
        eps=meta_float(metadata, 'eps', low=0.0),
        weight_decay=meta_float(metadata, 'weight_decay', low=0.0),
        warmup_steps=meta_int(metadata, 'warmup_steps', low=0),
        total_steps=meta_int(metadata, 'total_steps', low=1),
        schedule=meta_choice(metadata, 'schedule', SCHEDULES),
        max_grad_norm=meta_float(metadata, 'max_grad_norm', low=0.0),
    )
    if options['warmup_steps'] > options['total_steps']:
        raise RefError(f'metadata "warmup_steps" ({options["warmup_steps"]}) exceeds "total_steps" ({options["total_steps"]})')
    return options


def _inputs(tensors):
    param0 = as_float('param0', require(tensors, 'param0', rank=1), torch.float32)
    grads = as_float('grads', require(tensors, 'grads', rank=2), torch.float32)
    if grads.shape[1] != param0.shape[0]:
        raise RefError(f'input tensor "grads" must be [S, {param0.shape[0]}] to match param0, got {list(grads.shape)}')
    if grads.shape[0] == 0:
        raise RefError('input tensor "grads" has no steps (S = 0)')
    return param0, grads


def compute(tensors, metadata):
    param0, grads = _inputs(tensors)
    o = _options(metadata)
    param = torch.nn.Parameter(param0.clone())
    optimizer = torch.optim.AdamW([param], lr=o['lr'], betas=(o['beta1'], o['beta2']), eps=o['eps'],
                                  weight_decay=o['weight_decay'], foreach=False)
    params, lrs, norms = [], [], []
    for step in range(grads.shape[0]):
        lr = o['lr'] * lr_factor(step, o['schedule'], o['warmup_steps'], o['total_steps'])
        for group in optimizer.param_groups:
            group['lr'] = lr
        param.grad = grads[step].clone()
        if o['max_grad_norm'] > 0:
            norm = torch.nn.utils.clip_grad_norm_([param], o['max_grad_norm'])
        else:
            norm = torch.linalg.vector_norm(param.grad)
        optimizer.step()
        params.append(param.detach().clone())
        lrs.append(lr)
        norms.append(float(norm))
    return {
        'params': torch.stack(params),
        'lrs': torch.tensor(lrs, dtype=torch.float64),
        'grad_norms': torch.tensor(norms, dtype=torch.float32),
    }


def main(argv):
    return run_cli(argv, compute, 'adamw_ref.py')


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
