// Imports every module for its side effect of registering types on the builder; defines nothing itself.
import './errors.js';
import '../modules/system/system.type.js';
import '../modules/auth/auth.type.js';
import '../modules/orgs/orgs.type.js';
import '../modules/orgs/invitations.type.js';
import '../modules/projects/projects.type.js';
import '../modules/agents/agents.type.js';
import '../modules/runs/runs.type.js';
import '../modules/budgets/budgets.type.js';
import '../modules/audit/audit.type.js';
import { builder } from './builder.js';

export const schema = builder.toSchema({ sortSchema: true });
