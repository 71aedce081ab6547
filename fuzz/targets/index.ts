/** The fuzz targets, by name (each is fuzz/targets/<name>.ts exporting `target`). */
export const TARGETS = [
  'split-ring',
] as const;
export type TargetName = (typeof TARGETS)[number];
