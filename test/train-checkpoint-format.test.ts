/** trainer_state.json in transformers' layout (global_step, log_history, …), hscr's resume fields beside it. */
import t from 'tap';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { HSCR_STATE, TRAINER_STATE, readTrainerState, writeCheckpoint, type TrainerState } from '../lib/train/checkpoint';
import type { NativeOptimizer } from '../lib/train/native';

const state: TrainerState = {
  version: 1,
  globalStep: 4,
  epoch: 4 / 3,
  stepsPerEpoch: 3,
  totalSteps: 6,
  lastLr: 0.0005,
  worldSize: 1,
  identity: { seed: 3, batchSize: 2, saveSteps: 2, data: 'abc' },
  lastMetrics: { loss: 0.5, step: 4 },
};

function outDir(t: { teardown(f: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hscr-ckpt-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const optimizer = { save: async (file: string) => fs.writeFileSync(file, 'moments') } as unknown as NativeOptimizer;

t.test('trainer_state.json has HF TrainerState fields only, log_history up to the step; resume reads it back', async (t) => {
  const out = outDir(t);
  const lines = [1, 2, 3, 4, 5].map((step) => JSON.stringify({ step, loss: 1 / step, learning_rate: 0.001 * step, grad_norm: step }));
  fs.writeFileSync(path.join(out, 'metrics.jsonl'), `${lines.join('\n')}\n{"step": 6, "lo`); // step 5 is past the checkpoint; a partial line
  const dir = await writeCheckpoint(out, { state, optimizer, rngStates: [new Uint8Array([1, 2, 3])], writeWeights: async () => {} });
  const hf = JSON.parse(fs.readFileSync(path.join(dir, TRAINER_STATE), 'utf8'));
  // The fields of transformers' TrainerState dataclass (4.4x): TrainerState(**json) must accept every key.
  const HF_FIELDS = ['best_metric', 'best_model_checkpoint', 'epoch', 'eval_steps', 'global_step', 'is_hyper_param_search', 'is_local_process_zero', 'is_world_process_zero', 'log_history', 'logging_steps', 'max_steps', 'num_input_tokens_seen', 'num_train_epochs', 'save_steps', 'stateful_callbacks', 'total_flos', 'train_batch_size', 'trial_name', 'trial_params'];
  t.same(Object.keys(hf).sort(), [...HF_FIELDS].sort());
  t.equal(hf.global_step, 4);
  t.equal(hf.max_steps, 6);
  t.equal(hf.num_train_epochs, 2);
  t.equal(hf.train_batch_size, 2);
  t.equal(hf.save_steps, 2);
  t.same(hf.log_history.map((e: { step: number }) => e.step), [1, 2, 3, 4]);
  t.same(hf.log_history[2], { step: 3, loss: 1 / 3, learning_rate: 0.003, grad_norm: 3, epoch: 1 });
  t.ok(fs.existsSync(path.join(dir, HSCR_STATE)));
  t.same(readTrainerState(dir), state, 'resume sees the state it saved');
});

t.test('a checkpoint in the earlier one-file camelCase layout still resumes', async (t) => {
  const dir = path.join(outDir(t), 'checkpoint-4');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, TRAINER_STATE), JSON.stringify(state));
  t.same(readTrainerState(dir), state);
});

t.test('a broken hscr_state.json is E_CHECKPOINT naming the file', async (t) => {
  const out = outDir(t);
  const dir = await writeCheckpoint(out, { state, optimizer, rngStates: [new Uint8Array([1])], writeWeights: async () => {} });
  fs.writeFileSync(path.join(dir, HSCR_STATE), '{"version": 7}');
  t.throws(() => readTrainerState(dir), { code: 'E_CHECKPOINT', message: /hscr_state\.json: unknown hscr state version/ });
});
