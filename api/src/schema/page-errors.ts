import SchemaBuilder, { BasePlugin, PothosValidationError, type PothosOutputFieldConfig, type SchemaTypes } from '@pothos/core';
import type { GraphQLFieldResolver } from 'graphql';
import { ValidationError } from '../lib/errors.js';

/** What Pothos throws for a connection's arguments, as our typed error (Pothos' own reads as an internal one). */
function pageError(err: unknown): unknown {
  if (!(err instanceof PothosValidationError)) return err;
  const size = /^Argument "(first|last)" must be a non-negative integer/.exec(err.message);
  if (size) return ValidationError.field(size[1]!, 'Ask for 0 items or more');
  if (/cursor/i.test(err.message)) {
    return new ValidationError([{ path: [], message: 'This cursor was not given by this list: page with pageInfo.endCursor or startCursor' }]);
  }
  return err;
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
