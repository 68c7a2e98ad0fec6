import type { IconName } from '$lib/components/icons';

export interface NavItem {
  href: string;
  label: string;
  icon: IconName;
  /** One sentence about the section, reused by its page header and empty state. */
  summary: string;
}

export interface NavGroup {
  label: string;
  items: NavItem[];
}

export const navigation: NavGroup[] = [
  {
    label: 'Operate',
    items: [
      { href: '/', label: 'Command Deck', icon: 'deck', summary: 'Live runs, spend and alerts for your organization at a glance.' },
      { href: '/agents', label: 'Agents', icon: 'agents', summary: 'Configure agents: provider, model, system prompt and limits.' },
      { href: '/runs', label: 'Runs', icon: 'runs', summary: 'Start runs and workflows, and watch their output stream live.' },
      { href: '/memory', label: 'Memory', icon: 'memory', summary: 'Shared knowledge your agents can read, with ranked search.' },
    ],
  },
  {
    label: 'Govern',
    items: [
      { href: '/budgets', label: 'Budgets & Usage', icon: 'budgets', summary: 'Daily and monthly spending limits, and where the money goes.' },
      { href: '/integrations', label: 'Integrations', icon: 'integrations', summary: 'Connect GitHub, Google Drive, Dropbox, Notion and Zapier.' },
      { href: '/members', label: 'Members', icon: 'members', summary: 'Invite teammates and manage their roles.' },
      { href: '/tokens', label: 'API tokens', icon: 'tokens', summary: 'Personal access tokens for the SDK and the GraphQL API.' },
      { href: '/audit', label: 'Audit log', icon: 'audit', summary: 'Every sensitive action in your organization, who did it and when.' },
    ],
  },
  {
    label: 'System',
    items: [{ href: '/health', label: 'Health', icon: 'health', summary: 'Live status of the API and its database.' }],
  },
];

const byHref = new Map(navigation.flatMap((g) => g.items).map((item) => [item.href, item]));

/** The navigation entry for a route, for headers and placeholders. */
export function navItem(href: string): NavItem {
  const item = byHref.get(href);
  if (!item) throw new Error(`No navigation entry for ${href}`);
  return item;
}

/** Whether `href` is the current section (its own page or one below it). */
export function isActive(href: string, pathname: string): boolean {
  return href === '/' ? pathname === '/' : pathname === href || pathname.startsWith(`${href}/`);
}
