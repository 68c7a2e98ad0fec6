import { chromium, type Page } from 'playwright-core';
import type * as Playwright from 'playwright-core';

export type { Page };

export interface BrowserSession {
  page: Playwright.Page;
  /** Console errors, hydration warnings and uncaught page errors seen so far. */
  errors: string[];
  close(): Promise<void>;
}

export interface OpenOptions {
  baseURL: string;
  colorScheme?: 'light' | 'dark';
  viewport?: { width: number; height: number };
  /** false: the page as served, before (or without) its script: what a submit does before hydration. */
  javaScriptEnabled?: boolean;
}

/** Debian's Chromium, headless; `npx playwright install` cannot download browsers on these machines. */
export async function openBrowser(options: OpenOptions): Promise<BrowserSession> {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  try {
    const context = await browser.newContext({
      baseURL: options.baseURL,
      colorScheme: options.colorScheme ?? 'light',
      viewport: options.viewport ?? { width: 1280, height: 800 },
      javaScriptEnabled: options.javaScriptEnabled ?? true,
    });
    const page = await context.newPage();
    return { page, errors: collectErrors(page), close: () => browser.close() };
  } catch (err) {
    await browser.close();
    throw err;
  }
}

/**
 * A fresh context (its own cookies, e.g. a second person, and color scheme) in a running browser:
 * much faster than a second Chromium. Closing it leaves the browser running.
 */
export async function anotherContext(session: BrowserSession, options: OpenOptions): Promise<BrowserSession> {
  const context = await session.page.context().browser()!.newContext({
    baseURL: options.baseURL,
    colorScheme: options.colorScheme ?? 'light',
    viewport: options.viewport ?? { width: 1280, height: 800 },
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  return { page, errors: collectErrors(page), close: () => context.close() };
}

/** Console errors, hydration warnings and uncaught page errors, as they happen. */
function collectErrors(page: Playwright.Page): string[] {
  const errors: string[] = [];
  page.on('console', (msg) => {
    // Svelte reports hydration mismatches as warnings; treat them as errors.
    if (msg.type() === 'error' || (msg.type() === 'warning' && /hydrat/i.test(msg.text()))) errors.push(msg.text());
  });
  page.on('pageerror', (err) => errors.push(err.message));
  return errors;
}
