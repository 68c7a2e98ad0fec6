import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as sdk from '@hub/sdk';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  files: string[];
  exports: Record<string, { types: string; default: string } | string>;
};

describe('the published package', () => {
  it('exports only the built bundle', () => {
    expect(pkg.files).toEqual(['dist']);
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (subpath === './package.json') continue;
      expect(target).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
    }
  });

  it('loads with require() too, as Node 20.19+ loads ES modules for CommonJS programs', () => {
    // The types are found for `require` as for `import`; the code must be as well.
    const loaded = execFileSync(process.execPath, ['-e', "process.stdout.write(typeof require('@hub/sdk').createClient)"], { cwd: root, encoding: 'utf8' });
    expect(loaded).toBe('function');
  });

  it('packs dist, the README and package.json, and no sources or tests', () => {
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as [
      { files: { path: string }[] },
    ];
    const paths = packed.files.map((f) => f.path).sort();
    expect(paths).toEqual(['README.md', 'dist/index.d.ts', 'dist/index.js', 'dist/index.js.map', 'package.json']);
  });

  it('has the documented entry points', () => {
    expect(Object.keys(sdk)).toEqual(
      expect.arrayContaining(['createClient', 'unwrap', 'registerErrorType', 'HubError', 'ValidationError', 'NetworkError', 'StartRunDocument']),
    );
  });
});
