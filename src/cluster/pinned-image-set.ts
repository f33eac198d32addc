// PinnedImageSets (machineconfiguration.openshift.io/v1) for a bundle's images: one or more per machine
// config pool, each within the CRD's limits, every image name checked against the CRD's own rules.

export const PINNED_IMAGE_SET_API_VERSION = 'machineconfiguration.openshift.io/v1';
/** The label by which the MCO applies a set to a pool (MachineConfigPool selects on it). */
export const POOL_ROLE_LABEL = 'machineconfiguration.openshift.io/role';
/** spec.pinnedImages: `minItems: 1`, `maxItems: 500` in the CRD (openshift/api machineconfiguration/v1 types_pinnedimageset.go). */
export const MAX_PINNED_IMAGES = 500;
/** PinnedImageRef.name: `maxLength: 447`. */
export const MAX_PINNED_NAME_LENGTH = 447;

// The CRD's two x-kubernetes-validations rules on PinnedImageRef.name
// (0000_80_machine-config_01_pinnedimagesets.crd.yaml):
//   self.split('@').size() == 2 && self.split('@')[1].matches('^sha256:[a-f0-9]{64}$')
//   self.split('@')[0].matches('^([a-zA-Z0-9-]+\.)+[a-zA-Z0-9-]+(:[0-9]{2,5})?/([a-zA-Z0-9-_]{0,61}/)?[a-zA-Z0-9-_.]*?$')
// i.e. host[:port][/namespace]/name: a host with a dot, at most ONE namespace level, no "/" in the name.
const DIGEST_RULE = /^sha256:[a-f0-9]{64}$/;
const NAME_RULE = /^([a-zA-Z0-9-]+\.)+[a-zA-Z0-9-]+(:[0-9]{2,5})?\/([a-zA-Z0-9-_]{0,61}\/)?[a-zA-Z0-9-_.]*?$/;

/** Why `name` cannot be a PinnedImageSet entry, or undefined when the API server will accept it. */
export function pinnedNameProblem(name: string): string | undefined {
  if (name.length < 1 || name.length > MAX_PINNED_NAME_LENGTH) return `is ${name.length} characters long; a PinnedImageSet name has 1 to ${MAX_PINNED_NAME_LENGTH}`;
  const parts = name.split('@');
  if (parts.length !== 2 || !DIGEST_RULE.test(parts[1]!)) return "must end with a valid '@sha256:<64 hex>' suffix";
  if (!NAME_RULE.test(parts[0]!)) {
    const repo = parts[0]!;
    const slash = repo.indexOf('/');
    const host = slash === -1 ? repo : repo.slice(0, slash);
    if (!host.includes('.')) return `has host "${host}" without a dot; the PinnedImageSet rule wants host[:port][/namespace]/name with a dotted host`;
    if (repo.split('/').length > 3) return `has ${repo.split('/').length - 2} namespace levels; the PinnedImageSet rule allows host[:port][/namespace]/name (at most one)`;
    return 'does not match host[:port][/namespace]/name (the PinnedImageSet CRD rule)';
  }
  return undefined;
}

export interface PinnedImageSetObject {
  readonly apiVersion: typeof PINNED_IMAGE_SET_API_VERSION;
  readonly kind: 'PinnedImageSet';
  readonly metadata: { readonly name: string; readonly labels: Readonly<Record<string, string>> };
  readonly spec: { readonly pinnedImages: ReadonlyArray<{ readonly name: string }> };
}

/**
 * The sets for one pool: `names` deduplicated and sorted, cut into sets of at most `perSet` (the CRD's
 * 500). One set is named `<base>-<pool>`; several are `<base>-<pool>-1`, `-2`, …, so the same images give
 * the same objects. `names` must already be checked with pinnedNameProblem.
 */
export function pinnedImageSetsForPool(base: string, pool: string, names: readonly string[], perSet = MAX_PINNED_IMAGES): PinnedImageSetObject[] {
  const sorted = [...new Set(names)].sort();
  const chunks: string[][] = [];
  for (let i = 0; i < sorted.length; i += perSet) chunks.push(sorted.slice(i, i + perSet));
  return chunks.map((chunk, i) => ({
    apiVersion: PINNED_IMAGE_SET_API_VERSION,
    kind: 'PinnedImageSet',
    metadata: { name: chunks.length === 1 ? `${base}-${pool}` : `${base}-${pool}-${i + 1}`, labels: { [POOL_ROLE_LABEL]: pool } },
    spec: { pinnedImages: chunk.map((name) => ({ name })) },
  }));
}
