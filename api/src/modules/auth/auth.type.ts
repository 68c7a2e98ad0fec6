import { builder } from '../../schema/builder.js';
import { ConflictError } from '../../lib/errors.js';
import { fromGlobalId } from '../../lib/ids.js';
import * as auth from './auth.service.js';

export const UserRef = builder.prismaNode('User', {
  id: { field: 'id' },
  // Only the columns a query asks for: a read of users (a viewer, every member of a list) never loads a password hash.
  select: { id: true },
  description: 'A person with an account.',
  fields: (t) => ({
    name: t.exposeString('name'),
    email: t.exposeString('email'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

export const ApiTokenRef = builder.prismaNode('ApiToken', {
  id: { field: 'id' },
  description: 'A personal API token. Its secret is shown only once, when created.',
  fields: (t) => ({
    name: t.exposeString('name'),
    prefix: t.exposeString('prefix', { description: 'The first characters of the secret, to recognise it.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastUsedAt: t.expose('lastUsedAt', { type: 'DateTime', nullable: true }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true }),
    active: t.boolean({
      resolve: (tok) => !tok.revokedAt && (!tok.expiresAt || tok.expiresAt > new Date()),
    }),
  }),
});

/** The signed-in person and what belongs to them. */
export class ViewerModel {
  constructor(public readonly userId: string) {}
}

export const ViewerRef = builder.objectType(ViewerModel, {
  name: 'Viewer',
  description: 'The signed-in account.',
  fields: (t) => ({
    user: t.prismaField({
      type: 'User',
      resolve: (query, v, _args, ctx) => ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: v.userId } }),
    }),
    apiTokens: t.prismaField({
      type: ['ApiToken'],
      description: 'Your API tokens, newest first (revoked ones included so you can see their history).',
      resolve: (query, v, _args, ctx) =>
        ctx.prisma.apiToken.findMany({ ...query, where: { userId: v.userId }, orderBy: { createdAt: 'desc' }, take: 200 }),
    }),
  }),
});

builder.queryField('viewer', (t) =>
  t.field({
    type: ViewerRef,
    nullable: true,
    description: 'The signed-in account, or null when anonymous.',
    resolve: (_root, _args, ctx) => (ctx.viewer ? new ViewerModel(ctx.viewer.userId) : null),
  }),
);

const SignUpInput = builder.inputType('SignUpInput', {
  fields: (t) => ({
    email: t.string({ required: true }),
    password: t.string({ required: true }),
    name: t.string({ required: true }),
  }),
});

const SignInInput = builder.inputType('SignInInput', {
  fields: (t) => ({
    email: t.string({ required: true }),
    password: t.string({ required: true }),
  }),
});

const AuthPayload = builder.objectRef<{ userId: string }>('AuthPayload').implement({
  description: 'A new session; the browser receives it as an httpOnly cookie.',
  fields: (t) => ({ viewer: t.field({ type: ViewerRef, resolve: (p) => new ViewerModel(p.userId) }) }),
});

builder.mutationField('signUp', (t) =>
  t.field({
    type: AuthPayload,
    description: 'Creates an account and signs it in.',
    errors: { types: [ConflictError] },
    args: { input: t.arg({ type: SignUpInput, required: true }) },
    resolve: async (_root, { input }, ctx) => ({ userId: (await auth.signUp(ctx, input)).user.id }),
  }),
);

builder.mutationField('signIn', (t) =>
  t.field({
    type: AuthPayload,
    description: 'Signs in with email and password. A wrong email and a wrong password give the same error.',
    errors: {},
    args: { input: t.arg({ type: SignInInput, required: true }) },
    resolve: async (_root, { input }, ctx) => ({ userId: (await auth.signIn(ctx, input)).user.id }),
  }),
);

const SignOutInput = builder.inputType('SignOutInput', {
  fields: (t) => ({
    everywhere: t.boolean({ defaultValue: false, description: 'End every session of this account, not just this one.' }),
  }),
});

const SignOutPayload = builder.objectRef<{ ok: boolean }>('SignOutPayload').implement({ fields: (t) => ({ ok: t.exposeBoolean('ok') }) });

builder.mutationField('signOut', (t) =>
  t.field({
    type: SignOutPayload,
    errors: {},
    args: { input: t.arg({ type: SignOutInput, required: false }) },
    resolve: async (_root, { input }, ctx) => ({ ok: await auth.signOut(ctx, input?.everywhere ?? false) }),
  }),
);

const CreateApiTokenInput = builder.inputType('CreateApiTokenInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    expiresAt: t.field({ type: 'DateTime', required: false }),
  }),
});

const CreateApiTokenPayload = builder.objectRef<{ tokenId: string; secret: string }>('CreateApiTokenPayload').implement({
  fields: (t) => ({
    apiToken: t.prismaField({
      type: 'ApiToken',
      resolve: (query, p, _a, ctx) => ctx.prisma.apiToken.findUniqueOrThrow({ ...query, where: { id: p.tokenId } }),
    }),
    secret: t.exposeString('secret', { description: 'The token itself. Shown only this once: store it now.' }),
  }),
});

builder.mutationField('createApiToken', (t) =>
  t.field({
    type: CreateApiTokenPayload,
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: CreateApiTokenInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const { token, secret } = await auth.createApiToken(ctx, input);
      return { tokenId: token.id, secret };
    },
  }),
);

const RevokeApiTokenInput = builder.inputType('RevokeApiTokenInput', {
  fields: (t) => ({ id: t.id({ required: true }) }),
});

const RevokeApiTokenPayload = builder.objectRef<{ tokenId: string }>('RevokeApiTokenPayload').implement({
  fields: (t) => ({
    apiToken: t.prismaField({
      type: 'ApiToken',
      resolve: (query, p, _a, ctx) => ctx.prisma.apiToken.findUniqueOrThrow({ ...query, where: { id: p.tokenId } }),
    }),
  }),
});

builder.mutationField('revokeApiToken', (t) =>
  t.field({
    type: RevokeApiTokenPayload,
    errors: {},
    authScopes: { loggedIn: true },
    args: { input: t.arg({ type: RevokeApiTokenInput, required: true }) },
    resolve: async (_root, { input }, ctx) => ({
      tokenId: (await auth.revokeApiToken(ctx, fromGlobalId(String(input.id), 'ApiToken'))).id,
    }),
  }),
);
