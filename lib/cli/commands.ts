import type { Command } from 'commander';
import { registerDoctorCommands } from './doctor';
import { registerRerankCommands } from './rerank';
import { registerDataCommands } from './data';
import { registerEvalCommands } from './eval';

/** One line per stage; each module adds its sub-commands to the program. */
export function registerCommands(program: Command): void {
  registerDoctorCommands(program);
  registerRerankCommands(program);
  registerDataCommands(program);
  registerEvalCommands(program); // the lead adds loadPredictor (lib/model/predictor.ts) as 2nd argument to enable `hscr eval`
}
