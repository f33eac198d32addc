// Every code a UserError can carry, declared once: the exit status the CLI gives it, the hint shown when the
// place that throws has no more specific one, and the section of docs/operator-guide.md that explains it.

/** 1: the work failed; 2: bad usage or input; 130: interrupted (as a shell reports SIGINT). */
export type ExitStatus = 1 | 2 | 130;

/** The troubleshooting sections of docs/operator-guide.md, by their heading's anchor. */
export const GUIDE_SECTIONS = {
  choosing: '41-choosing-images-bundle-plan-bundle-create',
  registries: '42-registries-and-the-release-bundle-plan-bundle-create',
  writing: '43-writing-the-bundle-bundle-create-keygen',
  reading: '44-reading-and-checking-bundles-bundle-inspect-bundle-verify-import-serve-the-service',
  node: '45-on-the-node-import-preload-run-serve-status-inventory',
  tooling: '46-demo-and-test-tooling',
} as const;

export type GuideAnchor = (typeof GUIDE_SECTIONS)[keyof typeof GUIDE_SECTIONS];

export interface ErrorKind {
  readonly exit: ExitStatus;
  /** Shown when the throw site gives no hint of its own. */
  readonly hint: string;
  /** The operator guide's section (docs/operator-guide.md#ANCHOR) whose table has a row for the code. */
  readonly anchor: GuideAnchor;
}

const { choosing, registries, writing, reading, node, tooling } = GUIDE_SECTIONS;

export const USER_ERRORS = {
  // 4.1 Choosing images
  SELECTION_EMPTY: { exit: 2, anchor: choosing, hint: 'give --release REF, --channel NAME, --image REF, --images-from FILE or --spec FILE' },
  USAGE: { exit: 2, anchor: choosing, hint: 'run with --help for usage' },
  REFERENCE_INVALID: { exit: 2, anchor: choosing, hint: 'write registry/repository:tag or registry/repository@sha256:<64 hex>' },
  DIGEST_INVALID: { exit: 2, anchor: choosing, hint: 'a digest is sha256: followed by 64 lowercase hex digits' },
  PLATFORM_INVALID: { exit: 2, anchor: choosing, hint: 'write OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64 or linux/arm64/v8' },
  BAD_SIZE: { exit: 2, anchor: choosing, hint: 'write a number with an optional unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)' },
  BUNDLE_SPEC_UNREADABLE: { exit: 2, anchor: choosing, hint: 'check the --spec path' },
  BUNDLE_SPEC_INVALID: { exit: 2, anchor: choosing, hint: 'see bundles/README.md for the keys a bundle spec may have' },
  IMAGE_LIST_UNREADABLE: { exit: 2, anchor: choosing, hint: 'check the path (inside a spec file it is relative to the spec)' },
  IMAGE_LIST_INVALID: { exit: 2, anchor: choosing, hint: 'fix that line of the list' },
  IMAGE_SET_CONFIG_INVALID: { exit: 2, anchor: choosing, hint: 'see docs/usage-plan.md for the ImageSetConfiguration fields pin-preload reads' },
  IMAGE_SET_SECTION_UNSUPPORTED: { exit: 2, anchor: choosing, hint: 'remove the section, or list its images under mirror.additionalImages' },
  CHANNEL_UNKNOWN: { exit: 2, anchor: choosing, hint: 'check the channel name, e.g. stable-4.16, fast-4.16, eus-4.16, candidate-4.17' },
  VERSION_NOT_IN_CHANNEL: { exit: 2, anchor: choosing, hint: 'pick a version the channel holds, or another channel (e.g. fast- or candidate-)' },
  NO_UPDATE_PATH: { exit: 2, anchor: choosing, hint: 'choose versions the channel connects (a newer minimum, or another channel such as an eus- or fast- one), or give each release with --release' },
  GRAPH_UNREACHABLE: { exit: 1, anchor: choosing, hint: 'check --graph-url and the network (or a proxy); on a disconnected bastion give --release REF instead of --channel' },
  GRAPH_INVALID: { exit: 1, anchor: choosing, hint: "check --graph-url: it must be the update service's graph endpoint (…/api/upgrades_info/v1/graph)" },
  SIGNATURE_STORE_FAILED: { exit: 1, anchor: choosing, hint: 'check --signature-store (its root, ending in …/signatures/openshift/release) and the network' },
  RELEASE_UNSIGNED: { exit: 1, anchor: choosing, hint: 'check the signature store; --allow-unsigned-releases bundles the release anyway (the cluster then needs a forced update)' },
  RELEASE_SIGNATURE_INVALID: { exit: 1, anchor: choosing, hint: 'check --signature-store: it must be the store root, whose sha256=<hex>/signature-N files are release signatures' },
  RELEASE_SIGNATURE_MISMATCH: { exit: 1, anchor: choosing, hint: 'do not use that store: it holds a signature of another image under this release digest' },
  RELEASE_SIGNATURE_UNTRUSTED: { exit: 1, anchor: choosing, hint: 'use the right keyring (OpenShift: openshift/cluster-update-keys)' },
  GPG_MISSING: { exit: 1, anchor: choosing, hint: 'install GnuPG (gpgv), or leave out --release-keyring' },
  SINCE_UNREADABLE: { exit: 2, anchor: choosing, hint: 'give --since the previous bundle (its .seal.json, its tar or first volume) or a node inventory from "pin-preload inventory"' },
  SINCE_EMPTY: { exit: 2, anchor: choosing, hint: 'make a full bundle (leave out --since) for a node that has no bundle yet' },
  SOURCE_DATE_EPOCH_INVALID: { exit: 2, anchor: choosing, hint: 'unset SOURCE_DATE_EPOCH or give whole seconds since 1970' },

  // 4.2 Registries and the release
  REGISTRIES_CONF_INVALID: { exit: 2, anchor: registries, hint: 'see containers-registries.conf(5) for the v2 format' },
  REGISTRY_BLOCKED: { exit: 1, anchor: registries, hint: 'add a [[registry.mirror]] for it, or refer to the image by digest' },
  AUTHFILE_INVALID: { exit: 2, anchor: registries, hint: 'the format is containers-auth.json(5): {"auths":{"HOST[/NAMESPACE]":{"auth":"base64(user:password)"}},"credHelpers":{"HOST":"NAME"},"credsStore":"NAME"}' },
  CREDENTIAL_HELPER_FAILED: { exit: 1, anchor: registries, hint: 'install the helper or put it on PATH, or give --authfile FILE with the credentials in "auths"' },
  PUSH_REFUSED: { exit: 1, anchor: registries, hint: 'give --authfile FILE with credentials that may push to that repository (HTTP 405: the target is read-only, e.g. a pull-through cache)' },
  PUSH_FAILED: { exit: 1, anchor: registries, hint: 'check the target registry (its log, free disk), then run the same command again: it goes on where it stopped' },
  REGISTRY_UNAUTHORIZED: { exit: 1, anchor: registries, hint: 'give credentials with --authfile FILE (containers-auth.json format) or REGISTRY_AUTH_FILE' },
  REGISTRY_UNREACHABLE: { exit: 1, anchor: registries, hint: 'check the host and the route from here, then run again (bundle create resumes)' },
  REGISTRY_ERROR: { exit: 1, anchor: registries, hint: 'retry later; check the registry or a proxy in front of it' },
  MANIFEST_UNKNOWN: { exit: 1, anchor: registries, hint: 'check the tag or digest (for a release: the version and architecture suffix, e.g. 4.16.3-x86_64)' },
  BLOB_UNKNOWN: { exit: 1, anchor: registries, hint: 'the registry lists a blob it does not have: fix or bypass that mirror, then run again' },
  DIGEST_MISMATCH: { exit: 1, anchor: registries, hint: 'a registry or proxy served other bytes than the digest names: check it, then run again' },
  MANIFEST_INVALID: { exit: 1, anchor: registries, hint: 'use another image (schema 2 or OCI); schema 1 images are not supported' },
  NESTED_INDEX: { exit: 1, anchor: registries, hint: 'refer to the child index by its digest' },
  PLATFORM_NOT_FOUND: { exit: 1, anchor: registries, hint: 'choose one of the available platforms with --platform OS/ARCH' },
  RELEASE_NO_IMAGE_REFERENCES: { exit: 1, anchor: registries, hint: 'check that --release names an OpenShift release image; other images go in --image' },
  RELEASE_IMAGE_REFERENCES_INVALID: { exit: 1, anchor: registries, hint: 'report it with the release name' },
  RELEASE_METADATA_INVALID: { exit: 1, anchor: registries, hint: 'report it with the release name' },
  RELEASE_TAG_INVALID: { exit: 1, anchor: registries, hint: 'report it with the release name' },
  RELEASE_TAG_NOT_BY_DIGEST: { exit: 1, anchor: registries, hint: 'build the release with "oc adm release new" so that it refers to its components by digest' },
  RELEASE_LAYER_UNREADABLE: { exit: 1, anchor: registries, hint: 'only gzip-compressed and uncompressed tar layers can be searched for release-manifests/' },
  RELEASE_FILE_TOO_LARGE: { exit: 1, anchor: registries, hint: 'this is not a normal release payload: check --release' },
  RELEASE_NESTED_INDEX: { exit: 1, anchor: registries, hint: 'use the per-architecture release tag' },

  // 4.3 Writing the bundle
  DISK_SPACE: { exit: 1, anchor: writing, hint: 'free space there, choose another --output directory, or bundle fewer images; nothing was downloaded' },
  DISK_FULL: { exit: 1, anchor: writing, hint: 'free space there and run the same command again: finished blobs are kept and not fetched again' },
  BUNDLE_DISK_FAILED: { exit: 1, anchor: writing, hint: 'check the device and its mount (the kernel log, a read-only remount), then run the same command again: finished blobs are kept and not fetched again' },
  BUNDLE_BUSY: { exit: 1, anchor: writing, hint: 'wait for the other run to finish, or stop it' },
  INTERRUPTED: { exit: 130, anchor: writing, hint: 'run the same command again to resume' },
  BUNDLE_BLOBS_FAILED: { exit: 1, anchor: writing, hint: 'fix the cause shown per blob and run the same command again' },
  KEY_EXISTS: { exit: 2, anchor: writing, hint: 'choose another --output path or remove the old key first' },
  KEY_UNREADABLE: { exit: 2, anchor: writing, hint: 'check the key path and its permissions' },
  KEY_INVALID: { exit: 2, anchor: writing, hint: 'create one with "pin-preload keygen --output KEY"' },

  // 4.4 Reading and checking bundles
  BUNDLE_NOT_FOUND: { exit: 1, anchor: reading, hint: 'give the path of the bundle tar, of one of its volumes, or of its .seal.json file' },
  BUNDLE_VOLUME_MISSING: { exit: 1, anchor: reading, hint: 'copy every volume listed in the seal next to it' },
  BUNDLE_VOLUME_SIZE: { exit: 1, anchor: reading, hint: 'the volume is incomplete or from another bundle: copy it again, then run "pin-preload bundle verify"' },
  BUNDLE_TRUNCATED: { exit: 1, anchor: reading, hint: 'the volume is incomplete: copy it again from the bastion' },
  BUNDLE_UNSEALED: { exit: 1, anchor: reading, hint: 'copy the .seal.json file next to the volumes; without it the bundle may be incomplete (run "pin-preload bundle verify")' },
  BUNDLE_PUBLISH_INTERRUPTED: { exit: 1, anchor: reading, hint: 'run the same "pin-preload bundle create" command again to finish it' },
  BUNDLE_SEAL_INVALID: { exit: 1, anchor: reading, hint: 'copy the .seal.json file again from the bastion, or re-create the bundle' },
  BUNDLE_MANIFEST_INVALID: { exit: 1, anchor: reading, hint: 'the bundle is damaged or was not made by pin-preload; run "pin-preload bundle verify" on it' },
  BUNDLE_FORMAT_UNSUPPORTED: { exit: 1, anchor: reading, hint: 'use the pin-preload version that created the bundle, or a newer one' },
  BUNDLE_READ_FAILED: { exit: 1, anchor: reading, hint: 'EIO means damaged media or a bad copy, EACCES a file this user may not read: check the device (the kernel log) or the file\'s permissions, copy that file again, then verify again' },
  BUNDLE_DAMAGED: { exit: 1, anchor: reading, hint: 'run "pin-preload bundle verify" on it; copy damaged volumes again or re-create the bundle' },
  BUNDLE_BASE_MISSING: { exit: 1, anchor: reading, hint: 'import the base bundle again, or remove the delta (seal first) and import a full bundle of its release' },
  BUNDLE_VERIFY_FAILED: { exit: 1, anchor: reading, hint: 'run "pin-preload bundle verify" on it for the full report; copy damaged volumes again or re-create the bundle' },
  BUNDLE_SIGNATURE_INVALID: { exit: 1, anchor: reading, hint: 'sign the bundle with the key whose .pub the node trusts and copy its .sig next to the seal; a bundle changed after signing must not be used' },

  // 4.5 On the node
  CONFIG_UNREADABLE: { exit: 2, anchor: node, hint: 'check the configuration file exists and may be read' },
  CONFIG_INVALID: { exit: 2, anchor: node, hint: 'see docs/node.md for every key and its format' },
  STATE_OPEN_FAILED: { exit: 1, anchor: node, hint: 'check the path and its permissions (--state or [paths] state in the config)' },
  STATE_MISSING: { exit: 1, anchor: node, hint: 'nothing has been imported or pre-loaded on this node yet, or --state / [paths] state is wrong' },
  IMPORT_BASE_MISSING: { exit: 1, anchor: node, hint: 'import the base first, then the delta; or bring a full bundle (made without --since)' },
  IMPORT_REJECTED: { exit: 1, anchor: node, hint: 'copy the bundle again from the bastion' },
  IMPORT_NO_SPACE: { exit: 1, anchor: node, hint: 'free space there (or set [paths] bundles to a larger filesystem) and import again' },
  IMPORT_FAILED: { exit: 1, anchor: node, hint: 'check the device and the bundle dir (ReadWritePaths= in both units for a custom one), then import again' },
  IMPORT_CANCELLED: { exit: 1, anchor: node, hint: 'import again: nothing of this import was kept' },
  LISTEN_INVALID: { exit: 2, anchor: node, hint: 'write HOST:PORT, e.g. 127.0.0.1:5000 (0.0.0.0:5000 to serve every interface)' },
  LISTEN_FAILED: { exit: 1, anchor: node, hint: 'check the address and your permissions' },
  TLS_FILE_UNREADABLE: { exit: 2, anchor: node, hint: 'check [mirror] tls_cert and tls_key (both or neither)' },
  BUNDLE_DIR_UNREADABLE: { exit: 1, anchor: node, hint: 'check --bundle-dir or [paths] bundles names a readable directory' },
  CRI_ENDPOINT_INVALID: { exit: 2, anchor: node, hint: 'set [runtime] endpoint to unix:///var/run/crio/crio.sock or unix:///run/containerd/containerd.sock' },
  CRI_UNREACHABLE: { exit: 1, anchor: node, hint: 'is crio (or containerd) running on this node? is the [runtime] endpoint in the configuration right?' },
  IMAGE_FS_UNKNOWN: { exit: 1, anchor: node, hint: "set [runtime] image_fs to the directory holding the runtime's images (e.g. /var/lib/containers/storage)" },
  IMAGE_FS_UNREADABLE: { exit: 1, anchor: node, hint: "check [runtime] image_fs (or the runtime's ImageFsInfo mountpoint) exists on this node" },
  STORAGE_INSUFFICIENT: { exit: 1, anchor: node, hint: 'free space on the image filesystem, grow it, or lower [storage] reserve' },
  PREFETCH_FAILED: { exit: 1, anchor: node, hint: 'fix the first error; the service retries every 60 s, or run "pin-preload preload" with the service stopped' },
  PRELOAD_CANCELLED: { exit: 1, anchor: node, hint: 'it resumes where it stopped on the next run' },
  CONTAINERD_IMAGES_FAILED: { exit: 1, anchor: node, hint: 'the images API is served on the same socket as the CRI ([runtime] endpoint); is containerd running?' },
  RUNTIME_FILE_FAILED: { exit: 1, anchor: node, hint: 'check the [runtime] key the message names: set it to "" if this runtime does not use that file' },
  RUNTIME_RELOAD_FAILED: { exit: 1, anchor: node, hint: 'check [runtime] reload in the configuration and that the runtime service is running' },
  HOSTS_TOML_FOREIGN: { exit: 1, anchor: node, hint: 'merge an entry for the mirror into it yourself, or move it away and run preload again' },
  REGISTRIES_DROPIN_FOREIGN: { exit: 1, anchor: node, hint: 'set [runtime] registries_dropin to a file name of our own' },
  INVENTORY_INVALID: { exit: 2, anchor: node, hint: 'give the file `pin-preload inventory --output FILE` wrote on the node, copied unchanged' },
  INVENTORY_UNREADABLE: { exit: 2, anchor: node, hint: 'check the path' },
  INVENTORY_WRITE_FAILED: { exit: 1, anchor: node, hint: 'give --output a path in a writable directory with room for the file' },

  // 4.6 Demo and test tooling
  DEMO_STEP_FAILED: { exit: 1, anchor: tooling, hint: 'the step printed its own error above: fix that' },
  LAYOUT_INVALID: { exit: 1, anchor: tooling, hint: 'point at a directory holding oci-layout, index.json and blobs/' },
  SAMPLE_MISSING: { exit: 1, anchor: tooling, hint: 'generate it first with generateSampleRelease()' },
  SAMPLE_PARAM_INVALID: { exit: 2, anchor: tooling, hint: 'fix the parameter' },
} as const satisfies Record<string, ErrorKind>;

/** A code of the table: a misspelt code is a compile error where it is thrown. */
export type UserErrorCode = keyof typeof USER_ERRORS;

/**
 * A failed CRI call carries its gRPC status name as its code (docs/operator-guide.md 4.5 has one row for
 * them all). The names are grpc.status's (a unit test keeps them equal); `GRPC_<n>` for a number it lacks.
 */
export const GRPC_STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

export type CriStatusCode = (typeof GRPC_STATUS_NAMES)[number] | `GRPC_${number}`;

export const CRI_CALL_FAILED: ErrorKind = {
  exit: 1,
  anchor: node,
  hint: 'see the details: UNAVAILABLE means the runtime restarted or stopped, DEADLINE_EXCEEDED a pull slower than [pull] timeout allows',
};

/** Every code an error a user can act on may carry. */
export type ErrorCode = UserErrorCode | CriStatusCode;

function isTableCode(code: string): code is UserErrorCode {
  return Object.hasOwn(USER_ERRORS, code);
}

/** The table's entry for a code; CRI status names share one. */
export function errorKind(code: ErrorCode): ErrorKind {
  return isTableCode(code) ? USER_ERRORS[code] : CRI_CALL_FAILED;
}
