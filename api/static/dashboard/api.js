/* The API, called with the signed-in key. Failures are ApiErrors carrying the API's own
   status, code and message (status 0: no answer at all). */

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function apiClient(key) {
  return async function get(path, params) {
    const url = new URL(path, location.origin);
    for (const [name, value] of Object.entries(params || {})) url.searchParams.set(name, String(value));
    let response, text;
    try {
      response = await fetch(url, {
        headers: { Authorization: `Bearer ${key}`, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
      text = await response.text();
    } catch (error) {
      throw new ApiError(0, "unreachable", "the API did not answer");
    }
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (error) {
      body = null; // not JSON (a proxy's error page): the status says enough
    }
    if (!response.ok) {
      const code = (body && body.code) || `http_${response.status}`;
      throw new ApiError(response.status, code, (body && body.message) || `HTTP ${response.status}`);
    }
    return body;
  };
}
