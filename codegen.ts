import type { CodegenConfig } from '@graphql-codegen/cli';
import { addTypenameSelectionDocumentTransform } from '@graphql-codegen/client-preset';

// One config, one entry per consumer. Input is the committed SDL, so codegen never needs a running server.
const config: CodegenConfig = {
  schema: 'api/schema.graphql',
  // A consumer with no operations yet should not fail the whole chain.
  ignoreNoDocuments: true,
  // Emit `.js` extensions in relative imports, as NodeNext ESM requires.
  emitLegacyCommonJSImports: false,
  generates: {
    'sdk/src/_generated/': {
      documents: ['sdk/src/operations/**/*.graphql'],
      preset: 'client',
      presetConfig: {
        // The SDK returns plain objects; masking is a UI concern.
        fragmentMasking: false,
      },
      // Select __typename everywhere, so what the types promise (nonOptionalTypename) is what arrives.
      documentTransforms: [addTypenameSelectionDocumentTransform],
      config: {
        // Our custom scalars travel as strings on the wire.
        scalars: { DateTime: 'string', Money: 'string', JSON: 'unknown' },
        // String unions instead of TS enums: erasable, and what integrators compare against.
        enumsAsTypes: true,
        useTypeImports: true,
        // Keep __typename in result types so callers can narrow error unions.
        nonOptionalTypename: true,
      },
    },
    'web/src/lib/graphql/_generated/': {
      documents: ['web/src/**/*.graphql', 'sdk/src/operations/fragments.graphql'],
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      documentTransforms: [addTypenameSelectionDocumentTransform],
      config: {
        scalars: { DateTime: 'string', Money: 'string', JSON: 'unknown' },
        enumsAsTypes: true,
        useTypeImports: true,
        nonOptionalTypename: true,
      },
    },
  },
};

export default config;
