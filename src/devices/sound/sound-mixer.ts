/**
 * The sound device's control elements as a whole (5.14.6.10): the standard ones it presents for
 * each PCM stream, those the application adds, the (name, index) uniqueness across them
 * (device/sound/16), and the gain each stream's elements give its PCM (pcm-gain.ts).
 *
 * Standard elements, `index` = the stream id so that names repeat but (name, index) does not:
 * - "PCM Playback Volume" / "PCM Capture Volume": INTEGER 0..100 step 1, role VOLUME with the
 *   stream's direction, READ | WRITE | TLV_READ, DB_SCALE metadata (-50 dB .. 0 dB, 0 mutes).
 * - "PCM Playback Switch" / "PCM Capture Switch": BOOLEAN, role MUTE, ALSA's convention: 1 lets
 *   the sound through, 0 mutes.
 * - "PCM Capture Source" (input streams): ENUMERATED "Host Input" / "Silence".
 * An element marked INACTIVE "does actually nothing": it then leaves the PCM unchanged.
 */
import { ErrorCode, VirtioError } from '../../errors.js';
import { SoundCtlAccess, SoundCtlRole, SoundCtlType, SoundDirection } from '../../spec/sound.js';
import { UNITY_GAIN, VOLUME_MAX, VOLUME_TLV, volumeGainQ16 } from './pcm-gain.js';
import { type SoundControlConfig, SoundControlElement } from './sound-elements.js';
import type { StreamInfo } from './sound-topology.js';

/** The ids of one stream's standard elements. */
export interface SoundStreamControls {
  /** Its volume element. */
  readonly volume: number;
  /** Its switch element (1 = sound on). */
  readonly mute: number;
  /** Its capture source selector (input streams), else null. */
  readonly source: number | null;
}

/** Items of the capture source selector. */
export const CAPTURE_SOURCES = ['Host Input', 'Silence'] as const;

/** The most elements a device holds (bounds the host's memory; the config field is le32). */
export const MAX_CONTROLS = 4096;

export class SoundMixer {
  /** Every element, by control id. */
  readonly elements: SoundControlElement[] = [];
  /** Each stream's standard elements. */
  readonly streamControls: readonly SoundStreamControls[];
  /** Each stream's gain now (Q16). */
  readonly gains: Float64Array;

  constructor(streams: readonly StreamInfo[]) {
    this.gains = new Float64Array(streams.length).fill(UNITY_GAIN);
    this.streamControls = streams.map((s, i) => {
      const input = s.direction === SoundDirection.INPUT;
      const dir = input ? 'Capture' : 'Playback';
      const volume = this.add({
        name: `PCM ${dir} Volume`,
        index: i,
        role: SoundCtlRole.VOLUME,
        direction: s.direction,
        type: SoundCtlType.INTEGER,
        access: SoundCtlAccess.READ | SoundCtlAccess.WRITE | SoundCtlAccess.TLV_READ,
        min: 0,
        max: VOLUME_MAX,
        step: 1,
        value: [VOLUME_MAX],
        tlv: VOLUME_TLV,
        hdaFnNid: s.hdaFnNid,
      });
      const mute = this.add({ name: `PCM ${dir} Switch`, index: i, role: SoundCtlRole.MUTE, direction: s.direction, type: SoundCtlType.BOOLEAN, value: [1], hdaFnNid: s.hdaFnNid });
      const source = input ? this.add({ name: 'PCM Capture Source', index: i, type: SoundCtlType.ENUMERATED, items: CAPTURE_SOURCES, value: [0], hdaFnNid: s.hdaFnNid }) : null;
      return { volume, mute, source };
    });
  }

  /** Adds an element (checked: device/sound/13 to device/sound/16); returns its control id. */
  add(config: SoundControlConfig): number {
    const e = new SoundControlElement(config);
    if (this.elements.length >= MAX_CONTROLS) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `more than ${MAX_CONTROLS} control elements`);
    // device/sound/16: (name, index) unique.
    if (this.find(e.name, e.index) !== -1) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `control element (${JSON.stringify(e.name)}, ${e.index}) exists`);
    this.elements.push(e);
    return this.elements.length - 1;
  }

  /** The control id of (name, index), or -1. */
  find(name: string, index = 0): number {
    return this.elements.findIndex((x) => x.name === name && x.index === index);
  }

  /** The element `id`, or a VirtioError. */
  element(id: number): SoundControlElement {
    const e = this.elements[id];
    if (e === undefined) throw new VirtioError(ErrorCode.INVALID_ARGUMENT, `no control element ${id}`);
    return e;
  }

  /** Recomputes every stream's gain from its standard elements' values. */
  update(): void {
    this.streamControls.forEach((sc, i) => {
      const active = (id: number): SoundControlElement | null => {
        const e = this.elements[id]!;
        return e.has(SoundCtlAccess.INACTIVE) ? null : e;
      };
      const vol = active(sc.volume);
      const mute = active(sc.mute);
      const src = sc.source === null ? null : active(sc.source);
      let g = vol === null ? UNITY_GAIN : volumeGainQ16(vol.ints[0]!);
      if (mute !== null && mute.ints[0] === 0) g = 0;
      if (src !== null && src.ints[0] === 1) g = 0;
      this.gains[i] = g;
    });
  }
}
