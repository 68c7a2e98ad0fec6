import { z } from 'zod';
import { NotFoundError, ValidationError } from './errors.js';
import { fromGlobalId } from './ids.js';

export const NUL_MESSAGE = 'Remove the NUL characters (U+0000): text cannot hold them';
export const SURROGATE_MESSAGE = 'Remove the broken characters (a lone UTF-16 surrogate, e.g. half an emoji): text must be valid Unicode';

/** Half of a surrogate pair without its other half: in a `u` pattern a whole pair is one code point, not Cs. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Where the input holds a string PostgreSQL text cannot store as given: with U+0000, which it refuses, or
 * with a lone surrogate (JSON can carry one as `\ud83d`), which would be stored as U+FFFD, so what was
 * stored would differ from what was sent (and a replayed idempotent start would no longer match it).
 */
function nulIssues(value: unknown, path: string[] = []): { path: string[]; message: string }[] {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) return [{ path, message: NUL_MESSAGE }];
    return LONE_SURROGATE.test(value) ? [{ path, message: SURROGATE_MESSAGE }] : [];
  }
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, v]) => nulIssues(v, [...path, key]));
}

/** False when the input holds text that PostgreSQL cannot store as given (parseInput refuses it). */
export const storable = (input: unknown) => nulIssues(input).length === 0;

/**
 * Parses mutation input with zod; failures become a typed ValidationError with field paths. Text holding
 * a NUL character or a lone surrogate is refused here, for every input, rather than failing in the database
 * as a bug or being stored altered.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const nul = nulIssues(input);
  const result = schema.safeParse(input);
  if (result.success && nul.length === 0) return result.data;
  const issues = result.success ? [] : result.error.issues.map((i) => ({ path: i.path.map(String), message: i.message }));
  const seen = new Set(issues.map((i) => i.path.join('.')));
  throw new ValidationError([...issues, ...nul.filter((i) => !seen.has(i.path.join('.')))]);
}

/** How a filter's id field is described when it holds no id of the right type: "an agent’s id (Agent.id)". */
const ID_NOUNS: Record<string, string> = { Agent: 'an agent’s id', User: 'a person’s id' };

/**
 * The database id a list filter's global id names. A malformed id, or one of another type, is the caller's
 * mistake in that field (a VALIDATION_FAILED naming `path`), not a reason to hide the whole list; a
 * well-formed id that names nothing the caller can see simply matches nothing.
 */
export function filterId(globalId: string, typename: string, path: string[]): string {
  try {
    return fromGlobalId(globalId, typename);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    throw new ValidationError([{ path, message: `Use ${ID_NOUNS[typename] ?? `a ${typename} id`} (${typename}.id)` }]);
  }
}

/**
 * Characters that show nothing on their own: whitespace of every script, format characters (zero-width space,
 * ZWNJ, ZWJ, word joiner, BOM, soft hyphen…), other default-ignorable code points (Hangul fillers, variation
 * selectors), controls, and the blank Braille pattern, which every font draws empty.
 */
const INVISIBLE_ONLY = /^[\p{White_Space}\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}\p{Z}\u2800]*$/u;

/** True when a person can see something of `text` (a joiner between visible characters, as in 👩‍💻, is fine). */
export const hasVisibleText = (text: string) => !INVISIBLE_ONLY.test(text);

/**
 * Every name the API takes (organizations, projects, agents, people, API tokens): trimmed, at most `max`
 * characters, and refused like a blank one (`blank`) when nothing of it would show.
 */
export function nameText({ blank, max, tooLong }: { blank: string; max: number; tooLong: string }) {
  // One problem at a time: a name too long is told so, not also that it shows nothing.
  return z.string().trim().max(max, { message: tooLong, abort: true }).refine(hasVisibleText, blank);
}
