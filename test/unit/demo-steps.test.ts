// The demo's narrator: a step's `only` filter trims what the step prints on stdout, never its error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { DemoNarrator } from '../../src/demo/steps.js';
import { UserError } from '../../src/util/errors.js';

test('a failing step with an output filter still shows its own error and hint (stderr is not filtered)', async () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const say = new DemoNarrator(1, out);
  await assert.rejects(say.run(['bundle', 'inspect', '/nonexistent/pin-preload-demo.tar'], { only: /^Delta since:/ }), (err: unknown) => err instanceof UserError && err.code === 'DEMO_STEP_FAILED');
  assert.match(text, /^ {6}pin-preload: error: .*\/nonexistent\/pin-preload-demo\.tar/m, text);
  assert.match(text, /^ {8}hint: /m, text);
});
