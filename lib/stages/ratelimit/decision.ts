/** What the rate limiter decides for one request. */
export type RateLimitDecision =
  | { readonly allowed: true; readonly headers: ReadonlyArray<readonly [string, string]> | null }
  | {
      readonly allowed: false;
      /** 'global' | 'per_user' | 'per_endpoint' */
      readonly scope: string;
      /** Whole seconds until a token is available, >= 1. */
      readonly retryAfter: number;
      readonly headers: ReadonlyArray<readonly [string, string]>;
    };
