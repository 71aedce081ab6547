/**
 * 5.4 Entropy Device: one request queue, no feature bits, no configuration space.
 */
import { defineConfigLayout } from './config-layout.js';

/** 5.4.2: the single queue. */
export const ENTROPY_REQUESTQ = 0;
/** 5.4.3: no device-specific feature bits. */
export const ENTROPY_FEATURES = 0n;
/** 5.4.4: no configuration space. */
export const ENTROPY_CONFIG_SIZE = 0;
/** 5.4.4: the (empty) configuration layout. */
export const ENTROPY_CONFIG_LAYOUT = defineConfigLayout(ENTROPY_CONFIG_SIZE, []);
