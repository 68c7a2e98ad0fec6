import type { z } from 'zod';
import { ValidationError } from './errors.js';

/** Parses mutation input with zod; failures become a typed ValidationError with field paths. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new ValidationError(
    result.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
  );
}
