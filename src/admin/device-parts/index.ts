export * from './device-part-format.js';
export * from './device-parts-objects.js';
export * from './member-parts.js';
export * from './device-parts-handler.js';
export * from './device-parts-driver.js';
export * from './dev-parts-resource-type.js';
