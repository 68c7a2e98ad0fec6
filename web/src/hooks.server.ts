import type { HandleServerError } from '@sveltejs/kit';

// Unknown addresses are routine (bots, stale links): render the 404 page without logging a stack.
export const handleError: HandleServerError = ({ error, status, message }) => {
  if (status !== 404) console.error(error);
  return { message };
};
