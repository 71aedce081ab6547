export { IommuDevice, IOMMU_INPUT_END, IOMMU_MAX_PENDING_FAULTS, IOMMU_PAGE_SIZE_MASK, type IommuDeviceOptions } from './iommu-device.js';
export { IommuDomain, IommuTranslation, type EndpointSpec, type IommuFaultInfo, type IommuMapping, type Translation } from './iommu-domains.js';
export { IommuDriver, IommuStatusError, parseFault, parseProperties, type IommuDriverConfig, type IommuDriverOptions, type IommuFaultReport, type IommuReservedRegion } from './iommu-driver.js';
export { IOMMU_TYPE, type IommuDeviceArgs } from './iommu-type.js';
