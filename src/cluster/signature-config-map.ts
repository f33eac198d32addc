// The ConfigMaps the cluster-version operator reads release signatures from in a disconnected cluster: one
// per release, in openshift-config-managed, labelled for the CVO, binaryData `sha256-<hex>-<N>`.

import type { BundleRelease } from '../bundle/format.js';
import { carriedSignatures } from '../bundle/release-signatures.js';
import { digestHex } from '../oci/digest.js';

export const SIGNATURE_NAMESPACE = 'openshift-config-managed';
/** The CVO lists ConfigMaps with this label (any value) in SIGNATURE_NAMESPACE as a signature store. */
export const SIGNATURE_LABEL = 'release.openshift.io/verification-signatures';

export interface SignatureConfigMapObject {
  readonly apiVersion: 'v1';
  readonly kind: 'ConfigMap';
  readonly metadata: { readonly name: string; readonly namespace: string; readonly labels: Record<string, string> };
  readonly binaryData: Record<string, string>;
}

/**
 * The release's ConfigMap, or undefined when the bundle carries no signature of it. Named `sha256-<hex>` as
 * `oc adm release mirror` names it, so applying both for one release updates one object instead of two.
 */
export function signatureConfigMap(release: BundleRelease): SignatureConfigMapObject | undefined {
  const signatures = carriedSignatures(release);
  if (signatures.length === 0) return undefined;
  const prefix = `sha256-${digestHex(release.digest)}`;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: prefix, namespace: SIGNATURE_NAMESPACE, labels: { [SIGNATURE_LABEL]: '' } },
    binaryData: Object.fromEntries(signatures.map((s) => [`${prefix}-${s.index}`, s.bytes.toString('base64')])),
  };
}
