export { MediaDevice, MEDIA_MAX_PENDING_EVENTS, type MediaDeviceOptions } from './media-device.js';
export { MediaDriver, MediaErrnoError, type MediaDequeued, type MediaDriverConfig, type MediaDriverOptions, type MediaEventMessage, type MediaFormatReply } from './media-driver.js';
export { MEDIA_FORMATS, MEDIA_MAX_BUFFERS, MEDIA_MAX_SG } from './media-session.js';
export { MEDIA_TYPE, type MediaDeviceArgs } from './media-type.js';
export type { MediaFormatInfo } from './media-session.js';
export type { MediaShm } from './media-shm.js';
export type { ShmRange } from './media-shm.js';
