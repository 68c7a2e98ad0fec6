import { describe, expect, it } from 'vitest';
import { formErrors } from '../src/lib/forms.js';

describe('formErrors', () => {
  it('puts a conflict about one of the form\'s fields next to it, and any other conflict on the form', () => {
    const taken = { __typename: 'ConflictError', message: 'This person is already a member', field: 'email' };
    expect(formErrors(taken, undefined, ['email', 'role'])).toEqual({ fields: { email: 'This person is already a member' } });
    const full = { __typename: 'ConflictError', message: 'This organization already has 100 pending invitations', field: null };
    expect(formErrors(full, undefined, ['email', 'role'])).toEqual({ form: full.message, fields: {} });
    // A field this form does not show: the whole form, so the message is not lost.
    expect(formErrors({ ...taken, field: 'slug' }, undefined, ['email'])).toEqual({ form: taken.message, fields: {} });
  });

  it('puts validation issues next to their fields and the rest on the form', () => {
    const failure = {
      __typename: 'ValidationError',
      message: 'invalid',
      issues: [
        { path: ['email'], message: 'Enter a valid email address' },
        { path: ['other'], message: 'Something else' },
      ],
    };
    expect(formErrors(failure, undefined, ['email'])).toEqual({ form: 'Something else', fields: { email: 'Enter a valid email address' } });
  });
});
