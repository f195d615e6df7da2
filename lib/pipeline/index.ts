export { loadPipelineConfig, resolvePipelineConfig, pipelineConfigSchema, type PipelineConfig } from './config';
export { runPipeline, pipelineLayout, STAGE_NAMES, type StageName, type StageOutcome, type PipelineResult, type PipelineOptions } from './run';
export { hashPath, readManifest, manifestFile, type StageManifest } from './manifest';
