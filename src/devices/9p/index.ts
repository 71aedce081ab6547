export { P9_TYPE, type P9DeviceArgs } from './p9-type.js';
export { P9_CLI, type P9Options } from './cli.js';
export { P9Device, type P9DeviceOptions } from './p9-device.js';
export { P9Server, P9_DEFAULT_MAX_MSIZE, type P9ServerOptions } from './p9-server.js';
export { P9Driver, P9RemoteError, type P9DriverOptions, type P9Attr, type P9SetAttr, type P9DirEnt, type P9StatFs, type P9LockRequest, type P9LockInfo } from './p9-driver.js';
export { P9Failure, type Qid } from './p9-codec.js';
