export * from './errors.js';
export * from './spec/index.js';
export * from './memory/index.js';
export * from './log.js';
