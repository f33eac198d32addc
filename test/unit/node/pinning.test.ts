import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveConfig } from '../../../src/node/config.js';
import { containerdPinning, pinMethod, pinningDescription } from '../../../src/node/pinning.js';

const config = (kind: 'crio' | 'containerd', pinnedFile?: string) =>
  resolveConfig(new Map<string, unknown>([['runtime.kind', kind], ...(pinnedFile === undefined ? [] : [['runtime.pinned_images_file', pinnedFile] as [string, unknown]])]), new Map(), undefined);

test('containerd honours the pinned label from 1.7.3, and takes a change in at once from 1.7.10, whatever the packaging suffix', () => {
  for (const version of ['1.7.10', '1.7.24~ds1', 'v1.7.13', '1.8.0', '2.0.1', 'v2.1.0-rc.1']) assert.equal(containerdPinning(version), 'live', version);
  for (const version of ['1.7.3', 'v1.7.9', '1.7.5-0ubuntu1']) assert.equal(containerdPinning(version), 'after-restart', version);
  for (const version of ['1.7.2', '1.7', '1.6.20~ds1', 'v1.6.33', '1.5.9', '', 'unknown']) assert.equal(containerdPinning(version), 'none', version);
});

test('the pin method follows what CRI Version says the runtime is, and says why when there is none', () => {
  const v = (runtimeName: string, runtimeVersion: string) => ({ runtimeName, runtimeVersion, runtimeApiVersion: 'v1' });
  assert.deepEqual(pinMethod(config('containerd'), v('containerd', '1.7.24~ds1')), { kind: 'containerd-label', runtime: 'containerd 1.7.24~ds1', live: true });
  const early = pinMethod(config('containerd'), v('containerd', '1.7.5'));
  assert.deepEqual(early, { kind: 'containerd-label', runtime: 'containerd 1.7.5', live: false });
  assert.match(pinningDescription(early, config('containerd'), 2), /^2 image\(s\) labelled io\.cri-containerd\.pinned=pinned but not reported pinned yet: containerd 1\.7\.5 takes a label change in only when containerd restarts/);
  const old = pinMethod(config('containerd'), v('containerd', '1.6.20~ds1'));
  assert.equal(old.kind, 'none');
  assert.match(pinningDescription(old, config('containerd'), 3), /^not protected: containerd 1\.6\.20~ds1 never reports an image pinned \(containerd pins from 1\.7\.3 on, at once from 1\.7\.10\); .* may remove 3 unused image\(s\)/);
  assert.deepEqual(pinMethod(config('crio'), v('cri-o', '1.29.6')), { kind: 'crio-pinned-images', runtime: 'cri-o 1.29.6' });
  const noFile = pinMethod(config('crio', ''), v('cri-o', '1.29.6'));
  assert.equal(noFile.kind, 'none');
  assert.match(pinningDescription(noFile, config('crio', ''), 1), /pinned_images_file is ""/);
});
