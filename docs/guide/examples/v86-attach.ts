// Attach virtio-ts devices to the PCI bus of v86 (an x86 emulator in JavaScript) so the Linux
// kernel inside drives them with its own drivers. Type-checked only: a run needs SeaBIOS and an
// i386 kernel (scripts/install-v86-deps.sh); test/v86-*.test.ts run it for real.
import { EntropyDevice } from 'virtio-ts/devices';
import { type V86Attachment, type V86Cpu, attachV86Devices } from 'virtio-ts/transport';

/** The parts of v86's `V86` emulator object this needs (npm package `v86`). */
export interface V86Emulator {
  add_listener(event: string, listener: (arg: unknown) => void): void;
  run(): void;
  readonly v86: { readonly cpu: V86Cpu };
}

/**
 * Puts an entropy device on the emulator's PCI bus. Call it right after `new V86({...,
 * autostart: false })`: the devices must be on the bus before the firmware enumerates it.
 * Call the attachment's `detach()` before destroying the emulator.
 */
export function withEntropyDevice(emulator: V86Emulator): Promise<V86Attachment> {
  return new Promise((resolve, reject) => {
    emulator.add_listener('emulator-loaded', () => {
      try {
        // transitional: true also serves the legacy interface (I/O BAR0), for old drivers.
        const attachment = attachV86Devices(emulator.v86.cpu, [{ device: new EntropyDevice(), transitional: true }]);
        emulator.run();
        resolve(attachment);
      } catch (e) {
        reject(e);
      }
    });
  });
}
