// What every scenario shares: calling the SDK, and configuring it as an app does.

// The outcome of one SDK call: its value, or the SDK's error object ({code, info}), or, for a
// failure that never reached a response (a network or CORS refusal), the error's message.
export async function attempt(call) {
  try {
    const value = await call();
    return { ok: true, value: value === undefined ? null : value };
  } catch (error) {
    if (error && typeof error === 'object' && 'code' in error && 'info' in error) {
      return { ok: false, code: error.code ?? null, info: error.info ?? null };
    }
    return { ok: false, error: String((error && error.message) || error) };
  }
}

// As an app configures the stock SDK: credentials, our base URL, no console logging.
export function init(CB, args, on = {}) {
  CB.init(
    { appId: args.appId, authKey: args.authKey },
    { endpoints: { api_url: args.base }, debug: { mode: 0 }, on }
  );
}
