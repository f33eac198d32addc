// The files of a sample release payload's top layer (release-manifests/…) and the component tag names,
// shaped like openshift/oc's `adm release new` output (see docs formats.md §1).

import { keystream, hexOf } from './keystream.js';
import { FIXED_MTIME, type TarEntry } from './tar-layer.js';
import { canonicalJson } from './layout-writer.js';

/** Real tag names of a 4.16 release, in a plausible order; beyond them, components are numbered. */
const REAL_COMPONENT_NAMES = [
  'cluster-version-operator', 'machine-os-images', 'etcd', 'hyperkube', 'cli', 'installer', 'pod',
  'oauth-server', 'console', 'cluster-network-operator', 'ovn-kubernetes', 'multus-cni', 'coredns',
  'haproxy-router', 'cluster-etcd-operator', 'cluster-kube-apiserver-operator',
  'cluster-kube-controller-manager-operator', 'cluster-kube-scheduler-operator',
  'cluster-authentication-operator', 'cluster-ingress-operator', 'cluster-dns-operator',
  'cluster-image-registry-operator', 'docker-registry', 'machine-config-operator', 'machine-api-operator',
  'cluster-monitoring-operator', 'prometheus', 'prometheus-operator', 'prometheus-alertmanager',
  'thanos', 'kube-state-metrics', 'prometheus-node-exporter', 'openshift-state-metrics',
  'cluster-samples-operator', 'cluster-storage-operator', 'csi-snapshot-controller', 'must-gather',
  'tools', 'rhel-coreos', 'oauth-proxy', 'operator-lifecycle-manager', 'operator-registry',
  'cluster-node-tuning-operator', 'cluster-openshift-apiserver-operator', 'openshift-apiserver',
  'openshift-controller-manager', 'cluster-config-operator', 'insights-operator', 'kube-rbac-proxy',
  'service-ca-operator', 'cluster-autoscaler', 'baremetal-installer', 'ironic', 'keepalived-ipfailover',
];

export function componentNames(count: number): string[] {
  const names = REAL_COMPONENT_NAMES.slice(0, count);
  for (let i = names.length; i < count; i++) names.push(`sample-component-${String(i + 1).padStart(3, '0')}`);
  return names;
}

export interface ReleaseTag {
  readonly name: string;
  /** The component's pull spec by digest (quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:…). */
  readonly pullSpec: string;
}

/** `release-manifests/image-references`: the ImageStream oc reads to find the components. */
export function imageReferences(version: string, seed: string, tags: readonly ReleaseTag[]): string {
  return canonicalJson({
    kind: 'ImageStream',
    apiVersion: 'image.openshift.io/v1',
    metadata: {
      name: version,
      creationTimestamp: new Date(FIXED_MTIME * 1000).toISOString().replace('.000Z', 'Z'),
      annotations: { 'release.openshift.io/from-image-stream': 'ocp/4.16-art-latest' },
    },
    spec: {
      lookupPolicy: { local: false },
      tags: tags.map((t) => ({
        name: t.name,
        annotations: {
          'io.openshift.build.commit.id': hexOf(`${seed}:commit:${t.name}`, 40),
          'io.openshift.build.source-location': `https://github.com/openshift/${t.name}`,
        },
        from: { kind: 'DockerImage', name: t.pullSpec },
        generation: null,
        importPolicy: {},
        referencePolicy: { type: '' },
      })),
    },
    status: { dockerImageRepository: '' },
  });
}

/** The previous minor's .0 as the single upgrade edge: enough for cincinnati-metadata-v0's shape. */
function previousVersions(version: string): string[] {
  const m = /^(\d+)\.(\d+)\./.exec(version);
  if (!m || Number(m[2]) === 0) return [];
  return [`${m[1]}.${Number(m[2]) - 1}.0`];
}

/** `release-manifests/release-metadata` (cincinnati-metadata-v0). */
export function releaseMetadata(version: string, multi: boolean): string {
  return canonicalJson({
    kind: 'cincinnati-metadata-v0',
    version,
    previous: previousVersions(version),
    metadata: {
      url: `https://access.redhat.com/errata/RHSA-sample-${version}`,
      ...(multi ? { 'release.openshift.io/architecture': 'multi' } : {}),
    },
  });
}

const MANIFESTS: ReadonlyArray<[string, (version: string) => string]> = [
  [
    '0000_00_cluster-version-operator_00_namespace.yaml',
    () => 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: openshift-cluster-version\n  annotations:\n    include.release.openshift.io/self-managed-high-availability: "true"\n',
  ],
  [
    '0000_50_sample_01_configmap.yaml',
    (version) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sample-release\n  namespace: openshift-config\ndata:\n  version: "${version}"\n`,
  ],
];

function textFile(name: string, text: string): TarEntry {
  const bytes = Buffer.from(text, 'utf8');
  return { kind: 'file', name, size: bytes.length, content: () => [bytes] };
}

/** The payload's top layer, entries in the order oc writes them. */
export function releaseLayerEntries(version: string, imageReferencesJson: string, multi: boolean): TarEntry[] {
  return [
    { kind: 'dir', name: 'release-manifests/' },
    textFile('release-manifests/image-references', imageReferencesJson),
    textFile('release-manifests/release-metadata', releaseMetadata(version, multi)),
    ...MANIFESTS.map(([file, body]) => textFile(`release-manifests/${file}`, body(version))),
  ];
}

/** A component's own layer: usr/share/<component>/data[-N].bin of random bytes plus a small README. */
export function componentLayerEntries(label: string, component: string, layer: number, size: number): TarEntry[] {
  const suffix = layer === 0 ? '' : `-${layer}`;
  return [
    { kind: 'dir', name: 'usr/' },
    { kind: 'dir', name: 'usr/share/' },
    { kind: 'dir', name: `usr/share/${component}/` },
    { kind: 'file', name: `usr/share/${component}/data${suffix}.bin`, size, content: () => keystream(label, size) },
    textFile(`usr/share/${component}/README${suffix}.txt`, `${component} sample layer ${layer} (${label})\n`),
  ];
}

/** A shared base layer, standing in for a RHEL base image layer. */
export function baseLayerEntries(label: string, index: number, size: number): TarEntry[] {
  return [
    { kind: 'dir', name: 'usr/' },
    { kind: 'dir', name: 'usr/lib/' },
    { kind: 'dir', name: `usr/lib/sample-base-${index}/` },
    { kind: 'file', name: `usr/lib/sample-base-${index}/data.bin`, size, content: () => keystream(label, size) },
    { kind: 'dir', name: 'etc/' },
    textFile(`etc/sample-base-${index}-release`, `NAME="Sample base layer ${index}"\nID=sample\n`),
  ];
}
