// A process serving only the built web UI (adapter-node's handler: static files through sirv, then
// SvelteKit), behind the API's withFileStreamErrors unless UNGUARDED=true. sirv lists the static files
// when the handler is loaded, i.e. when this process starts. Reports its URL to its parent over IPC.
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import express, { type RequestHandler } from 'express';
import { createLogger } from '../src/lib/logger.js';
import { repoRoot } from '../src/lib/paths.js';
import { withFileStreamErrors } from '../src/server.js';

const { handler } = (await import(pathToFileURL(resolve(repoRoot, 'web/build/handler.js')).href)) as { handler: RequestHandler };
const app = express();
app.get('/alive', (_req, res) => {
  res.send('yes');
});
app.use(process.env.UNGUARDED === 'true' ? handler : withFileStreamErrors(handler, createLogger('silent')));
const server = app.listen(0, '127.0.0.1', () => {
  process.send?.({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
});
