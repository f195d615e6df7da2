"""The PyTorch peers of bench/mlpo-step.ts: one MLPO training step of a LoRA-adapted LLaVA in plain eager
PyTorch (Debian's python3-torch), on the same safetensors weights, adapter, data and threads as hscr.

  peer a (naive, as TRL-style DPO trainers do): every row is its own full sequence (image re-encoded per row,
          image + prompt + answer through the decoder), logits and log_softmax over every position, and the
          frozen reference re-run (adapters off, no grad) on the same rows every step.
  peer b (shared prefix, a competent hand-written implementation): reference log-probs computed once and
          cached; the vision tower once per sample (it has no trainable parameter: no grad); the image +
          prompt prefix through the decoder once per sample, all samples in one padded call; then every
          answer of the sample (chosen + rejected) in one batched call attending to its prefix's cached
          keys/values, which keep their autograd graph (LoRA acts on the prefix, so gradients flow through it);
          log-probs only at answer positions (target logit − logsumexp).

A step is forward + backward + clip_grad_norm_(1.0) + AdamW, as hscr's trainer does. The bench drives this
script over stdin, one command a line, and reads one JSON line back per command:
  check  → loss of the first step with LoRA dropout inactive (eval mode), gradients dropped, no update
  step   → one timed training step (train mode, LoRA dropout as configured): {"seconds", "loss"}
  rss    → {"vmhwm_kib", "vmrss_kib"} of this process
usage: /usr/bin/python3 bench/mlpo_peers.py --peer a|b --model DIR --adapter FILE --data FILE.json --pixels FILE
       --threads N --dropout P [--lr 1e-4]
"""
import argparse
import json
import math
import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'test', 'reference'))
if not os.path.exists(os.path.join(sys.path[0], 'llava_ref.py')):  # run from dist/bench
    sys.path.insert(0, os.path.join(HERE, '..', '..', 'test', 'reference'))

import torch
import torch.nn.functional as F

import llava_ref
import st

TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')
PEFT_PREFIX = 'base_model.model.language_model.model.'


class LlavaLora:
    def __init__(self, model_dir, adapter_file, alpha, dropout):
        self.m = llava_ref.load_model(model_dir)
        self.spec = self.m.text
        tensors, _ = st.read(adapter_file)
        self.lora = {}
        for key, value in tensors.items():
            if not key.startswith(PEFT_PREFIX):
                raise SystemExit(f'unexpected adapter key {key}')
            stem, part = key[len(PEFT_PREFIX):].rsplit('.lora_', 1)
            self.lora.setdefault(stem, {})[part[0]] = value.float().clone().requires_grad_(True)
        r = next(iter(self.lora.values()))['A'].shape[0]
        self.scale = alpha / r
        self.dropout = dropout
        self.lora_on = True
        self.training = True
        self.embed = self.m.tw['embed_tokens.weight']
        inv = torch.arange(0, self.spec.head_dim, 2, dtype=torch.float32) / self.spec.head_dim
        self.inv_freq = 1.0 / torch.pow(torch.tensor(self.spec.rope_theta, dtype=torch.float32), inv)

    def parameters(self):
        return [t for ab in self.lora.values() for t in (ab['A'], ab['B'])]

    def linear(self, x, stem):
        w = self.m.tw
        y = F.linear(x, w[stem + '.weight'], w.get(stem + '.bias'))
        ab = self.lora.get(stem)
        if ab is not None and self.lora_on:
            h = F.dropout(x, self.dropout, True) if self.training and self.dropout > 0 else x
            y = y + self.scale * F.linear(F.linear(h, ab['A']), ab['B'])
        return y

    def vision(self, pixels):
        with torch.no_grad():  # no adapter in the vision tower or projector
            return llava_ref.image_features(self.m, pixels)

    def decoder(self, embeds, positions, valid, past=None):
        """embeds [N, T, D], positions/valid [N, T]; past: (keys, values, positions, valid) to attend to as well.
        Returns the final-norm hidden states and this call's (keys, values, positions, valid)."""
        s, w = self.spec, self.m.tw
        n, t, _ = embeds.shape
        kpos, kvalid = positions, valid
        if past is not None:
            kpos, kvalid = torch.cat([past[2], positions], 1), torch.cat([past[3], valid], 1)
        allowed = kvalid[:, None, :] & (kpos[:, None, :] <= positions[:, :, None])
        if s.sliding_window is not None:
            allowed &= (positions[:, :, None] - kpos[:, None, :]) < s.sliding_window
        mask = torch.zeros(allowed.shape).masked_fill_(~allowed, -1e30)[:, None]  # built once per call
        freqs = positions.float()[..., None] * self.inv_freq
        emb = torch.cat([freqs, freqs], -1)[:, None]
        cos, sin = emb.cos(), emb.sin()
        heads, kvh, hd = s.num_attention_heads, s.num_key_value_heads, s.head_dim
        keys, values = [], []
        x = embeds
        for i in range(s.num_hidden_layers):
            p = f'layers.{i}.'
            h = llava_ref.rms_norm(x, w[p + 'input_layernorm.weight'], s.rms_norm_eps)
            q = self.linear(h, p + 'self_attn.q_proj').view(n, t, heads, hd).transpose(1, 2)
            k = self.linear(h, p + 'self_attn.k_proj').view(n, t, kvh, hd).transpose(1, 2)
            v = self.linear(h, p + 'self_attn.v_proj').view(n, t, kvh, hd).transpose(1, 2)
            q = q * cos + llava_ref.rotate_half(q) * sin
            k = k * cos + llava_ref.rotate_half(k) * sin
            keys.append(k)
            values.append(v)
            if past is not None:
                k, v = torch.cat([past[0][i], k], 2), torch.cat([past[1][i], v], 2)
            k, v = k.repeat_interleave(heads // kvh, 1), v.repeat_interleave(heads // kvh, 1)
            probs = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5 + mask, -1)
            x = x + self.linear((probs @ v).transpose(1, 2).reshape(n, t, heads * hd), p + 'self_attn.o_proj')
            h = llava_ref.rms_norm(x, w[p + 'post_attention_layernorm.weight'], s.rms_norm_eps)
            x = x + self.linear(F.silu(self.linear(h, p + 'mlp.gate_proj')) * self.linear(h, p + 'mlp.up_proj'), p + 'mlp.down_proj')
        return llava_ref.rms_norm(x, w['norm.weight'], s.rms_norm_eps), (keys, values, kpos, kvalid)

    def splice(self, prompt, visual, answer):
        ph = prompt.index(self.m.mm.image_token_id)
        ids = torch.tensor(prompt[:ph] + prompt[ph + 1:] + answer, dtype=torch.long)
        text = self.embed[ids]
        return torch.cat([text[:ph], visual, text[ph:]], 0)


def pad_stack(seqs):
    """Right-padded [N, T, D] embeds, positions, valid."""
    t = max(x.shape[0] for x in seqs)
    embeds = torch.zeros(len(seqs), t, seqs[0].shape[1])
    positions = torch.zeros(len(seqs), t, dtype=torch.long)
    valid = torch.zeros(len(seqs), t, dtype=torch.bool)
    for i, x in enumerate(seqs):
        embeds[i, :x.shape[0]] = x
        positions[i, :x.shape[0]] = torch.arange(x.shape[0])
        valid[i, :x.shape[0]] = True
    return embeds, positions, valid


def mlpo_loss(policy, reference, groups, gamma):
    """Mean over samples of Σ_j −logσ(r_w − r_lj) + Σ_{j<m} −logσ(r_lj − r_lm), r = γ(π − π_ref)."""
    losses, row = [], 0
    for g in groups:
        r = gamma * (policy[row:row + 1 + g] - reference[row:row + 1 + g])
        loss = -F.logsigmoid(r[0] - r[1:]).sum()
        for j in range(g):
            for m in range(j + 1, g):
                loss = loss - F.logsigmoid(r[1 + j] - r[1 + m])
        losses.append(loss)
        row += 1 + g
    return torch.stack(losses).mean()


class NaivePeer:
    """TRL-style: every row a full sequence, full-vocabulary log_softmax, reference re-run each step."""

    def __init__(self, model, samples, pixels):
        self.model, self.samples, self.pixels = model, samples, pixels

    def rows(self):
        return [(i, s['prompt'], a) for i, s in enumerate(self.samples) for a in [s['chosen']] + s['rejected']]

    def sequence_logps(self):
        rows = self.rows()
        visual = self.model.vision(self.pixels[[i for i, _, _ in rows]])  # the image encoded again for every row
        seqs = [self.model.splice(p, visual[k], a) for k, (_, p, a) in enumerate(rows)]
        embeds, positions, valid = pad_stack(seqs)
        hidden, _ = self.model.decoder(embeds, positions, valid)
        logps = torch.log_softmax(F.linear(hidden, self.model.m.head).float(), -1)  # every position, as TRL
        labels = torch.full(valid.shape, -100, dtype=torch.long)
        for k, (_, _, a) in enumerate(rows):
            n = seqs[k].shape[0]
            labels[k, n - len(a):n] = torch.tensor(a)
        labels, logps = labels[:, 1:], logps[:, :-1]
        keep = labels != -100
        per_token = logps.gather(2, labels.clamp_min(0)[..., None]).squeeze(2) * keep
        return per_token.sum(1)

    def reference(self):
        with torch.no_grad():
            self.model.lora_on = False
            try:
                return self.sequence_logps()
            finally:
                self.model.lora_on = True


class SharedPrefixPeer:
    """Cached reference; image + prompt once per sample; the answers over the prefix's cached keys/values."""

    def __init__(self, model, samples, pixels):
        self.model, self.samples, self.pixels = model, samples, pixels
        with torch.no_grad():
            self.model.lora_on = False
            self.cached_reference = self.sequence_logps()
            self.model.lora_on = True

    def sequence_logps(self):
        m, samples = self.model, self.samples
        visual = m.vision(self.pixels)
        prefixes = [m.splice(s['prompt'], visual[i], []) for i, s in enumerate(samples)]
        embeds, positions, valid = pad_stack(prefixes)
        prefix_hidden, (keys, values, kpos, kvalid) = m.decoder(embeds, positions, valid)
        answers = [(i, a) for i, s in enumerate(samples) for a in [s['chosen']] + s['rejected']]
        group = torch.tensor([i for i, _ in answers])
        width = max(len(a) for _, a in answers) - 1
        ids = torch.zeros(len(answers), width, dtype=torch.long)
        pos = torch.zeros(len(answers), width, dtype=torch.long)
        val = torch.zeros(len(answers), width, dtype=torch.bool)
        for k, (i, a) in enumerate(answers):
            ids[k, :len(a) - 1] = torch.tensor(a[:-1])
            pos[k, :len(a) - 1] = torch.arange(prefixes[i].shape[0], prefixes[i].shape[0] + len(a) - 1)
            val[k, :len(a) - 1] = True
        past = ([k.index_select(0, group) for k in keys], [v.index_select(0, group) for v in values],
                kpos.index_select(0, group), kvalid.index_select(0, group))
        answer_hidden, _ = m.decoder(m.embed[ids], pos, val, past)
        # The hidden state that predicts each answer token: the prefix's last for the first one.
        d = prefix_hidden.shape[-1]
        flat = torch.cat([prefix_hidden.reshape(-1, d), answer_hidden.reshape(-1, d)], 0)
        index, targets, row_of = [], [], []
        p_len = prefix_hidden.shape[1]
        for k, (i, a) in enumerate(answers):
            for j, tok in enumerate(a):
                index.append(i * p_len + prefixes[i].shape[0] - 1 if j == 0 else len(samples) * p_len + k * width + j - 1)
                targets.append(tok)
                row_of.append(k)
        logits = F.linear(flat[torch.tensor(index)], m.m.head).float()
        targets = torch.tensor(targets)
        token_logps = logits.gather(1, targets[:, None]).squeeze(1) - logits.logsumexp(-1)
        return torch.zeros(len(answers)).index_add(0, torch.tensor(row_of), token_logps)

    def reference(self):
        return self.cached_reference


def status_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--peer', choices=['a', 'b'], required=True)
    ap.add_argument('--model', required=True)
    ap.add_argument('--adapter', required=True)
    ap.add_argument('--alpha', type=float, default=32)
    ap.add_argument('--data', required=True)
    ap.add_argument('--pixels', required=True)
    ap.add_argument('--threads', type=int, required=True)
    ap.add_argument('--dropout', type=float, required=True)
    ap.add_argument('--gamma', type=float, default=0.1)
    ap.add_argument('--lr', type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.data) as f:
        data = json.load(f)
    samples = data['samples']
    size = data['imageSize']
    raw = open(a.pixels, 'rb').read()
    pixels = torch.frombuffer(bytearray(raw), dtype=torch.float32).reshape(len(samples), 3, size, size).clone()
    model = LlavaLora(a.model, a.adapter, a.alpha, a.dropout)
    peer = (NaivePeer if a.peer == 'a' else SharedPrefixPeer)(model, samples, pixels)
    groups = [len(s['rejected']) for s in samples]
    params = model.parameters()
    optimizer = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    def loss_now():
        return mlpo_loss(peer.sequence_logps(), peer.reference(), groups, a.gamma)

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + '\n')
        sys.stdout.flush()

    reply({'ready': True, 'threads': torch.get_num_threads(), 'torch': torch.__version__})
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == 'check':
            model.training = False
            loss = loss_now()
            loss.backward()
            grad_norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params))
            for p in params:
                p.grad = None
            model.training = True
            reply({'loss': loss.item(), 'gradNorm': grad_norm})
        elif cmd == 'step':
            t0 = time.perf_counter()
            loss = loss_now()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            reply({'seconds': time.perf_counter() - t0, 'loss': loss.item()})
        elif cmd == 'rss':
            reply({'vmhwm_kib': status_kib('VmHWM'), 'vmrss_kib': status_kib('VmRSS')})
        elif cmd == 'quit':
            break
        else:
            reply({'error': f'unknown command {cmd!r}'})


if __name__ == '__main__':
    main()
