// Generated documents import their type from '@graphql-typed-document-node/core', which is not a
// direct dependency of @hub/web and so cannot be resolved from here. urql's own TypedDocumentNode
// is the same shape. Delete this file once the package is added to web/package.json.
declare module '@graphql-typed-document-node/core' {
  export type { TypedDocumentNode } from '@urql/core';
}
