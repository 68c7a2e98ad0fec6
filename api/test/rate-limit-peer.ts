// A second process for the rate-limit test: consumes a shared PostgreSQL-backed budget and prints
// what it got, as JSON on stdout. Configured by the environment (see rate-limit.test.ts).
import pg from 'pg';
import { RateLimitedError } from '../src/lib/errors.js';
import { RateLimits } from '../src/lib/rate-limit.js';

const { PEER_DATABASE_URL, PEER_NAMESPACE, PEER_POINTS, PEER_CONSUME, PEER_KEY } = process.env;
const pool = new pg.Pool({ connectionString: PEER_DATABASE_URL, max: 2 });
const limits = await RateLimits.create(
  { kind: 'postgresql', pool },
  { namespace: PEER_NAMESPACE, rules: { apiUser: { points: Number(PEER_POINTS), duration: 60 } } },
);
const results: ('ok' | 'limited')[] = [];
for (let i = 0; i < Number(PEER_CONSUME); i++) {
  try {
    await limits.consume('apiUser', PEER_KEY!);
    results.push('ok');
  } catch (err) {
    if (!(err instanceof RateLimitedError)) throw err;
    results.push('limited');
  }
}
limits.close();
await pool.end();
process.stdout.write(JSON.stringify({ engine: limits.engine, results }));
