export * from './types';
export * from './jsonl';
export * from './loaders';
export { inferAnswerType, type MissingImagePolicy } from './fields';
export { mulberry32, mixSeed, Rng } from './prng';
export * from './phantom';
