/**
 * Command-line options of the commands that serve a host folder through HostFs (`virtio-ts fs`
 * and `virtio-ts 9p`): the uid/gid translation maps and the xattr name prefix, checked the same
 * way for both (a bad value is a CliError naming the option).
 */
import { CliError, CliFault, stringOption, type OptionValues } from '../../cli/options.js';
import { IdMap } from './id-map.js';
import { XattrMap } from './xattr-map.js';

/** The texts of `--translate-uid`, `--translate-gid` and `--xattr-prefix` that were given, each checked. */
export interface ShareOptionTexts {
  translateUid?: string;
  translateGid?: string;
  xattrPrefix?: string;
}

/** `text` of option `opt` checked by `check` (which throws on a bad value), as a CliError of `command`. */
function checked(opt: string, text: string, check: (t: string) => unknown, command: string): string {
  try {
    check(text);
  } catch (e) {
    throw new CliError(CliFault.BAD_VALUE, `--${opt}: ${(e as Error).message}`, command);
  }
  return text;
}

/** `--translate-uid`, `--translate-gid` (IdMap.parse) and `--xattr-prefix` (XattrMap) of `command`: the ones given. */
export function shareOptionTexts(v: OptionValues, command: string): ShareOptionTexts {
  const out: ShareOptionTexts = {};
  const uid = stringOption(v, 'translate-uid');
  if (uid !== undefined) out.translateUid = checked('translate-uid', uid, (t) => IdMap.parse(t), command);
  const gid = stringOption(v, 'translate-gid');
  if (gid !== undefined) out.translateGid = checked('translate-gid', gid, (t) => IdMap.parse(t), command);
  const prefix = stringOption(v, 'xattr-prefix');
  if (prefix !== undefined) out.xattrPrefix = checked('xattr-prefix', prefix, (t) => new XattrMap(t), command);
  return out;
}
