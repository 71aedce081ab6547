/** The live queue inspector (`--inspect`): device snapshots read without disturbing the device, and the page's server. */
export { type Inspector, type InspectorAddress, type InspectorOptions, type InspectorState, type ResetLogEntry, startInspector } from './inspector-server.js';
export { type DeviceSnapshot, type InspectedDevice, type QueueSnapshot, chainDetail, snapshotDevice } from './device-snapshot.js';
export { type ChainDetail, type DescriptorView, type RingView, readRing, readSplitChain, suppression } from './ring-peek.js';
export { featureBitName, protocolFeatureName, statusBits } from './feature-names.js';
export { RateHistory, type RatePoint } from './rate-history.js';
export type { PackedEventView, PackedRingView, SplitRingView, SuppressionView } from './ring-peek.js';
export type { ChainSummary, FeatureBitView } from './device-snapshot.js';
