/** placeholder */
import type { DeviceCli } from '../device-type.js';
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const VSOCK_CLI: DeviceCli<any> | null = null;
