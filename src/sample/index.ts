// The sample-release fixture: generate an OpenShift-like release as an OCI layout, load it, push it.
// Used by tests, benchmarks and the shipped demo; parameters are documented on SampleParams.

export { DEFAULT_SAMPLE_PARAMS, resolveSampleParams, type SampleParams } from './params.js';
export {
  generateSampleRelease,
  loadSampleRelease,
  COMPONENT_REPOSITORY,
  RELEASE_REPOSITORY,
  EXTRA_REPOSITORY_PREFIX,
  SAMPLE_FILE,
  type SampleRelease,
  type SampleComponent,
  type SampleExtraImage,
  type SampleImage,
} from './generate.js';
export { pushLayout, type PushOptions, type PushStats } from './push.js';
export { REF_NAME_ANNOTATION } from './layout-writer.js';
