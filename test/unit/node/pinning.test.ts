import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveConfig } from '../../../src/node/config.js';
import { containerdPins, pinMethod, pinningDescription } from '../../../src/node/pinning.js';

const config = (kind: 'crio' | 'containerd', pinnedFile?: string) =>
  resolveConfig(new Map<string, unknown>([['runtime.kind', kind], ...(pinnedFile === undefined ? [] : [['runtime.pinned_images_file', pinnedFile] as [string, unknown]])]), new Map(), undefined);

test('containerd pins from 1.7 on, whatever the packaging suffix', () => {
  for (const version of ['1.7.0', '1.7.24~ds1', 'v1.7.13', '1.8.0', '2.0.1', 'v2.1.0-rc.1']) assert.ok(containerdPins(version), version);
  for (const version of ['1.6.20~ds1', 'v1.6.33', '1.5.9', '', 'unknown']) assert.equal(containerdPins(version), false, version);
});

test('the pin method follows what CRI Version says the runtime is, and says why when there is none', () => {
  const v = (runtimeName: string, runtimeVersion: string) => ({ runtimeName, runtimeVersion, runtimeApiVersion: 'v1' });
  assert.deepEqual(pinMethod(config('containerd'), v('containerd', '1.7.24~ds1')), { kind: 'containerd-label', runtime: 'containerd 1.7.24~ds1' });
  const old = pinMethod(config('containerd'), v('containerd', '1.6.20~ds1'));
  assert.equal(old.kind, 'none');
  assert.match(pinningDescription(old, config('containerd'), 3), /^not protected: containerd 1\.6\.20~ds1 never reports an image pinned \(containerd pins from 1\.7 on\); .* may remove 3 unused image\(s\)/);
  assert.deepEqual(pinMethod(config('crio'), v('cri-o', '1.29.6')), { kind: 'crio-pinned-images', runtime: 'cri-o 1.29.6' });
  const noFile = pinMethod(config('crio', ''), v('cri-o', '1.29.6'));
  assert.equal(noFile.kind, 'none');
  assert.match(pinningDescription(noFile, config('crio', ''), 1), /pinned_images_file is ""/);
});
