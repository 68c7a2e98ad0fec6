import { parsePrismaCursor } from '@pothos/plugin-prisma';
import { isUuid } from '../lib/ids.js';

type Direction = 'asc' | 'desc';
/** A connection's total order, one key per entry, ending in `id`; every key is a non-null column. */
export type PageOrder = readonly Readonly<Partial<Record<string, Direction>>>[];

/** The key and direction of one entry of an order. */
const keyOf = (entry: PageOrder[number]): [string, Direction] => Object.entries(entry).find((e): e is [string, Direction] => e[1] != null)!;

/** What the helper asks of a model: its Prisma delegate's `findFirst` (e.g. `ctx.prisma.project`). */
export interface ResumeModel {
  findFirst(args: { where: object; select: Record<string, true>; orderBy?: object[] }): PromiseLike<object | null>;
}

interface Common {
  /** The connection's arguments (`after`, `before`: cursors of an `id` connection). */
  page: { after?: unknown; before?: unknown };
  /**
   * The part of the connection's `where` a listed row can stop matching (a status, `archivedAt: null`, a
   * membership), with the conditions it goes with; null or undefined when nothing listed can leave it: no query
   * is made then.
   */
  where: object | null | undefined;
  orderBy: PageOrder;
}

export type Resume = { cursor: { id: string }; skip: 0 };

/** The conditions "after `row` in `order`" (rows past it in a list in that order). */
function pastRow(order: PageOrder, row: Record<string, unknown>): object {
  return {
    OR: order.map((entry, i) => {
      const [key, direction] = keyOf(entry);
      const equal = Object.fromEntries(order.slice(0, i).map((e) => [keyOf(e)[0], row[keyOf(e)[0]]]));
      return { ...equal, [key]: { [direction === 'desc' ? 'lt' : 'gt']: row[key] } };
    }),
  };
}

const reversed = (order: PageOrder): PageOrder =>
  order.map((entry) => {
    const [key, direction] = keyOf(entry);
    return { [key]: direction === 'asc' ? 'desc' : 'asc' };
  });

/**
 * Where a page of a filtered connection resumes. A row that has left the connection's filter since its page was
 * read (a queued run that started, a project or agent archived, an invitation accepted, revoked or expired, an
 * organization left) ended the list there when its cursor came back: Prisma looks a relation's cursor row up
 * through the filter, so the next page came back empty with `hasNextPage` false (a top-level list skipped the
 * first matching row after it instead). Such a cursor moves to the nearest matching row past it in the
 * direction of paging, which the page then starts with (skip 0, where a cursor of the page's own is skipped):
 * spread the result over the connection's query. Undefined leaves the cursor to Prisma: no cursor, nothing that
 * can leave `where`, a row that still matches, an unknown row (or a malformed id, which Prisma refuses as
 * before), nothing matching past it.
 *
 * Costs one query per page with a cursor and a `where` (the row still matches), three or four when it moves.
 */
async function resume(
  model: ResumeModel,
  { page, where, orderBy }: Common,
  scope: readonly string[],
  wasListed?: (id: string) => Promise<boolean>,
): Promise<Resume | 'none' | undefined> {
  const given = page.after ?? page.before;
  if (given == null || !where) return undefined;
  // Pothos has parsed it already: a cursor it refuses never gets here.
  const id = String(parsePrismaCursor(given));
  if (!isUuid(id)) return undefined;
  if (await model.findFirst({ where: { AND: [where, { id }] }, select: { id: true } })) return undefined;

  const keys = [...new Set([...orderBy.map((e) => keyOf(e)[0]), ...scope])];
  const at = (await model.findFirst({ where: { id }, select: Object.fromEntries(keys.map((k) => [k, true])) })) as Record<string, unknown> | null;
  if (!at) return undefined;
  if (wasListed && !(await wasListed(id))) return 'none';

  const order = page.after != null ? orderBy : reversed(orderBy);
  const next = (await model.findFirst({
    where: { AND: [where, Object.fromEntries(scope.map((k) => [k, at[k]])), pastRow(order, at)] },
    orderBy: [...order],
    select: { id: true },
  })) as { id: string } | null;
  return next ? { cursor: { id: next.id }, skip: 0 } : undefined;
}

/**
 * `resume` for a connection of a parent row (a `relatedConnection`: a project's agents). `scope` names the
 * columns the parent fixes (`projectId`). Prisma looks the cursor row up through the relation, so a cursor of
 * another parent finds nothing, as an unknown one; the row it would move to shares these columns with it, so
 * it stays one: what the caller sees never depends on another parent's rows.
 */
export async function resumeRelatedCursor(model: ResumeModel, options: Common & { scope: readonly string[] }): Promise<Resume | undefined> {
  const r = await resume(model, options, options.scope);
  return r === 'none' ? undefined : r;
}

/**
 * `resume` for a top-level list of the viewer's (a `prismaConnection`: their organizations). Prisma looks its
 * cursor row up by id alone and lists what follows that row's place: a row that left `where` skipped the first
 * matching one after it, and anybody's row would place the list. `wasListed` says, for a row that is not in
 * `where` now, whether the viewer could have been given its cursor: then it moves; else the answer is `'none'`:
 * answer an empty page, as for an unknown cursor, without the row's place ever being used.
 */
export function resumeViewerCursor(model: ResumeModel, options: Common & { wasListed: (id: string) => Promise<boolean> }): Promise<Resume | 'none' | undefined> {
  return resume(model, options, [], options.wasListed);
}
