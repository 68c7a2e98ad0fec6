import { describe, expect, it } from 'vitest';
import { given } from '../../../test/factories.js';
import { gql, startTestServer } from '../../../test/harness.js';

describe('audit log export and the request budget', () => {
  it('counts each download against the caller’s budget and answers 429 past it, as GraphQL does', async () => {
    const limited = await startTestServer({ worker: false, runtime: { rateLimits: { rules: { apiUser: { points: 3 } } } } });
    try {
      const org = await given(limited).anOrganization();
      const headers = { authorization: `Bearer ${org.owner.token}` };
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${limited.url}/api/organizations/${org.slug}/audit-logs.ndjson`, { headers });
        statuses.push(res.status);
        if (res.status === 429) {
          expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
          expect(((await res.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('RATE_LIMITED');
        } else await res.text();
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      // The downloads spent the same budget as GraphQL requests.
      expect((await gql(limited.url, `{ viewer { user { email } } }`, {}, { token: org.owner.token })).status).toBe(429);
    } finally {
      await limited.close();
    }
  });
});
