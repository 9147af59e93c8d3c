/** One error family with stable kebab-case codes, mapped once at the HTTP edge to { error: { code, message } }. */
export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const notFound = (code: string, message: string) => new AppError(404, code, message);
export const badRequest = (code: string, message: string, details?: Record<string, unknown>) => new AppError(400, code, message, details);
export const unauthorized = (message = 'sign in first') => new AppError(401, 'unauthorized', message);
export const forbidden = (message = 'your role may not do this') => new AppError(403, 'forbidden', message);
