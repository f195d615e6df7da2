import type { Command } from 'commander';
import { registerDoctorCommands } from './doctor';
import { registerRerankCommands } from './rerank';
import { registerGenerateCommands } from './generate';
import { registerDataCommands } from './data';
import { registerEvalCommands } from './eval';
import { registerModelCommands } from './model';
import { registerTrainCommands } from './train';
import { loadPredictor } from '../model/predictor';
import { applyAdapter } from '../train/adapter';
import { registerDemoCommands } from './demo';

/** One line per stage; each module adds its sub-commands to the program. */
export function registerCommands(program: Command): void {
  // In pipeline order, as `hscr --help` lists them.
  registerDoctorCommands(program);
  registerModelCommands(program);
  registerDataCommands(program);
  registerGenerateCommands(program);
  registerRerankCommands(program);
  registerTrainCommands(program);
  registerEvalCommands(program, (model, adapter, options) => loadPredictor(model, adapter, { loadAdapter: applyAdapter, ...options }));
  registerDemoCommands(program);
}
