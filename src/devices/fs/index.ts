export { FsDevice, FS_TAG_MAX_BYTES, type FsDeviceOptions } from './fs-device.js';
export { FuseServer, FUSE_DEFAULT_MAX_WRITE, FUSE_REPLY_DEFERRED, FS_CACHE_POLICIES, type FuseServerOptions, type FsCachePolicy } from './fuse-server.js';
export { HostFs, FuseErrno, Errno, type HostFsLimits, type HostFsOptions, type Inode, type FileHandle, type DirEntry, type SetattrValues } from './host-fs.js';
export { FS_TYPE, type FsDeviceArgs } from './fs-type.js';
export { FsDriver, FuseReplyError, type FsAttr, type FsEntry, type FsDirEntry, type FsLock, type FsDriverOptions } from './fs-driver.js';
export { IdMap, type IdRange } from './id-map.js';
export { XattrMap } from './xattr-map.js';
export { HostLocks, type LockRange, type PendingLock } from './host-locks.js';
