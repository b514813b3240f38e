// The set-up every browser test file shares: useStack() registers one stack (lib/stack.mjs)
// for the file, started before its tests; after them, every browser opened with openBrowser() is
// closed and the stack stopped (by PID) and its state removed, also when a test failed. Node's
// test runner runs each file in its own process, so the file's stack can be a module binding.
import { after, before } from 'node:test';

import { close, launch } from './browser.mjs';
import { startStack } from './stack.mjs';

/** The file's stack, once its before() hook has run. */
export let stack = null;
const browsers = [];

// env: variables the stack's daemons read, set before it starts (e.g. a flush interval).
export function useStack({ env = {} } = {}) {
  before(async () => {
    Object.assign(process.env, env);
    stack = await startStack();
  });
  after(async () => {
    for (const b of browsers) await close(b);
    if (stack) {
      await stack.stop();
      await stack.cleanup();
    }
  });
}

// A fresh browser (lib/browser.mjs) on the file's stack, closed after the file's tests.
export async function openBrowser(label) {
  const b = await launch(stack, label);
  browsers.push(b);
  return b;
}
