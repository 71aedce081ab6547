export { BALLOON_DEVICE_FEATURES, BalloonDevice, type BalloonDeviceOptions, type BalloonNamedStats, type BalloonPfnListener, type BalloonStats, balloonStatsByName } from './balloon-device.js';
export { BalloonDriver, type BalloonDriverOptions } from './balloon-driver.js';
export { withBalloonPoison } from './balloon-poison.js';
export { BALLOON_TYPE, type BalloonDeviceArgs } from './balloon-type.js';
export { FreePageHinter, type FreePageHinterOptions } from './free-page-hinter.js';
export { type FreePageHint, type FreePageHintListener, MAX_KEPT_RANGES } from './free-page-hints.js';
export { type PageReleaser, madvisePageReleaser, zeroFillPageReleaser } from './page-release.js';
export { hostMemoryStats, parseLinuxMemoryStats } from './host-memory-stats.js';
