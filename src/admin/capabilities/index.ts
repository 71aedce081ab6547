export * from './capability-layout.js';
export * from './capability-handler.js';
export * from './capability-driver.js';
