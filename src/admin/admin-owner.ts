/**
 * One call that builds a group owner device with every administration command module of virtio
 * 1.4 registered (2.12.1.2 capabilities, 2.12.1.3 resource objects, 2.12.1.4 legacy interface,
 * 2.12.1.5 device parts) and, when asked, the SR-IOV capability whose VFs are the members: the
 * device parts objects are created through RESOURCE_OBJ_CREATE, bounded by VIRTIO_DEV_PARTS_CAP.
 */
import type { DeviceCoreApi, VirtioDevice } from '../device/types.js';
import type { CoreFactory } from '../transport/bus.js';
import { SriovCapability, type SriovCapabilityOptions } from '../transport/pci/sriov-capability.js';
import { AdminDevice, type AdminDeviceOptions } from './admin-device.js';
import { CapabilityHandler, type DeviceCapability } from './capabilities/capability-handler.js';
import { ResourceObjectHandler, type ResourceObjectHandlerOptions } from './resource-objects/resource-object-handler.js';
import type { ResourceObjectType } from './resource-objects/resource-object-type.js';
import { LegacyInterfaceHandler, type LegacyInterfaceHandlerOptions } from './legacy-interface/legacy-interface-handler.js';
import { DevicePartsHandler } from './device-parts/device-parts-handler.js';
import { DevicePartsObjectTable } from './device-parts/device-parts-objects.js';
import { devPartsDeviceCapability, devPartsResourceObjectType } from './device-parts/dev-parts-resource-type.js';

/** How `createAdminOwner` builds the owner. */
export interface AdminOwnerOptions {
  /** The PF's own device (blk, net...): the administration queues are added after its queues. */
  readonly device: VirtioDevice;
  /** The SR-IOV capability (TotalVFs and the VF factory); without it, only the self group exists. */
  readonly sriov?: SriovCapabilityOptions;
  /**
   * VIRTIO_DEV_PARTS_CAP as the device offers it: how many get and set device parts objects it
   * keeps at most (u8 each). Default 2 and 2.
   */
  readonly devicePartsLimits?: {
    /** get_parts_resource_objects_limit. */
    readonly get: number;
    /** set_parts_resource_objects_limit. */
    readonly set: number;
  };
  /** Further device capabilities (device type specific ones), besides VIRTIO_DEV_PARTS_CAP. */
  readonly capabilities?: readonly DeviceCapability[];
  /** Further resource object types, besides VIRTIO_RESOURCE_OBJ_DEV_PARTS. */
  readonly resourceObjectTypes?: readonly ResourceObjectType[];
  /** Internal limits of the resource object store. */
  readonly resourceObjects?: ResourceObjectHandlerOptions;
  /** The legacy interface commands' options (notification addresses, configuration layout). */
  readonly legacy?: LegacyInterfaceHandlerOptions;
  /** Where a refused device parts command's reason goes (logs, tests). */
  readonly onDevicePartsRefusal?: (opcode: number, reason: string) => void;
  /** Administration queue options (count, size, bounds, logger). */
  readonly admin?: Omit<AdminDeviceOptions, 'handlers' | 'groups'>;
}

/** The owner and its modules. */
export interface AdminOwner {
  /** The owner device: give it to the PF's transport (through `coreFactory`). */
  readonly device: AdminDevice;
  /** The SR-IOV capability (PciDeviceOptions.sriov of the PF), or null without one. */
  readonly sriov: SriovCapability | null;
  /** CAP_ID_LIST_QUERY, DEVICE_CAP_GET, DRIVER_CAP_SET. */
  readonly capabilities: CapabilityHandler;
  /** RESOURCE_OBJ_CREATE, QUERY, MODIFY, DESTROY (device parts objects among the types). */
  readonly resourceObjects: ResourceObjectHandler;
  /** The device parts objects the store created, as the device parts handler sees them. */
  readonly devicePartsObjects: DevicePartsObjectTable;
  /** DEV_MODE_SET, DEV_PARTS_METADATA_GET, DEV_PARTS_GET, DEV_PARTS_SET. */
  readonly deviceParts: DevicePartsHandler;
  /** The legacy interface commands. */
  readonly legacy: LegacyInterfaceHandler;
  /**
   * `factory` (e.g. `deviceCoreFactory(owner.device, memory)`) wrapped so the core the transport
   * builds becomes the self group's member (AdminDevice.bindOwner).
   */
  coreFactory(factory: CoreFactory): CoreFactory;
}

/**
 * Builds an owner device with the four command modules registered: the capabilities (with
 * VIRTIO_DEV_PARTS_CAP), the resource objects (with VIRTIO_RESOURCE_OBJ_DEV_PARTS for the SR-IOV
 * group), the legacy interface and the device parts commands, and the SR-IOV group when `sriov`
 * is given.
 */
export function createAdminOwner(opts: AdminOwnerOptions): AdminOwner {
  const limits = opts.devicePartsLimits ?? { get: 2, set: 2 };
  const capabilities = new CapabilityHandler([devPartsDeviceCapability(limits.get, limits.set), ...(opts.capabilities ?? [])]);
  // The store enforces the capability's limits; the table only records what exists.
  const devicePartsObjects = new DevicePartsObjectTable(Infinity, Infinity);
  const resourceObjects = new ResourceObjectHandler(capabilities, [devPartsResourceObjectType(devicePartsObjects), ...(opts.resourceObjectTypes ?? [])], opts.resourceObjects ?? {});
  const legacy = new LegacyInterfaceHandler(opts.legacy ?? {});
  const deviceParts = new DevicePartsHandler({ objects: devicePartsObjects.lookup, ...(opts.onDevicePartsRefusal ? { onRefusal: opts.onDevicePartsRefusal } : {}) });
  const sriov = opts.sriov ? new SriovCapability(opts.sriov) : null;
  const device = new AdminDevice(opts.device, {
    ...(opts.admin ?? {}),
    handlers: [capabilities, resourceObjects, legacy, deviceParts],
    groups: sriov ? [sriov.group] : [],
  });
  return {
    device,
    sriov,
    capabilities,
    resourceObjects,
    devicePartsObjects,
    deviceParts,
    legacy,
    coreFactory(factory: CoreFactory): CoreFactory {
      return (sink, mode) => {
        const core: DeviceCoreApi = factory(sink, mode);
        device.bindOwner(core);
        return core;
      };
    },
  };
}
