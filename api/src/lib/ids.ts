import { decodeGlobalID, encodeGlobalID } from '@pothos/plugin-relay';
import { NotFoundError } from './errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A database id: every table's primary key is a UUID. */
export const isUuid = (value: unknown): value is string => typeof value === 'string' && UUID.test(value);

/**
 * Decodes a Relay global id of the expected type into the database id. A malformed id, an id of another
 * type and an id that does not exist are indistinguishable to the caller: all are NotFound.
 */
export function fromGlobalId(globalId: string, typename: string): string {
  try {
    const { typename: actual, id } = decodeGlobalID(globalId);
    if (actual === typename && isUuid(id)) return id;
  } catch {
    // fall through
  }
  throw new NotFoundError(typename);
}

export const toGlobalId = (typename: string, id: string) => encodeGlobalID(typename, id);
