// scripts/web-build (S12): content-hashed names, Subresource Integrity on every reference, ES
// module imports rewritten to the hashed file each specifier resolves to, pages sharing markup
// through include/ fragments. Run: node web_build.test.mjs <scripts/web-build> <web dir>.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const [script, webDir] = process.argv.slice(2);
if (!script || !webDir) throw new Error('usage: web_build.test.mjs <scripts/web-build> <web dir>');

const sri = (buf) => `sha384-${createHash('sha384').update(buf).digest('base64')}`;

// Writes files ({path: content}) under a fresh folder; returns it.
async function tree(files) {
  const dir = await mkdtemp(join(tmpdir(), 'web-build-src-'));
  for (const [p, c] of Object.entries(files)) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), c);
  }
  return dir;
}

// Builds src into a fresh out folder: {out, code, stderr, manifest}.
async function build(src) {
  const parent = await mkdtemp(join(tmpdir(), 'web-build-out-'));
  const out = join(parent, 'web');
  try {
    await run('bash', [script, src, out]);
  } catch (e) {
    return { out, parent, code: e.code, stderr: e.stderr };
  }
  const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
  return { out, parent, code: 0, stderr: '', manifest };
}

// Builds a tree made of files ({path: content}) and runs check on the result; removes both.
async function withBuild(filesIn, check) {
  const src = await tree(filesIn);
  const b = await build(src);
  try {
    await check(b);
  } finally {
    await rm(src, { recursive: true, force: true });
    await rm(b.parent, { recursive: true, force: true });
  }
}

async function files(dir) {
  const all = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) all.push(relative(dir, join(e.parentPath ?? e.path, e.name)));
  return all.sort();
}

const importSpecs = (code) => [...code.matchAll(/(?:from|import) +['"](\.\.?\/[^'"]+)['"]/g)].map((m) => m[1]);

// Every src/href in a page names a built file, with that file's sha384 as its integrity.
async function checkPage(out, page) {
  const html = await readFile(join(out, page), 'utf8');
  const refs = [...html.matchAll(/(?:src|href)="(\/[^"]*)"( integrity="([^"]*)")?/g)];
  const assets = refs.filter((m) => m[1].startsWith('/assets/'));
  assert.ok(assets.length > 0, `${page} references assets`);
  for (const [, path, , integrity] of assets) {
    const body = await readFile(join(out, path));
    assert.equal(integrity, sri(body), `${page}: integrity of ${path}`);
  }
  return html;
}

// Every file the manifest lists is there, with the sha384 the manifest gives.
async function checkManifest(b) {
  for (const f of b.manifest.files) assert.equal(f.integrity, sri(await readFile(join(b.out, f.file))), f.name);
}

// Every relative import of every built module names a built file.
async function checkImports(out) {
  for (const f of (await files(out)).filter((f) => f.endsWith('.js'))) {
    for (const spec of importSpecs(await readFile(join(out, f), 'utf8'))) {
      const target = posix.join(posix.dirname(f), spec);
      await readFile(join(out, target)).catch(() => assert.fail(`${f} imports ${spec}: no such built file`));
    }
  }
}

test('imports resolve by path: two modules with the same name in two folders stay apart', () =>
  withBuild({
    'js/a/x.js': "export const who = 'a';\n",
    'js/b/x.js': "export const who = 'b';\n",
    // Both specifiers end in x.js; a rewrite by base name sends both to one file.
    'js/b/main.js': "import { who as A } from '../a/x.js';\nimport { who as B } from \"./x.js\";\nexport const got = [A, B];\n",
    'js/a/y.js': "import { who as A } from './x.js';\nimport { who as B } from '../b/x.js';\nexport const got = [A, B];\n",
    'index.html': '<!doctype html><head><!--MODULES-->\n<script type="module" src="/js/b/main.js"></script></head>\n',
  }, async (b) => {
    assert.equal(b.code, 0, b.stderr);
    const byName = Object.fromEntries(b.manifest.files.map((f) => [f.name, f]));
    assert.notEqual(byName['js/a/x.js'].file, byName['js/b/x.js'].file);
    // Node runs the built modules: each import reached the file its specifier names.
    for (const [m, want] of [['js/b/main.js', ['a', 'b']], ['js/a/y.js', ['a', 'b']]]) {
      const mod = await import(pathToFileURL(join(b.out, byName[m].file)).href);
      assert.deepEqual(mod.got, want, m);
    }
    const main = await readFile(join(b.out, byName['js/b/main.js'].file), 'utf8');
    assert.deepEqual(importSpecs(main), [`../a/${posix.basename(byName['js/a/x.js'].file)}`,
      `./${posix.basename(byName['js/b/x.js'].file)}`]);
    await checkImports(b.out);
    // The page preloads the whole closure (main and both x.js, not y.js), each with SRI.
    const html = await checkPage(b.out, 'index.html');
    const preloads = [...html.matchAll(/rel="modulepreload" href="([^"]+)"/g)].map((m) => m[1]).sort();
    assert.deepEqual(preloads, ['js/a/x.js', 'js/b/main.js', 'js/b/x.js'].map((n) => byName[n].path).sort());
    await checkManifest(b);
  }));

test('include/ fragments: expanded in place with the marker\'s indentation, their references get SRI, not served', () =>
  withBuild({
    'include/part.html': '<p id="shared">one source</p>\n<img src="/pic.svg" alt="">\n\n<div>\n  <span>x</span>\n</div>\n',
    'pic.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>\n',
    'one.html': '<main>\n    <!--INCLUDE part.html-->\n  <p>one</p>\n</main>\n',
    'two.html': '<main>\n  <!--INCLUDE part.html-->\n</main>\n',
  }, async (b) => {
    assert.equal(b.code, 0, b.stderr);
    assert.ok(!(await files(b.out)).some((f) => f.includes('include') || f.includes('part')), 'fragments are not in the output');
    assert.ok(!b.manifest.files.some((f) => f.name.includes('part')), 'nor in the manifest');
    const one = await checkPage(b.out, 'one.html');
    const two = await checkPage(b.out, 'two.html');
    assert.match(one, /^<main>\n {4}<p id="shared">one source<\/p>\n {4}<img src="\/assets\/pic\.[0-9a-f]{16}\.svg" integrity="sha384-[^"]+" alt="">\n\n {4}<div>\n {6}<span>x<\/span>\n {4}<\/div>\n {2}<p>one<\/p>\n<\/main>\n$/);
    assert.match(two, /^<main>\n {2}<p id="shared">one source<\/p>\n/);
    assert.ok(!one.includes('INCLUDE') && !two.includes('INCLUDE'));
  }));

test('broken trees fail the build and name the problem', async () => {
  const cases = [
    [{ 'a.html': '<!--INCLUDE nothere.html-->\n' }, /includes missing include\/nothere\.html/],
    [{ 'a.html': '<!--INCLUDE p.html-->\n', 'include/p.html': '<!--INCLUDE q.html-->\n', 'include/q.html': 'q\n' }, /includes another fragment/],
    [{ 'a.html': '<p><!--INCLUDE p.html--></p>\n', 'include/p.html': 'p\n' }, /must stand alone/],
    [{ 'js/m.js': "import './gone.js';\n" }, /imports missing js\/gone\.js/],
    [{ 'js/a.js': "import './b.js';\n", 'js/b.js': "import './a.js';\n" }, /import cycle/],
  ];
  for (const [t, why] of cases) {
    await withBuild(t, (b) => {
      assert.notEqual(b.code, 0, `built despite ${why}`);
      assert.match(b.stderr, why);
    });
  }
});

test('the real web/ tree: every reference has SRI, every import resolves, the call screen comes from one fragment', async () => {
  const b = await build(webDir);
  try {
    assert.equal(b.code, 0, b.stderr);
    await checkImports(b.out);
    for (const page of ['index.html', 'patient.html', 'admin.html']) {
      const html = await checkPage(b.out, page);
      assert.ok(!html.includes('<!--'), `${page}: no marker left`);
    }
    const fragment = await readFile(join(webDir, 'include/call.html'), 'utf8');
    for (const page of ['index.html', 'patient.html']) {
      const html = await readFile(join(b.out, page), 'utf8');
      for (const id of ['call-h', 'verify-code', 'self-video', 'btn-mute', 'chat-input', 'file-list'])
        assert.equal(html.split(` id="${id}"`).length - 1, 1, `${page}: one #${id}`);
      // Every line of the fragment stands in the page, in order, indented alike.
      const lines = fragment.trimEnd().split('\n');
      const at = html.indexOf(lines[0]);
      const indent = html.slice(html.lastIndexOf('\n', at) + 1, at);
      assert.ok(html.includes(lines.map((l) => (l ? indent + l : l)).join('\n')), `${page} holds include/call.html`);
    }
    await checkManifest(b);
  } finally {
    await rm(b.parent, { recursive: true, force: true });
  }
});
