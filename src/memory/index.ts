export * from './guest-memory.js';
