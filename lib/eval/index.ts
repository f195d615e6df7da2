export * from './normalize';
export * from './metrics';
export * from './hallucination';
export * from './predictions';
export * from './table';
export * from './run';
export * from './gpt-review';
