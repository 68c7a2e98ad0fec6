import SchemaBuilder, { BasePlugin, PothosValidationError, type PothosOutputFieldConfig, type SchemaTypes } from '@pothos/core';
import { parsePrismaCursor } from '@pothos/plugin-prisma';
import { Kind, valueFromASTUntyped, type GraphQLFieldResolver, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';
import { ValidationError } from '../lib/errors.js';
import { isUuid } from '../lib/ids.js';

const notThisListsCursor = () =>
  new ValidationError([{ path: [], message: 'This cursor was not given by this list: page with pageInfo.endCursor or startCursor' }]);

/** What Pothos throws for a connection's arguments, as our typed error (Pothos' own reads as an internal one). */
function pageError(err: unknown): unknown {
  if (!(err instanceof PothosValidationError)) return err;
  const size = /^Argument "(first|last)" must be a non-negative integer/.exec(err.message);
  if (size) return ValidationError.field(size[1]!, 'Ask for 0 items or more');
  if (/cursor/i.test(err.message)) return notThisListsCursor();
  return err;
}

/**
 * Every list pages by its rows' ids (UUIDs): a cursor that decodes to anything else was not given by a list, and
 * is refused as such before it reaches a query (where PostgreSQL would fail on it as an internal error).
 */
function checkCursor(value: unknown) {
  if (value === null || value === undefined) return;
  let id: unknown;
  try {
    id = parsePrismaCursor(value);
  } catch {
    throw notThisListsCursor();
  }
  if (!isUuid(id)) throw notThisListsCursor();
}

/** The cursors (`after`, `before`) of every field selected under `set`, fragments included. */
function checkCursorsBelow(set: SelectionSetNode | undefined, info: GraphQLResolveInfo, seen = new Set<string>()) {
  for (const selection of set?.selections ?? []) {
    if (selection.kind === Kind.FIELD) {
      for (const arg of selection.arguments ?? []) {
        if (arg.name.value === 'after' || arg.name.value === 'before') checkCursor(valueFromASTUntyped(arg.value, info.variableValues));
      }
      checkCursorsBelow(selection.selectionSet, info, seen);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      checkCursorsBelow(selection.selectionSet, info, seen);
    } else if (!seen.has(selection.name.value)) {
      seen.add(selection.name.value);
      checkCursorsBelow(info.fragments[selection.name.value]?.selectionSet, info, seen);
    }
  }
}

/**
 * Turns bad page arguments (a cursor the API never gave, a negative first or last) into a VALIDATION_FAILED
 * error. They are read where the connection's rows are loaded: by the connection field itself, or by the root
 * field whose query selects it, so those two kinds of field are wrapped, and nothing else.
 */
class PageErrorsPlugin<Types extends SchemaTypes> extends BasePlugin<Types> {
  override wrapResolve(
    resolver: GraphQLFieldResolver<unknown, Types['Context'], object>,
    fieldConfig: PothosOutputFieldConfig<Types>,
  ): GraphQLFieldResolver<unknown, Types['Context'], object> {
    if (fieldConfig.parentType !== 'Query' && !('after' in fieldConfig.args)) return resolver;
    return async (parent, args, ctx, info) => {
      try {
        const { after, before } = args as { after?: unknown; before?: unknown };
        checkCursor(after);
        checkCursor(before);
        // A root field's query loads the lists selected below it (Pothos plans them into it): their cursors are read there.
        if (fieldConfig.parentType === 'Query') for (const node of info.fieldNodes) checkCursorsBelow(node.selectionSet, info);
        return await resolver(parent, args, ctx, info);
      } catch (err) {
        throw pageError(err);
      }
    };
  }
}

declare global {
  export namespace PothosSchemaTypes {
    export interface Plugins<Types extends SchemaTypes> {
      pageErrors: PageErrorsPlugin<Types>;
    }
  }
}

/** The plugin's name, for the builder's `plugins` list (as Pothos' own plugins export theirs). */
export const PAGE_ERRORS = 'pageErrors';
SchemaBuilder.registerPlugin(PAGE_ERRORS, PageErrorsPlugin);
