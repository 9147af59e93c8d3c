/**
 * Keyset paging cursors shared by the list endpoints (calls, voicemails, ...): the sort timestamp and the
 * row id of the last item, opaque to clients (base64url). A cursor this API did not hand out is a 400.
 */
import { badRequest } from '../shared/errors.js';

export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(`${at.toISOString()}|${id}`).toString('base64url');
}

export function decodeCursor(cursor: string): { at: Date; id: string } {
  const [text, id] = Buffer.from(cursor, 'base64url').toString().split('|');
  const at = new Date(text ?? '');
  if (!id || !/^[0-9a-f-]{36}$/.test(id) || Number.isNaN(at.getTime())) throw badRequest('invalid-cursor', 'cursor is not one this API returned');
  return { at, id };
}
