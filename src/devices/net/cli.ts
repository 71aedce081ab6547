/** `virtio-ts net`: placeholder replaced below. */
import type { BackendOptions } from '../../cli/options.js';
import type { DeviceCli } from '../device-type.js';
export const NET_CLI: DeviceCli<BackendOptions> | null = null;
