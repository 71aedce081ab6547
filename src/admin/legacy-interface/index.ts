export * from './legacy-common-fields.js';
export * from './legacy-notify-info.js';
export * from './legacy-register-host.js';
export * from './legacy-interface-handler.js';
export * from './legacy-interface-driver.js';
