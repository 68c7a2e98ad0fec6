import type { z } from 'zod';
import { ValidationError } from './errors.js';

export const NUL_MESSAGE = 'Remove the NUL characters (U+0000): text cannot hold them';

/** Where the input holds a string with U+0000, which PostgreSQL text cannot store. */
function nulIssues(value: unknown, path: string[] = []): { path: string[]; message: string }[] {
  if (typeof value === 'string') return value.includes('\u0000') ? [{ path, message: NUL_MESSAGE }] : [];
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, v]) => nulIssues(v, [...path, key]));
}

/** False when the input holds text that PostgreSQL cannot store (parseInput refuses it). */
export const storable = (input: unknown) => nulIssues(input).length === 0;

/**
 * Parses mutation input with zod; failures become a typed ValidationError with field paths. Text holding
 * a NUL character is refused here, for every input, rather than failing in the database as a bug.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const nul = nulIssues(input);
  const result = schema.safeParse(input);
  if (result.success && nul.length === 0) return result.data;
  const issues = result.success ? [] : result.error.issues.map((i) => ({ path: i.path.map(String), message: i.message }));
  const seen = new Set(issues.map((i) => i.path.join('.')));
  throw new ValidationError([...issues, ...nul.filter((i) => !seen.has(i.path.join('.')))]);
}
