import type { CombinedError } from '@urql/core';
import { tick } from 'svelte';

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
    if (error.networkError) return { form: 'Can’t reach the API. Check your connection and try again.', fields: {} };
    // A value the API could not even read (a number past Int's range, say) goes next to its field, in words.
    const result: FormErrors = { fields: {} };
    const invalid = error.graphQLErrors.map((e) => invalidVariable(e.message));
    const other = error.graphQLErrors.find((_, i) => !invalid[i]);
    const unplaced: string[] = [];
    for (const issue of invalid) {
      if (issue && fields.includes(issue.field)) result.fields[issue.field] ??= issue.message;
      else if (issue) unplaced.push(issue.message);
    }
    if (other) result.form = other.message;
    else if (unplaced.length > 0) result.form = `${unplaced.join('. ')}.`;
    else if (Object.keys(result.fields).length === 0) result.form = error.message;
    return result;
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

/** Once a form's errors are drawn, focuses the first field they mark invalid, so its message is read with it. */
export async function focusFirstInvalid(form: HTMLFormElement): Promise<void> {
  await tick();
  form.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
}

// graphql-js's words for a variable it could not coerce, e.g. `Variable "$input" got invalid value 99999999999 at
// "input.maxOutputTokens"; Int cannot represent non 32-bit signed integer value: 99999999999`.
const INVALID_VARIABLE = /^Variable "\$(\w+)" got invalid value ([\s\S]*?)(?: at "([^"]+)")?; ([\s\S]*)$/;

/**
 * A GraphQL variable-coercion error as a field and a message a person can act on, or undefined for
 * any other error. The field is the path inside the variable in the form's dotted style
 * (`fallbackChain.0.model`); the message names it ("Max output tokens is too large").
 */
export function invalidVariable(message: string): { field: string; message: string } | undefined {
  const match = INVALID_VARIABLE.exec(message);
  if (!match) return undefined;
  const [, variable, value = '', at, reason = ''] = match;
  const path = (at ?? variable!).replace(/\[(\d+)\]/g, '.$1').split('.');
  if (at) path.shift(); // the variable itself, e.g. `input`
  if (path.length === 0) path.push(variable!);
  const field = path.join('.');
  const label = fieldLabel([...path].reverse().find((part) => !/^\d+$/.test(part)) ?? variable!);
  const negative = /^"?-/.test(value);
  const numeric = /^"?-?\d+(\.\d+)?"?$/.test(value);
  let problem: string;
  if (/cannot represent non 32-bit signed integer/.test(reason) || (/Expected type "Money"/.test(reason) && numeric)) {
    problem = negative ? 'is too small' : 'is too large';
  } else if (/Int cannot represent/.test(reason)) problem = 'must be a whole number';
  else if (/Float cannot represent/.test(reason)) problem = 'must be a number';
  else if (/Expected type "Money"/.test(reason)) problem = 'must be an amount of money';
  else if (/Expected type "DateTime"/.test(reason)) problem = 'must be a date and time';
  else problem = 'is not valid';
  return { field, message: `${label} ${problem}` };
}

/** `maxOutputTokens` → `Max output tokens`: a field name as words, for messages about it. */
export function fieldLabel(name: string): string {
  const words = name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/[_-]+/g, ' ').trim().toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * Checks a number a form is about to send against the API's range, so the person hears about it
 * before the request: `Temperature must be between 0 and 2`. Null (an empty, optional field) passes.
 */
export function checkRange(
  value: number | null | undefined,
  { label, min, max, integer = false }: { label: string; min: number; max: number; integer?: boolean },
): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (!Number.isFinite(value) || value < min || value > max) {
    return `${label} must be between ${min.toLocaleString('en-US')} and ${max.toLocaleString('en-US')}`;
  }
  if (integer && !Number.isInteger(value)) return `${label} must be a whole number`;
  return undefined;
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
