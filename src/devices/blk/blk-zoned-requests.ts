/**
 * The zoned block requests that need no backend I/O (5.2.6, VIRTIO_BLK_F_ZONED): ZONE_REPORT
 * (the report header and zone descriptors written into the request) and the zone management
 * requests ZONE_OPEN, CLOSE, FINISH, RESET and RESET_ALL, answered at once from the ZonedModel.
 * Split from blk-requests.ts: BlkRequestHandler owns one and dispatches these request types to
 * it (ZONE_APPEND, which writes data through the backend, stays with the other writes there).
 */
import type { ChainCursor } from '../../queue/chain.js';
import { BlkReqType, BlkStatus } from '../../spec/blk.js';
import { BlkZoneDescriptor, BlkZoneReport } from '../../spec/blk-zoned.js';
import type { BlkDeviceState, BlkRequest } from './blk-requests.js';
import { setU64, type ZonedModel } from './zoned-model.js';

/** Zone report and zone management requests of one BlkDevice (its BlkRequestHandler's). */
export class BlkZoneRequests {
  /** A zone report's header or one descriptor (or an append_sector), written one at a time. */
  readonly record = new Uint8Array(BlkZoneDescriptor.SIZE);
  /** `record` as a DataView. */
  readonly recordView = new DataView(this.record.buffer);

  /** `writer`: the handler's cursor over a request's writable part (reset here per report). */
  constructor(
    private readonly dev: BlkDeviceState,
    private readonly writer: ChainCursor,
  ) {}

  /**
   * ZONE_REPORT: the header and as many whole zone descriptors as the buffer takes, from the
   * zone holding `sector` on (nr_zones counts the descriptors written).
   */
  report(req: BlkRequest, zones: ZonedModel, sector: number, dataOut: number, dataIn: number, le: boolean): void {
    if (dataOut !== 0 || dataIn < BlkZoneReport.HEADER_SIZE) {
      req.status = BlkStatus.IOERR;
      return;
    }
    if (sector >= this.dev.capacity) {
      req.status = BlkStatus.ZONE_INVALID_CMD;
      return;
    }
    const first = zones.zoneOf(sector);
    const n = Math.min(zones.zoneCount - first, Math.floor((dataIn - BlkZoneReport.HEADER_SIZE) / BlkZoneDescriptor.SIZE));
    const rec = this.record;
    const v = this.recordView;
    const w = this.writer.reset(req.chain);
    rec.fill(0);
    setU64(v, BlkZoneReport.NR_ZONES, n, le);
    let filled = w.write(rec, 0, BlkZoneReport.HEADER_SIZE);
    for (let i = 0; i < n; i++) {
      zones.describe(first + i, v, le);
      filled += w.write(rec, 0, BlkZoneDescriptor.SIZE);
    }
    req.filled = filled;
  }

  /** ZONE_OPEN, CLOSE, FINISH, RESET, RESET_ALL: non-data requests, answered at once. */
  manage(zones: ZonedModel, type: number, sector: number, dataOut: number, dataIn: number): number {
    if (dataOut !== 0 || dataIn !== 0) return BlkStatus.IOERR;
    if (this.dev.readOnly) return BlkStatus.IOERR;
    switch (type) {
      case BlkReqType.ZONE_OPEN:
        return zones.open(sector);
      case BlkReqType.ZONE_CLOSE:
        return zones.close(sector);
      case BlkReqType.ZONE_FINISH:
        return zones.finish(sector);
      case BlkReqType.ZONE_RESET:
        return zones.reset(sector);
      default:
        return zones.resetAll(); // the sector is not used (5.2.6)
    }
  }
}
