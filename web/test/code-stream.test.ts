/// <reference lib="dom" />
// Callbacks given to page.evaluate run in the browser.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromGlobalId, toGlobalId } from '../../api/src/lib/ids.js';
import { startOpenAIFake, type FakeProviderServer } from '../../api/test/fakes/index.js';
import { startTestServer, type TestServer } from '../../api/test/harness.js';
import { openBrowser, type BrowserSession } from './browser.js';
import { signIn, signUp, type Account } from './accounts.js';
import { CREATE_ORG, CREATE_PROJECT, START_RUN } from './operations.js';

const LINES = 40;
const CODE = Array.from({ length: LINES }, (_, i) => `const line${String(i + 1).padStart(2, '0')} = "${'<tag>'.repeat(i % 3)}";`);
const REPLY = `Here is the module:\n\n\`\`\`ts\n${CODE.join('\n')}\n\`\`\`\n\nThat is all.`;

describe('a run whose output is a long code block', () => {
  let openai: FakeProviderServer;
  let server: TestServer;
  let browser: BrowserSession;
  let account: Account;
  let agentGid: string;

  beforeAll(async () => {
    // One chunk per word, 15 ms apart: the block takes a couple of seconds to stream.
    openai = await startOpenAIFake({ apiKey: 'sk-code', defaultBehavior: { kind: 'reply', text: REPLY, chunkDelayMs: 15, usage: { inputTokens: 9, outputTokens: 300 } } });
    server = await startTestServer({ web: true, env: { OPENAI_API_KEY: 'sk-code', OPENAI_BASE_URL: openai.url } });
    account = await signUp(server, 'Cody Coder');
    const org = await account.api(CREATE_ORG, { input: { name: 'Code Crew' } });
    const project = await account.api(CREATE_PROJECT, { input: { organizationId: org.createOrganization.organization.id, name: 'Modules' } });
    const row = await server.rt.prisma.project.findUniqueOrThrow({ where: { id: fromGlobalId(project.createProject.project.id as string, 'Project') } });
    const agent = await server.rt.prisma.agent.create({
      data: { organizationId: row.organizationId, projectId: row.id, name: 'Coder', provider: 'OPENAI', model: 'gpt-4.1', maxOutputTokens: 1000 },
    });
    agentGid = toGlobalId('Agent', agent.id);
    browser = await openBrowser({ baseURL: server.url });
    await signIn(browser, server, account.session);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await openai?.close();
  });

  it('writes the block line by line as it streams: a line already shown is never drawn again', async () => {
    const { page } = browser;
    // Counts, inside the page (from its first script on), how often the block's first line leaves the
    // page, and how many lines were shown while the block was still open (before the text after it arrived).
    await page.addInitScript(() => {
      const w = window as unknown as { __removed: number; __openLines: number };
      w.__removed = 0;
      w.__openLines = 0;
      new MutationObserver((mutations) => {
        for (const m of mutations) for (const n of m.removedNodes) if (n.textContent?.includes('line01')) w.__removed++;
        const markdown = document.querySelector('[data-testid="run-output"] .markdown');
        const code = markdown?.querySelector('pre code')?.textContent ?? '';
        if (!markdown?.textContent?.includes('That is all')) w.__openLines = Math.max(w.__openLines, code.split('\n').length);
      }).observe(document, { subtree: true, childList: true, characterData: true });
    });
    const started = await account.api(START_RUN, { input: { agentId: agentGid, input: 'Write the module' } });
    await page.goto(`/runs/${encodeURIComponent(started.startRun.run.id as string)}`);
    await page.getByTestId('run-status').getByText('Succeeded').waitFor({ timeout: 30_000 });

    const output = page.getByTestId('run-output');
    await output.getByText('That is all.').waitFor();
    expect(await output.locator('pre code').innerText()).toBe(CODE.join('\n'));
    expect(await output.locator('pre').getAttribute('data-lang')).toBe('ts');
    const { removed, openLines } = await page.evaluate(() => {
      const w = window as unknown as { __removed: number; __openLines: number };
      return { removed: w.__removed, openLines: w.__openLines };
    });
    // The block was watched streaming, most of its lines shown before it closed…
    expect(openLines).toBeGreaterThan(LINES / 2);
    // …and its first line was drawn again only a handful of times: while that line itself was being
    // written, and once when the block closed. Not once per token of the block (about 160 of them), as
    // when the whole block was one piece of HTML.
    expect(removed).toBeLessThanOrEqual(5);
  });

  it('logged no console errors, hydration warnings or page errors', () => {
    expect(browser.errors).toEqual([]);
  });
});
