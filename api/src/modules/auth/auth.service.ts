import { z } from 'zod';
import type { Context } from '../../context.js';
import { ConflictError, NotFoundError, ValidationError } from '../../lib/errors.js';
import { newApiToken, randomToken, sha256 } from '../../lib/tokens.js';
import { nameText, parseInput } from '../../lib/validate.js';
import { audit } from '../audit/audit.service.js';
import { requireViewer } from '../authorize.js';
import { hashPassword, timingDummyHash, verifyPassword } from './password.js';
import { ACCESS_CHANNEL, SESSION_COOKIE, SESSION_IDLE_MS, type AccessChange } from './viewer.js';

export const email = z.string().trim().toLowerCase().email('Enter a valid email address').max(254, 'Keep the email address to 254 characters');
const password = z.string().min(10, 'Use at least 10 characters').max(200, 'Use at most 200 characters');

const SignUpInput = z.object({ email, password, name: nameText({ blank: 'Enter your name', max: 100, tooLong: 'Keep the name to 100 characters' }) });
const SignInInput = z.object({ email, password: z.string().min(1, 'Enter your password').max(200, 'Use at most 200 characters') });
const CreateTokenInput = z.object({
  name: nameText({ blank: 'Name the token', max: 100, tooLong: 'Keep the name to 100 characters' }),
  expiresAt: z
    .date()
    .refine((d) => d.getTime() > Date.now(), 'Expiry must be in the future')
    .nullish(),
});

/** Sign-in failures never say whether the email exists. */
export class InvalidSignInError extends ValidationError {
  constructor() {
    super([{ path: [], message: 'Email or password is incorrect' }]);
    this.name = 'InvalidSignInError';
  }
}

async function startSession(ctx: Context, userId: string) {
  const token = randomToken(32);
  const session = await ctx.prisma.session.create({
    data: {
      userId,
      tokenHash: sha256(token),
      expiresAt: new Date(Date.now() + SESSION_IDLE_MS),
      ip: ctx.ip,
    },
  });
  ctx.res?.cookie(SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: 'lax',
    secure: ctx.config.NODE_ENV === 'production',
    path: '/',
    maxAge: SESSION_IDLE_MS,
  });
  return { session, token };
}

export async function signUp(ctx: Context, raw: unknown) {
  await ctx.limits.consume('signUpIp', ctx.ip ?? 'unknown');
  const input = parseInput(SignUpInput, raw);
  await ctx.limits.consume('signUpAccount', input.email);
  const existing = await ctx.prisma.user.findUnique({ where: { email: input.email } });
  if (existing) throw new ConflictError('An account with this email already exists', 'email');
  const user = await ctx.prisma.user.create({
    data: { email: input.email, name: input.name, passwordHash: await hashPassword(input.password), lastSignInAt: new Date() },
  });
  await audit(ctx.prisma, { actorId: user.id, action: 'auth.sign_up', targetType: 'User', targetId: user.id, ip: ctx.ip });
  const { token } = await startSession(ctx, user.id);
  return { user, sessionToken: token };
}

export async function signIn(ctx: Context, raw: unknown) {
  await ctx.limits.consume('signInIp', ctx.ip ?? 'unknown');
  const input = parseInput(SignInInput, raw);
  // The account limiter counts failures only, so it is checked here and charged below.
  await ctx.limits.ensureAvailable('signInAccount', input.email);
  const user = await ctx.prisma.user.findUnique({ where: { email: input.email } });
  // Verify against a dummy hash for unknown emails so timing does not reveal which accounts exist.
  const ok = await verifyPassword(user?.passwordHash ?? (await timingDummyHash()), input.password);
  if (!user || !ok) {
    await audit(ctx.prisma, {
      actorId: user?.id ?? null,
      action: 'auth.sign_in_failed',
      metadata: { email: input.email },
      ip: ctx.ip,
    });
    await ctx.limits.penalize('signInAccount', input.email);
    throw new InvalidSignInError();
  }
  await ctx.limits.reset('signInAccount', input.email);
  await ctx.prisma.user.update({ where: { id: user.id }, data: { lastSignInAt: new Date() } });
  await audit(ctx.prisma, { actorId: user.id, action: 'auth.sign_in', targetType: 'User', targetId: user.id, ip: ctx.ip });
  const { token } = await startSession(ctx, user.id);
  return { user, sessionToken: token };
}

/** Ends this session, or every session of the viewer when `everywhere`. */
export async function signOut(ctx: Context, everywhere: boolean) {
  const viewer = requireViewer(ctx);
  if (everywhere) {
    await ctx.prisma.session.deleteMany({ where: { userId: viewer.userId } });
    await ctx.bus.publish(ACCESS_CHANNEL, { userSessions: viewer.userId } satisfies AccessChange);
  } else if (viewer.sessionId) {
    await ctx.prisma.session.deleteMany({ where: { id: viewer.sessionId } });
    await ctx.bus.publish(ACCESS_CHANNEL, { sessions: [viewer.sessionId] } satisfies AccessChange);
  }
  ctx.res?.clearCookie(SESSION_COOKIE, { path: '/' });
  await audit(ctx.prisma, { actorId: viewer.userId, action: everywhere ? 'auth.sign_out_everywhere' : 'auth.sign_out', ip: ctx.ip });
  return true;
}

export async function createApiToken(ctx: Context, raw: unknown) {
  const viewer = requireViewer(ctx);
  const input = parseInput(CreateTokenInput, raw);
  const secret = newApiToken();
  const token = await ctx.prisma.apiToken.create({
    data: {
      userId: viewer.userId,
      name: input.name,
      prefix: secret.slice(0, 12),
      tokenHash: sha256(secret),
      expiresAt: input.expiresAt ?? null,
    },
  });
  await audit(ctx.prisma, { actorId: viewer.userId, action: 'token.created', targetType: 'ApiToken', targetId: token.id, metadata: { name: token.name }, ip: ctx.ip });
  return { token, secret };
}

export async function revokeApiToken(ctx: Context, tokenId: string) {
  const viewer = requireViewer(ctx);
  const token = await ctx.prisma.apiToken.findFirst({ where: { id: tokenId, userId: viewer.userId } });
  if (!token) throw new NotFoundError('ApiToken');
  const revoked = token.revokedAt
    ? token
    : await ctx.prisma.apiToken.update({ where: { id: token.id }, data: { revokedAt: new Date() } });
  // Every process forgets the token now (see TokenCache) and closes the connections that use it.
  await ctx.bus.publish(ACCESS_CHANNEL, { token: token.id } satisfies AccessChange);
  await audit(ctx.prisma, { actorId: viewer.userId, action: 'token.revoked', targetType: 'ApiToken', targetId: token.id, metadata: { name: token.name }, ip: ctx.ip });
  return revoked;
}
