/**
 * virtio-iommu (5.13): requests on the requestq (virtio_iommu_req_head type ATTACH, DETACH,
 * MAP, UNMAP, PROBE mostly, any byte sometimes, reserved zero mostly; domain ids 0..4 (0 is
 * outside domain_range) and endpoint ids 0..4 (4 does not exist) mostly, any u32 sometimes;
 * ATTACH flags 0 / BYPASS mostly; MAP and UNMAP IOVA ranges of a few pages among the first
 * sixteen mostly, sometimes reversed, unaligned, wrapping to 2^64 - 1, past the 48-bit input
 * range or any; phys_start a page of guest RAM mostly, past it, unaligned or any sometimes; MAP
 * flags READ / WRITE / MMIO combinations or any; the structure whole mostly, cut short
 * sometimes; then raw bytes, with the tail where the writable part ends) and buffers on the
 * eventq, which the device holds for fault reports (heldQueues). Between chains the input acts
 * as the endpoints' DMA (a translation, a read through `endpointMemory`, which fault on what
 * is not mapped and queue reports on the eventq) and as the driver's config writes (bypass,
 * any offset and width through the core).
 *
 * Endpoints: 0 and 3 plain, 1 with a RESERVED and an MSI region (PROBE lists both), 2
 * exclusive (may not share a domain), 5 with three regions, more than probe_size (64 bytes)
 * holds (PROBE answers INVAL). At most 4 mappings per domain (NOMEM past them: an input has
 * room for an ATTACH and 5 MAPs). A device reset keeps config bypass (device/iommu/7):
 * `resetHost` is the system reset that puts it back. Checks (device-chains): no throw, every
 * requestq chain completed, used.len within the writable bytes, guards; domains, mappings,
 * attachments and bypass are the host state of the reuse fingerprint.
 */
import { type ByteReader, ByteWriter } from '../engine/byte-reader.js';
import type { FuzzTarget } from '../engine/target.js';
import { GUEST_BASE } from '../harness/core-rig.js';
import { deviceChainsSeed, type SeedChain } from '../harness/device-chains-seeds.js';
import { deviceChainsOutcome, runDeviceChains, type DeviceChainsSpec } from '../harness/device-chains.js';
import type { DeviceCore } from '../../src/device/device-core.js';
import { IommuDevice } from '../../src/devices/iommu/iommu-device.js';
import { MemoryError } from '../../src/errors.js';
import { IommuConfig, IommuMapFlag, IommuQueue, IommuRequest, IommuResvMem } from '../../src/spec/iommu.js';

const PAGE = 0x1000;
/** Room for a driver's sequence of requests (attach, map, unmap, detach...) in one input. */
const QUEUE_SIZE = 16;
const MAP_FLAGS = [IommuMapFlag.READ, IommuMapFlag.WRITE, IommuMapFlag.READ | IommuMapFlag.WRITE, IommuMapFlag.MMIO, IommuMapFlag.READ | IommuMapFlag.MMIO, 7, 0];
const ACCESS_LENGTHS = [1, 4, 0x100, PAGE, 2 * PAGE];
/** Bytes a DMA read through endpointMemory moves at most. */
const dmaBuffer = new Uint8Array(2 * PAGE);

function u64(w: ByteWriter, hi: number, lo: number): ByteWriter {
  return w.u32(lo >>> 0).u32(hi >>> 0);
}

function rawU64(w: ByteWriter, r: ByteReader): void {
  const raw = r.bytes(8);
  w.bytes(raw).bytes(new Uint8Array(8 - raw.length));
}

/**
 * A host step before the chain, one time in five: a translation or a DMA read by an endpoint
 * (faults go to the eventq), a write of config bypass or of any config field.
 */
function hostStep(r: ByteReader, core: DeviceCore): void {
  const act = r.u8();
  if (act < 0xd0) return;
  const device = core.device as IommuDevice;
  switch (act & 3) {
    case 0:
      device.translation.translate(r.below(6), r.below(20) * PAGE + r.below(4) * 0x400, r.pick(ACCESS_LENGTHS), 1 + r.below(3));
      break;
    case 1: {
      const view = device.translation.endpointMemory(r.below(6));
      try {
        view.read(r.below(20) * PAGE + r.below(4) * 0x400, dmaBuffer, 0, r.pick(ACCESS_LENGTHS));
      } catch (e) {
        // An unmapped IOVA: the endpoint's access fails (and was reported as a fault).
        if (!(e instanceof MemoryError)) throw e;
      }
      break;
    }
    case 2:
      core.writeConfig(IommuConfig.BYPASS, 1, r.u8());
      break;
    default:
      core.writeConfig(r.below(IommuConfig.SIZE + 4), r.pick([1, 2, 4]), r.u32());
  }
}

/**
 * virt_start, virt_end: a few pages among the first sixteen mostly; odd: reversed, unaligned
 * start or end, ending at 2^64 - 1, past the 48-bit input range, any.
 */
function range(w: ByteWriter, r: ByteReader, odd: boolean): void {
  const start = r.below(16) * PAGE;
  const end = start + (1 + r.below(4)) * PAGE - 1;
  if (!odd) {
    u64(w, 0, start);
    u64(w, 0, end);
    return;
  }
  switch (r.below(6)) {
    case 0:
      u64(w, 0, end);
      u64(w, 0, start);
      break;
    case 1:
      u64(w, 0, start + 1 + r.below(PAGE - 1));
      u64(w, 0, end);
      break;
    case 2:
      u64(w, 0, start);
      u64(w, 0, end - 1 - r.below(PAGE - 1));
      break;
    case 3:
      u64(w, 0, start);
      u64(w, 0xffff_ffff, 0xffff_ffff);
      break;
    case 4:
      u64(w, 0xffff, 0xffff_f000);
      u64(w, 0x1_0000 + r.below(4), 0xfff);
      break;
    default:
      rawU64(w, r);
      rawU64(w, r);
  }
}

/** phys_start: a page of guest RAM mostly; odd: past RAM, unaligned, near 2^53, any. */
function phys(w: ByteWriter, r: ByteReader, odd: boolean): void {
  const page = GUEST_BASE + r.below(16) * PAGE;
  if (!odd) {
    u64(w, 0, page);
    return;
  }
  switch (r.below(4)) {
    case 0:
      u64(w, 0, GUEST_BASE + (16 + r.below(4)) * PAGE);
      break;
    case 1:
      u64(w, 0, page + 1 + r.below(PAGE - 1));
      break;
    case 2:
      u64(w, 0x1f_ffff, 0xffff_f000);
      break;
    default:
      rawU64(w, r);
  }
}

/**
 * Odd fields (a second byte, one time in four): 1 any type, 2 reserved bytes raw, 4 any domain
 * and endpoint, 8 any flags, 16 odd virtual range, 32 odd phys_start, 64 the request cut short.
 */
function header(queue: number, r: ByteReader, core: DeviceCore): Uint8Array {
  hostStep(r, core);
  if (queue === IommuQueue.EVENTQ) return new Uint8Array(0);
  const odd = r.u8() >= 0xc0 ? r.u8() : 0;
  const type = (odd & 1) !== 0 ? r.u8() : 1 + r.below(5);
  const w = new ByteWriter().u8(type);
  const reserved = (n: number): void => {
    const raw = (odd & 2) !== 0 ? r.bytes(n) : new Uint8Array(0);
    w.bytes(raw).bytes(new Uint8Array(n - raw.length));
  };
  reserved(3);
  const id = (): number => ((odd & 4) !== 0 ? r.u32() : r.below(5));
  switch (type) {
    case IommuRequest.ATTACH:
      w.u32(id()).u32(id()).u32((odd & 8) !== 0 ? r.u32() : r.below(2));
      reserved(4);
      break;
    case IommuRequest.DETACH:
      w.u32(id()).u32(id());
      reserved(8);
      break;
    case IommuRequest.MAP:
      w.u32(id());
      range(w, r, (odd & 16) !== 0);
      phys(w, r, (odd & 32) !== 0);
      w.u32((odd & 8) !== 0 ? r.u32() : r.pick(MAP_FLAGS));
      break;
    case IommuRequest.UNMAP:
      w.u32(id());
      range(w, r, (odd & 16) !== 0);
      reserved(4);
      break;
    case IommuRequest.PROBE:
      w.u32(id());
      reserved(64);
      break;
    default:
      break;
  }
  const msg = w.finish();
  return (odd & 64) !== 0 ? msg.subarray(0, r.below(msg.length)) : msg;
}

/** What the device holds that requests change: bypass, domains with their endpoints and mappings. */
function translationState(device: IommuDevice): Uint8Array {
  const t = device.translation;
  const domains = [...t.domains.values()].sort((a, b) => a.id - b.id).map((d) => ({ id: d.id, bypass: d.bypass, endpoints: [...d.endpoints].sort((a, b) => a - b), mappings: d.mappings }));
  return new TextEncoder().encode(JSON.stringify({ bypass: device.bypassField, domains, attached: [...t.attached.entries()].map(([e, d]) => [e, d.id]).sort((a, b) => a[0]! - b[0]!) }));
}

const spec: DeviceChainsSpec = {
  device: () => {
    const device = new IommuDevice({
      endpoints: [
        { id: 0 },
        {
          id: 1,
          reserved: [
            { subtype: IommuResvMem.RESERVED, start: 0, end: PAGE - 1 },
            { subtype: IommuResvMem.MSI, start: 0xfee0_0000, end: 0xfeef_ffff },
          ],
        },
        { id: 2, exclusive: true },
        { id: 3 },
        {
          id: 5,
          reserved: [0, 1, 2].map((i) => ({ subtype: IommuResvMem.RESERVED, start: (32 + i) * PAGE, end: (33 + i) * PAGE - 1 })),
        },
      ],
      domainRange: [1, 64],
      probeSize: 64,
      maxMappings: 4,
      queueSize: QUEUE_SIZE,
    });
    return { device, resetHost: () => device.systemReset(), hostState: () => [translationState(device)] };
  },
  queues: 2,
  heldQueues: [IommuQueue.EVENTQ],
  header,
  queueSize: QUEUE_SIZE,
};

/** A requestq chain: no host step, no odd field, the type (1..5), then its fields as the header reads them. */
function request(type: number, fields: number[], writable = 4): SeedChain {
  return { queue: IommuQueue.REQUESTQ, header: [0, 0, type - 1, ...fields], writable };
}

/**
 * Seeds: a driver's start (an event buffer, PROBE of endpoint 1, ATTACH 1 to domain 1, MAP,
 * a DMA read that translates and one that faults, UNMAP, DETACH); a bypass domain and a MAP it
 * refuses; two endpoints sharing a domain, a MAP with WRITE only, an endpoint moved to another
 * domain; five MAPs into one domain (NOMEM); ATTACH and PROBE without the features.
 */
function seeds(): Uint8Array[] {
  const eventBuffer: SeedChain = { queue: IommuQueue.EVENTQ, header: [0], writable: 64, emptyMessage: true };
  // range: start page, pages - 1; phys: page; MAP_FLAGS index.
  const map = (domain: number, startPage: number, pages: number, physPage: number, flags: number): SeedChain => request(IommuRequest.MAP, [domain, startPage, pages - 1, physPage, MAP_FLAGS.indexOf(flags)]);
  // DMA reads by endpoint 1: page 4 (mapped) and page 19 (not: a MAPPING fault on the eventq).
  const dmaRead = (page: number): SeedChain => ({ queue: IommuQueue.EVENTQ, header: [0xd1, 1, page, 0, ACCESS_LENGTHS.indexOf(4)], writable: 64, emptyMessage: true });
  return [
    deviceChainsSeed(true, [
      [eventBuffer, request(IommuRequest.PROBE, [1], 512), request(IommuRequest.ATTACH, [1, 1, 0]), map(1, 4, 2, 8, IommuMapFlag.READ | IommuMapFlag.WRITE)],
      [dmaRead(4), dmaRead(19), request(IommuRequest.UNMAP, [1, 4, 1]), request(IommuRequest.DETACH, [1, 1])],
    ], spec),
    deviceChainsSeed(true, [[request(IommuRequest.ATTACH, [2, 0, 1]), map(2, 0, 1, 0, IommuMapFlag.READ), request(IommuRequest.PROBE, [4], 512)]], spec),
    deviceChainsSeed(true, [
      [request(IommuRequest.ATTACH, [3, 0, 0]), request(IommuRequest.ATTACH, [3, 3, 0]), map(3, 1, 1, 3, IommuMapFlag.WRITE)],
      [request(IommuRequest.ATTACH, [4, 3, 0]), request(IommuRequest.UNMAP, [3, 0, 3], 16)],
    ], spec),
    // Five MAPs into one domain: the fifth is past maxMappings (NOMEM).
    deviceChainsSeed(
      true,
      [
        [request(IommuRequest.ATTACH, [1, 0, 0]), map(1, 0, 1, 0, IommuMapFlag.READ), map(1, 2, 1, 2, IommuMapFlag.READ), map(1, 4, 1, 4, IommuMapFlag.READ)],
        [map(1, 6, 1, 6, IommuMapFlag.READ), map(1, 8, 1, 8, IommuMapFlag.READ)],
      ],
      spec,
    ),
    // Without the features: ATTACH, then PROBE (not negotiated: not answered, device/iommu/43).
    deviceChainsSeed(false, [[request(IommuRequest.ATTACH, [1, 0, 0]), request(IommuRequest.PROBE, [0], 512)]], spec),
  ];
}

export const target: FuzzTarget = { name: 'iommu-requests', maxLen: 1024, seeds, run: (d) => runDeviceChains(spec, d), outcome: () => deviceChainsOutcome(spec) };
