/** hscr: Hierarchical Self-Contrastive Rewarding for vision-language models. */
export { HscrError, type HscrErrorCode } from './errors';
export { HSCR_DEFAULTS } from './config';
export { native, addonLocation, setThreads, resolveThreads, type Tensor, type DType, type RuntimeInfo } from './native';
export { tensor, matmul, randn, toBfloat16Bits, fromBfloat16Bits } from './tensor';
export { doctor, type DoctorReport } from './doctor';
