import {
  defaultFieldResolver,
  getArgumentValues,
  getNamedType,
  getNullableType,
  getOperationAST,
  getVariableValues,
  isLeafType,
  isNonNullType,
  isObjectType,
  Kind,
  type ExecutionArgs,
  type ExecutionResult,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLLeafType,
  type GraphQLObjectType,
  type GraphQLOutputType,
  type GraphQLResolveInfo,
} from 'graphql';
import type { Path } from 'graphql/jsutils/Path.js';
// graphql-js' own field collection (fragments, type conditions, @skip/@include, merging of response keys),
// so a plan selects exactly the fields graphql-js would.
import { collectFields, collectSubfields } from 'graphql/execution/collectFields.js';

/**
 * Executes one event of a subscription operation, or returns null when it cannot match graphql-js'
 * result exactly (a resolver threw or returned a promise, a null where the schema forbids one, a value
 * its scalar refuses): the caller then executes the event with graphql-js, which reports the error as
 * it always does. Resolvers may thus run twice for one event, so a plan is only for selections whose
 * resolvers are pure functions of the event (the viewer-independent subscriptions).
 */
export type EventPlan = (event: unknown) => ExecutionResult | null;

/** A field the plan resolves: what graphql-js works out for it on every event, worked out once. */
interface PlannedField {
  key: string;
  field: GraphQLField<unknown, unknown>;
  nodes: readonly FieldNode[];
  args: Record<string, unknown>;
  nonNull: boolean;
  parentType: GraphQLObjectType;
  path: Path;
}

type Leaf = (PlannedField & { type: GraphQLLeafType }) | { key: string; typename: string };

/**
 * A plan for operations whose one root field returns an object type selecting leaf fields only (scalars,
 * enums, `__typename`; no lists, no nested objects): `runEvents { seq type text … }`, through fragments or
 * not. Built once per subscription: it does per event only what graphql-js' `execute` does per event
 * for such a selection (resolve, check for null, serialize), without collecting fields, coercing
 * variables and arguments, or building paths again for every event. Null when the operation is of
 * another shape, or its variables or arguments are invalid (graphql-js reports those).
 */
export function eventPlan(args: ExecutionArgs): EventPlan | null {
  const { schema, document, contextValue } = args;
  const operation = getOperationAST(document, args.operationName);
  const rootType = schema.getSubscriptionType();
  if (operation?.operation !== 'subscription' || !rootType) return null;
  const fragments: Record<string, FragmentDefinitionNode> = Object.create(null);
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], args.variableValues ?? {});
  if (coerced.errors) return null;
  const variables = coerced.coerced;
  const fieldResolver = args.fieldResolver ?? defaultFieldResolver;

  const planned = (parentType: GraphQLObjectType, field: GraphQLField<unknown, unknown>, key: string, nodes: readonly FieldNode[], prev?: Path): PlannedField => ({
    key,
    field,
    nodes,
    args: getArgumentValues(field, nodes[0]!, variables),
    nonNull: isNonNullType(field.type),
    parentType,
    path: { prev, key, typename: parentType.name },
  });
  let root: PlannedField;
  let objectType: GraphQLObjectType;
  const leaves: Leaf[] = [];
  try {
    const roots = [...collectFields(schema, fragments, variables, rootType, operation.selectionSet)];
    if (roots.length !== 1) return null;
    const [rootKey, rootNodes] = roots[0]!;
    const rootField = rootType.getFields()[rootNodes[0]!.name.value];
    const rootObject = rootField && getNullableType(rootField.type);
    if (!rootField || !isObjectType(rootObject)) return null;
    root = planned(rootType, rootField, rootKey, rootNodes);
    objectType = rootObject;
    for (const [key, nodes] of collectSubfields(schema, fragments, variables, objectType, rootNodes)) {
      const name = nodes[0]!.name.value;
      if (name === '__typename') {
        leaves.push({ key, typename: objectType.name });
        continue;
      }
      const field = objectType.getFields()[name];
      if (!field) continue; // graphql-js skips a field its type does not have
      const type = getNullableType(field.type) as GraphQLOutputType;
      if (!isLeafType(type) || getNamedType(type) !== type) return null; // lists and objects: graphql-js
      leaves.push({ ...planned(objectType, field, key, nodes, root.path), type });
    }
  } catch {
    return null; // invalid arguments: graphql-js reports them with the event
  }

  const infoOf = (f: PlannedField, event: unknown): GraphQLResolveInfo => ({
    fieldName: f.field.name,
    fieldNodes: f.nodes,
    returnType: f.field.type,
    parentType: f.parentType,
    path: f.path,
    schema,
    fragments,
    rootValue: event,
    operation,
    variableValues: variables,
  });

  return (event) => {
    try {
      const rootInfo = infoOf(root, event);
      const source = (root.field.resolve ?? fieldResolver)(event, root.args, contextValue, rootInfo);
      if (source instanceof Error || isThenable(source)) return null;
      if (source === null || source === undefined) return root.nonNull ? null : { data: { [root.key]: null } };
      const isTypeOf = objectType.isTypeOf?.(source, contextValue, rootInfo);
      if (isTypeOf !== undefined && isTypeOf !== true) return null;
      const object: Record<string, unknown> = {};
      for (const leaf of leaves) {
        if (!('field' in leaf)) {
          object[leaf.key] = leaf.typename;
          continue;
        }
        const value = (leaf.field.resolve ?? fieldResolver)(source, leaf.args, contextValue, infoOf(leaf, event));
        if (value instanceof Error || isThenable(value)) return null;
        if (value === null || value === undefined) {
          if (leaf.nonNull) return null;
          object[leaf.key] = null;
          continue;
        }
        const serialized = leaf.type.serialize(value);
        if (serialized === null || serialized === undefined) return null;
        object[leaf.key] = serialized;
      }
      return { data: { [root.key]: object } };
    } catch {
      return null;
    }
  };
}

const isThenable = (value: unknown): boolean => typeof (value as { then?: unknown } | null)?.then === 'function';
