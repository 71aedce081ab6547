/**
 * Guest memory: bounds-checked, zero-copy views of guest RAM over several regions, with the ordered accesses the rings need (2.7, 2.8).
 *
 * @module memory
 */
export * from './guest-memory.js';
