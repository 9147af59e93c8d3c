/**
 * Keyset paging cursors shared by the list endpoints (calls, voicemails, ...): the sort timestamp and the
 * row id of the last item, opaque to clients (base64url). A cursor this API did not hand out is a 400.
 */
import { badRequest } from '../shared/errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(`${at.toISOString()}|${id}`).toString('base64url');
}

export function decodeCursor(cursor: string): { at: Date; id: string } {
  const [text, id, ...rest] = Buffer.from(cursor, 'base64url').toString().split('|');
  // exactly what encodeCursor writes: anything else would reach PostgreSQL as a bad timestamp or uuid (a 500)
  const at = new Date(text ?? '');
  if (rest.length || !text || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(text) || !id || !UUID.test(id) || Number.isNaN(at.getTime())) {
    throw badRequest('invalid-cursor', 'cursor is not one this API returned');
  }
  return { at, id };
}
