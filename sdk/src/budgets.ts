import {
  OrganizationBudgetsDocument,
  RemoveBudgetDocument,
  SetBudgetDocument,
  UsageDocument,
  type BudgetFragment,
  type SetBudgetInput,
  type UsageGroupBy,
  type UsageQuery,
} from './_generated/graphql.js';
import { NotFoundError, unwrap } from './errors.js';
import type { Transport } from './transport.js';

export type Budget = BudgetFragment;
export type UsageReport = NonNullable<UsageQuery['organization']>['usage'];

/** Daily and monthly spending limits. Amounts are micro-dollar strings: "25000000" is $25. */
export function budgetsApi(t: Transport) {
  return {
    /** Creates or changes the budget for (organization, project?, period). ADMIN and above. */
    async set(input: SetBudgetInput): Promise<Budget> {
      return unwrap((await t.request(SetBudgetDocument, { input })).setBudget).budget;
    },
    async remove(id: string): Promise<string> {
      return unwrap((await t.request(RemoveBudgetDocument, { input: { id } })).removeBudget).removedId;
    },
    /**
     * Every budget of an organization with its current spend, reservations and reset time. With
     * `organizationWide`, only the organization-wide budgets (true) or only the per-project ones (false).
     */
    async list(organizationSlug: string, options: { organizationWide?: boolean | undefined } = {}): Promise<Budget[]> {
      const { organization } = await t.request(OrganizationBudgetsDocument, { slug: organizationSlug, organizationWide: options.organizationWide });
      if (!organization) throw new NotFoundError('Organization not found');
      return organization.budgets;
    },
  };
}

/** Spend from the usage ledger, grouped for charts and exports; `csv` holds the same report as CSV. */
export function usageApi(t: Transport) {
  return {
    async report(organizationSlug: string, range: { from: Date | string; to: Date | string; groupBy: UsageGroupBy }): Promise<UsageReport> {
      const iso = (d: Date | string) => (d instanceof Date ? d.toISOString() : d);
      const { organization } = await t.request(UsageDocument, {
        slug: organizationSlug,
        from: iso(range.from),
        to: iso(range.to),
        groupBy: range.groupBy,
      });
      if (!organization) throw new NotFoundError('Organization not found');
      return organization.usage;
    },
  };
}
