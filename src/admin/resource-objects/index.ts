export * from './resource-object-type.js';
export * from './resource-object-handler.js';
export * from './resource-object-driver.js';
