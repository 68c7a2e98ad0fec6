import type { CombinedError } from '@urql/core';

/** An expected failure from a mutation, as selected by the `MutationErrors` fragment. */
export interface MutationFailure {
  __typename: string;
  message: string;
  issues?: { path: string[]; message: string }[];
  retryAfterSeconds?: number;
  /** A ConflictError's field, when the conflict is about one. */
  field?: string | null;
}

/** What a form shows after a failed submit: one message per field, and one for the form. */
export interface FormErrors {
  form?: string;
  fields: Record<string, string>;
}

export const noErrors = (): FormErrors => ({ fields: {} });

/**
 * Turns a mutation's failure into form errors. Validation issues whose path names one of
 * `fields`, and a conflict about one of them, go next to that field; anything else is shown once for
 * the whole form.
 */
export function formErrors(
  failure: MutationFailure | null | undefined,
  error?: CombinedError,
  fields: readonly string[] = [],
): FormErrors {
  if (error) {
    return {
      form: error.networkError
        ? 'Can’t reach the API. Check your connection and try again.'
        : (error.graphQLErrors[0]?.message ?? error.message),
      fields: {},
    };
  }
  if (!failure) return { form: 'Something went wrong. Try again.', fields: {} };

  const result: FormErrors = { fields: {} };
  const unmatched: string[] = [];
  for (const issue of failure.issues ?? []) {
    const key = issue.path.join('.');
    if (fields.includes(key)) result.fields[key] ??= issue.message;
    else unmatched.push(issue.message);
  }
  if (failure.field && fields.includes(failure.field)) result.fields[failure.field] ??= failure.message;
  if (failure.__typename === 'RateLimitedError' && failure.retryAfterSeconds) {
    result.form = `${failure.message} Try again in ${failure.retryAfterSeconds}s.`;
  } else if (unmatched.length > 0) {
    result.form = unmatched.join(' ');
  } else if (Object.keys(result.fields).length === 0) {
    result.form = failure.message;
  }
  return result;
}

/** Lower-case words joined by dashes, as the API generates slugs. */
export function slugify(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48);
}

/** IANA time zones for pickers, UTC first; includes `current` even if this browser lacks it. */
export function timeZones(current?: string): string[] {
  const zones = new Set(['UTC', ...Intl.supportedValuesOf('timeZone')]);
  if (current) zones.add(current);
  return [...zones];
}

/** The browser's own time zone, the natural default for a new organization. */
export function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}
