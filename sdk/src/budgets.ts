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
import type { RequestOptions, Transport } from './transport.js';

export type Budget = BudgetFragment;
export type UsageReport = NonNullable<UsageQuery['organization']>['usage'];

/** Daily and monthly spending limits. Amounts are micro-dollar strings: "25000000" is $25. */
export function budgetsApi(t: Transport) {
  return {
    /** Creates or changes the budget for (organization, project?, period). ADMIN and above. */
    async set(input: SetBudgetInput, options?: RequestOptions): Promise<Budget> {
      return unwrap((await t.request(SetBudgetDocument, { input }, options)).setBudget).budget;
    },
    async remove(id: string, options?: RequestOptions): Promise<string> {
      return unwrap((await t.request(RemoveBudgetDocument, { input: { id } }, options)).removeBudget).removedId;
    },
    /**
     * Every budget of an organization with its current spend, reservations and reset time. With
     * `organizationWide`, only the organization-wide budgets (true) or only the per-project ones (false);
     * `signal` and `timeoutMs` as for any request.
     */
    async list(organizationSlug: string, { organizationWide, ...options }: { organizationWide?: boolean | undefined } & RequestOptions = {}): Promise<Budget[]> {
      const { organization } = await t.request(OrganizationBudgetsDocument, { slug: organizationSlug, organizationWide }, options);
      if (!organization) throw new NotFoundError('Organization not found');
      return organization.budgets;
    },
  };
}

/** Spend from the usage ledger, grouped for charts and exports; `csv` holds the same report as CSV. */
export function usageApi(t: Transport) {
  return {
    async report(organizationSlug: string, range: { from: Date | string; to: Date | string; groupBy: UsageGroupBy }, options?: RequestOptions): Promise<UsageReport> {
      const iso = (d: Date | string) => (d instanceof Date ? d.toISOString() : d);
      const variables = { slug: organizationSlug, from: iso(range.from), to: iso(range.to), groupBy: range.groupBy };
      const { organization } = await t.request(UsageDocument, variables, options);
      if (!organization) throw new NotFoundError('Organization not found');
      return organization.usage;
    },
  };
}
