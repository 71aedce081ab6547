export { FsDevice, FS_TAG_MAX_BYTES, type FsDeviceOptions } from './fs-device.js';
export { FuseServer, FUSE_DEFAULT_MAX_WRITE, type FuseServerOptions } from './fuse-server.js';
export { HostFs, FuseErrno, Errno, type HostFsLimits, type Inode, type FileHandle, type DirEntry, type SetattrValues } from './host-fs.js';
export { FS_TYPE, type FsDeviceArgs } from './fs-type.js';
